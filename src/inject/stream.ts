import YAML from 'yaml';
import { MeshletError } from '../errors.ts';
import { applyPatch, type Operation } from './json-patch.ts';
import { isObject, type Json } from './kube.ts';
import { applyToDocument } from './yaml-patch.ts';

// A manifest file in, the same file out with some documents patched. A document the
// patch leaves alone is copied as the bytes it was (YAML's concrete syntax tree gives
// each document's exact source); a patched one is written from its node tree, so its
// comments and key order stay. JSON in, JSON out.

/** The patch for one parsed document (an object), given where it is for messages; empty for none. */
export type Transform = (object: Json, where: string) => Operation[];

export function transformText(text: string, source: string, transform: Transform): string {
  const trimmed = text.trimStart();
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
    const json = tryJson(text);
    if (json !== undefined) return transformJson(text, json, source, transform);
  }
  return transformYaml(text, source, transform);
}

function tryJson(text: string): { value: unknown } | undefined {
  try {
    return { value: JSON.parse(text) };
  } catch {
    return undefined; // a YAML flow mapping, or broken: the YAML parser says which
  }
}

function transformJson(text: string, json: { value: unknown }, source: string, transform: Transform): string {
  if (!isObject(json.value)) throw new MeshletError('MESHLET_ERR_MANIFEST', `${source}: a JSON manifest must be an object, not ${Array.isArray(json.value) ? 'an array' : typeof json.value}`);
  const ops = transform(json.value, source);
  if (ops.length === 0) return text;
  const indent = /^\{\s*\n([ \t]+)"/.exec(text)?.[1] ?? (text.includes('\n') ? '  ' : '');
  const out = JSON.stringify(applyPatch(json.value, ops), null, indent);
  return text.endsWith('\n') ? `${out}\n` : out;
}

function transformYaml(text: string, source: string, transform: Transform): string {
  const lines = new YAML.LineCounter();
  const out: string[] = [];
  let index = 0;
  for (const token of new YAML.Parser(lines.addNewLine).parse(text)) {
    const raw = YAML.CST.stringify(token);
    if (token.type !== 'document') {
      if (token.type === 'error') throw syntax(source, lines, token.offset, token.message);
      out.push(raw);
      continue;
    }
    index++;
    const [doc] = new YAML.Composer({ prettyErrors: false }).compose([token], true, text.length);
    const error = doc?.errors[0];
    if (error) throw syntax(source, lines, error.pos[0], error.message);
    let value: unknown;
    try {
      value = doc?.toJS({ maxAliasCount: 100 });
    } catch (err) {
      // An alias to no anchor, or aliases that expand without bound (a "billion laughs").
      throw new MeshletError('MESHLET_ERR_MANIFEST', `${source}, document ${index}: ${(err as Error).message}`);
    }
    if (value === null || value === undefined) {
      out.push(raw); // an empty document, such as a trailing ---
      continue;
    }
    const where = `${source}, document ${index}`;
    if (!isObject(value)) throw new MeshletError('MESHLET_ERR_MANIFEST', `${where}: expected a Kubernetes object (a mapping), got ${Array.isArray(value) ? 'a sequence' : 'a scalar'}`);
    const ops = transform(value, where);
    if (ops.length === 0) {
      out.push(raw);
      continue;
    }
    applyToDocument(doc!, ops);
    out.push(doc!.toString({ indentSeq: indentsSequences(raw), flowCollectionPadding: /[{[] \S/.test(raw), lineWidth: 0 }));
  }
  return out.join('');
}

/**
 * Whether the document indents a sequence under its key (`containers:\n  - name`) or
 * not (`containers:\n- name`, kubectl's style): a patched document is written the same way.
 */
function indentsSequences(raw: string): boolean {
  const match = /^( *)[^\s#-][^\n]*:[ \t]*\n( *)- /m.exec(raw);
  return match === null || match[2]!.length > match[1]!.length;
}

function syntax(source: string, lines: YAML.LineCounter, offset: number, message: string): MeshletError {
  const { line, col } = lines.linePos(offset);
  return new MeshletError('MESHLET_ERR_MANIFEST', `${source}: YAML syntax error at line ${line}, column ${col}: ${message.split('\n')[0]}`);
}
