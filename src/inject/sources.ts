import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { MeshletError } from '../errors.ts';

// The manifests to read: files, directories (their .yaml, .yml and .json files, in
// name order, not recursing, as `kubectl apply -f DIR` does) and `-` for stdin.

export interface Source {
  readonly name: string;
  readonly text: string;
}

const MANIFEST = /\.(ya?ml|json)$/i;

export function readSources(operands: readonly string[], readStdin: () => string): Source[] {
  const sources: Source[] = [];
  let stdinRead = false;
  for (const operand of operands.length === 0 ? ['-'] : operands) {
    if (operand === '-') {
      if (stdinRead) throw new MeshletError('MESHLET_ERR_USAGE', "'-' (stdin) given twice");
      stdinRead = true;
      sources.push({ name: 'stdin', text: readStdin() });
      continue;
    }
    let isDirectory: boolean;
    try {
      isDirectory = statSync(operand).isDirectory();
    } catch (err) {
      throw new MeshletError('MESHLET_ERR_MANIFEST', `cannot read ${operand}: ${(err as Error).message}`);
    }
    const files = isDirectory
      ? readdirSync(operand)
          .filter((f) => MANIFEST.test(f))
          .sort()
          .map((f) => path.join(operand, f))
      : [operand];
    if (isDirectory && files.length === 0) throw new MeshletError('MESHLET_ERR_MANIFEST', `${operand}: no .yaml, .yml or .json files in this directory`);
    for (const file of files) {
      try {
        sources.push({ name: file, text: readFileSync(file, 'utf8') });
      } catch (err) {
        throw new MeshletError('MESHLET_ERR_MANIFEST', `cannot read ${file}: ${(err as Error).message}`);
      }
    }
  }
  return sources;
}

/** Several sources become one stream, separated the way kubectl reads them. */
export function joinStreams(texts: readonly string[]): string {
  return texts.map((t, i) => (i < texts.length - 1 && !t.endsWith('\n') ? `${t}\n` : t)).join('---\n');
}
