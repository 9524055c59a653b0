import jsonpatch from 'fast-json-patch';
import YAML from 'yaml';
import type { Operation } from './json-patch.ts';

// The same JSON patch applied to a YAML document's node tree instead of to plain
// values, so that everything the patch does not touch keeps its comments, key order
// and quoting when the document is written out again. fast-json-patch checks the whole
// patch against the document's values first (RFC 6902: all of it applies or none), so
// the walk below only meets paths that exist and indices in range.

type Parent = YAML.YAMLMap | YAML.YAMLSeq;

/** A new node for a value; never YAML anchors and aliases for objects that happen to be shared. */
function node(doc: YAML.Document, value: unknown): YAML.Node {
  return doc.createNode(value, { aliasDuplicateObjects: false });
}

/** Applies `ops` to `doc`, or throws fast-json-patch's JsonPatchError (naming the operation) and leaves `doc` as it was. */
export function applyToDocument(doc: YAML.Document, ops: readonly Operation[]): void {
  // On a throwaway copy of the values. (Not jsonpatch.validate(): it clones the patch
  // through JSON, which hides values holding undefined.)
  jsonpatch.applyPatch(doc.toJS({ maxAliasCount: 100 }), ops as Operation[], true, true);
  for (const o of ops) applyOne(doc, o);
}

function applyOne(doc: YAML.Document, o: Operation): void {
  const path = o.path.split('/').slice(1).map(jsonpatch.unescapePathComponent);
  const last = path.pop();
  if (last === undefined) {
    doc.contents = o.op === 'remove' ? null : node(doc, o.value); // the whole document, as fast-json-patch does
    return;
  }
  let parent = doc.contents as Parent;
  for (const token of path) parent = (YAML.isSeq(parent) ? parent.items[Number(token)] : parent.get(token, true)) as Parent;
  if (YAML.isSeq(parent)) {
    const index = last === '-' ? parent.items.length : Number(last);
    if (o.op === 'add') parent.items.splice(index, 0, node(doc, o.value));
    else if (o.op === 'replace') parent.items[index] = replaced(doc, parent.items[index], o.value);
    else parent.items.splice(index, 1);
    return;
  }
  if (o.op === 'remove') parent.delete(last);
  else if (o.op === 'replace') parent.set(last, replaced(doc, parent.get(last, true), o.value));
  else parent.set(last, node(doc, o.value));
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
