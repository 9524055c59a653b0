import jsonpatch from 'fast-json-patch';
import t from 'tap';
import YAML from 'yaml';
import { pointer, type Operation } from '../../../src/inject/json-patch.ts';
import { applyToDocument } from '../../../src/inject/yaml-patch.ts';

// The YAML node-tree patch against fast-json-patch, the reference for RFC 6902: the
// same result for the three operations inject uses, and a patch that does not apply
// refused whole, with the library's error code and the operation, and the YAML left as
// it was. (The error's index is not the operation's: fast-json-patch 3.1 passes 0.)

const doc = { metadata: { annotations: { 'a/b': '1', 'c~d': '2' } }, spec: { containers: [{ name: 'x' }, { name: 'y' }] } };

function both(ops: Operation[]): { json: unknown; yaml: unknown } {
  const json = jsonpatch.applyPatch(doc, ops, true, false).newDocument;
  const yamlDoc = new YAML.Document(structuredClone(doc));
  applyToDocument(yamlDoc, ops);
  return { json, yaml: yamlDoc.toJS() };
}

t.test('add, replace, remove, with escaped keys and array positions', async (t) => {
  const ops: Operation[] = [
    { op: 'add', path: '/spec/containers/0', value: { name: 'first' } },
    { op: 'add', path: '/spec/containers/-', value: { name: 'last' } },
    { op: 'remove', path: pointer('/metadata/annotations', 'a/b') },
    { op: 'replace', path: pointer('/metadata/annotations', 'c~d'), value: '3' },
    { op: 'add', path: '/spec/volumes', value: [] },
    { op: 'remove', path: '/spec/containers/1' },
  ];
  const { json, yaml } = both(ops);
  const expected = { metadata: { annotations: { 'c~d': '3' } }, spec: { containers: [{ name: 'first' }, { name: 'y' }, { name: 'last' }], volumes: [] } };
  t.same(json, expected, 'fast-json-patch');
  t.same(yaml, expected, 'the YAML node tree gets the same result');
  t.same(doc.spec.containers.length, 2, 'the input is not modified');
  t.same(both([{ op: 'replace', path: '', value: { kind: 'Pod' } }]).yaml, { kind: 'Pod' }, 'the empty pointer is the whole document');
});

t.test('a patch that does not apply: the library error, and the YAML unchanged', async (t) => {
  const cases: Array<[Operation, string]> = [
    [{ op: 'remove', path: '/metadata/labels' }, 'OPERATION_PATH_UNRESOLVABLE'],
    [{ op: 'replace', path: '/spec/containers/2', value: {} }, 'OPERATION_PATH_UNRESOLVABLE'],
    [{ op: 'add', path: '/spec/containers/3', value: {} }, 'OPERATION_VALUE_OUT_OF_BOUNDS'],
    [{ op: 'add', path: '/spec/containers/x', value: {} }, 'OPERATION_PATH_ILLEGAL_ARRAY_INDEX'],
    [{ op: 'add', path: '/spec/nothing/x', value: {} }, 'OPERATION_PATH_CANNOT_ADD'],
    [{ op: 'add', path: 'spec', value: {} }, 'OPERATION_PATH_INVALID'],
    [{ op: 'add', path: '/spec/x', value: { a: undefined } }, 'OPERATION_VALUE_CANNOT_CONTAIN_UNDEFINED'],
  ];
  for (const [op, code] of cases) {
    // A first operation that does apply: refusing the patch must undo nothing, since nothing was done.
    const ops: Operation[] = [{ op: 'add', path: '/spec/first', value: 1 }, op];
    t.throws(() => jsonpatch.applyPatch(structuredClone(doc), ops, true, false), { name: code, operation: op }, `fast-json-patch: ${op.op} ${op.path}`);
    const yamlDoc = new YAML.Document(structuredClone(doc));
    const before = yamlDoc.toString();
    t.throws(() => applyToDocument(yamlDoc, ops), { name: code, operation: op }, `YAML: ${op.op} ${op.path}`);
    t.equal(yamlDoc.toString(), before, `YAML: ${op.op} ${op.path} left the document alone`);
  }
});
