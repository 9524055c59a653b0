import YAML from 'yaml';
import { PatchError, tokens, type Operation } from './json-patch.ts';

// The same JSON patch applied to a YAML document's node tree instead of to plain
// values, so that everything the patch does not touch keeps its comments, key order
// and quoting when the document is written out again.

type Parent = YAML.YAMLMap | YAML.YAMLSeq;

/** A new node for a value; never YAML anchors and aliases for objects that happen to be shared. */
function node(doc: YAML.Document, value: unknown): YAML.Node {
  return doc.createNode(value, { aliasDuplicateObjects: false });
}

function child(node: unknown, token: string): unknown {
  if (YAML.isMap(node)) return node.get(token, true);
  if (YAML.isSeq(node)) return node.items[seqIndex(node, token, false)];
  throw new PatchError(`'${token}': the parent is not a mapping or sequence`);
}

function seqIndex(seq: YAML.YAMLSeq, token: string, appending: boolean): number {
  if (token === '-' && appending) return seq.items.length;
  if (!/^(0|[1-9]\d*)$/.test(token)) throw new PatchError(`'${token}' is not an array index`);
  const index = Number(token);
  if (index > (appending ? seq.items.length : seq.items.length - 1)) throw new PatchError(`index ${index} is out of bounds (length ${seq.items.length})`);
  return index;
}

export function applyToDocument(doc: YAML.Document, ops: readonly Operation[]): void {
  for (const [i, o] of ops.entries()) {
    try {
      applyOne(doc, o);
    } catch (err) {
      const why = err instanceof PatchError ? err.message : String(err);
      throw new PatchError(`operation ${i} (${o.op} ${o.path}): ${why}`);
    }
  }
}

function applyOne(doc: YAML.Document, o: Operation): void {
  const path = tokens(o.path);
  if (path.length === 0) throw new PatchError('cannot replace the whole document');
  let parent: unknown = doc.contents;
  for (const token of path.slice(0, -1)) {
    parent = child(parent, token);
    if (parent === undefined) throw new PatchError(`'${token}' does not exist`);
  }
  const last = path.at(-1)!;
  if (!YAML.isMap(parent) && !YAML.isSeq(parent)) throw new PatchError('the parent is not a mapping or sequence');
  const target = parent as Parent;
  if (YAML.isSeq(target)) {
    const index = seqIndex(target, last, o.op === 'add');
    if (o.op === 'add') target.items.splice(index, 0, node(doc, o.value));
    else if (o.op === 'replace') target.items[index] = replaced(doc, target.items[index], o.value);
    else target.items.splice(index, 1);
    return;
  }
  if (o.op !== 'add' && !target.has(last)) throw new PatchError(`'${last}' does not exist`);
  if (o.op === 'remove') target.delete(last);
  else if (o.op === 'replace') target.set(last, replaced(doc, target.get(last, true), o.value));
  else target.set(last, node(doc, o.value));
}

/**
 * The node for a replaced value: the old node itself, changed in place where the two
 * have the same shape, so its style survives (a flow mapping stays one, a quoted
 * string stays quoted). That is what makes inject → uninject give back the same text
 * for a probe inject rewrote and uninject restored.
 */
function replaced(doc: YAML.Document, old: unknown, value: unknown): unknown {
  if (YAML.isScalar(old) && typeof old.value === typeof value && (value === null || typeof value !== 'object')) {
    old.value = value;
    return old;
  }
  if (YAML.isMap(old) && typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const entries = Object.entries(value);
    for (const pair of [...old.items]) {
      const key = YAML.isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
      if (!Object.hasOwn(value, key)) old.delete(pair.key);
    }
    for (const [key, v] of entries) old.set(key, old.has(key) ? replaced(doc, old.get(key, true), v) : node(doc, v));
    // In the value's key order, so that restoring a value restores its order too.
    const position = (pair: YAML.Pair) => entries.findIndex(([k]) => k === (YAML.isScalar(pair.key) ? String(pair.key.value) : String(pair.key)));
    old.items.sort((a, b) => position(a) - position(b));
    return old;
  }
  if (YAML.isSeq(old) && Array.isArray(value) && value.length === old.items.length) {
    old.items = old.items.map((item, i) => replaced(doc, item, value[i]));
    return old;
  }
  return node(doc, value);
}
