import t from 'tap';
import YAML from 'yaml';
import { applyPatch, PatchError, pointer, type Operation } from '../../../src/inject/json-patch.ts';
import { applyToDocument } from '../../../src/inject/yaml-patch.ts';

// RFC 6902's rules for the three operations inject uses, on plain values and on YAML
// node trees alike: a patch applies whole or not at all, with the failing operation named.

const doc = { metadata: { annotations: { 'a/b': '1', 'c~d': '2' } }, spec: { containers: [{ name: 'x' }, { name: 'y' }] } };

function both(ops: Operation[]): { json: unknown; yaml: unknown } {
  const json = applyPatch(doc, ops);
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
  ];
  const { json, yaml } = both(ops);
  const expected = { metadata: { annotations: { 'c~d': '3' } }, spec: { containers: [{ name: 'first' }, { name: 'x' }, { name: 'y' }, { name: 'last' }], volumes: [] } };
  t.same(json, expected);
  t.same(yaml, expected, 'the YAML node tree gets the same result');
  t.same(doc.spec.containers.length, 2, 'the input is not modified');
});

t.test('operations that do not apply are errors naming the operation', async (t) => {
  const cases: Array<[Operation, RegExp]> = [
    [{ op: 'remove', path: '/metadata/labels' }, /operation 0 \(remove \/metadata\/labels\): 'labels' does not exist/],
    [{ op: 'replace', path: '/spec/containers/2', value: {} }, /index 2 is out of bounds \(length 2\)/],
    [{ op: 'add', path: '/spec/containers/3', value: {} }, /index 3 is out of bounds/],
    [{ op: 'add', path: '/spec/containers/01', value: {} }, /'01' is not an array index/],
    [{ op: 'add', path: '/spec/nothing/x', value: {} }, /'nothing' does not exist/],
    [{ op: 'add', path: 'spec', value: {} }, /is not a JSON pointer/],
  ];
  for (const [op, message] of cases) {
    t.throws(() => applyPatch(doc, [op]), message, `${op.op} ${op.path}`);
    t.throws(() => applyToDocument(new YAML.Document(structuredClone(doc)), [op]), PatchError, `YAML: ${op.op} ${op.path}`);
  }
  t.throws(() => applyPatch(doc, [{ op: 'add', path: '/x', value: 1 }, { op: 'remove', path: '/y' }]), /operation 1/);
});
