import fc from 'fast-check';
import t from 'tap';
import YAML from 'yaml';
import { isMeshletError } from '../../../src/errors.ts';
import { applyPatch, pointer } from '../../../src/inject/json-patch.ts';
import type { Container, PodTemplate, Probe } from '../../../src/inject/kube.ts';
import { injectPod } from '../../../src/inject/pod.ts';
import { ANNOTATION_NAMES, DEFAULT_SETTINGS, podSettings, settingsFromFlags } from '../../../src/inject/settings.ts';
import { transformText } from '../../../src/inject/stream.ts';
import { uninjectPod } from '../../../src/inject/uninject.ts';
import { editObject, injectEdit, uninjectEdit } from '../../../src/inject/workloads.ts';

// Properties of the parts that read input: JSON pointers, manifest streams, pod specs
// and annotations as anyone might write them.

const name = fc.stringMatching(/^[a-z][a-z0-9-]{0,10}$/).filter((n) => !n.startsWith('meshlet-'));

const portRef = (ports: Array<{ name: string; containerPort: number }>) =>
  ports.length > 0 ? fc.oneof(fc.integer({ min: 1, max: 65535 }), fc.constantFrom(...ports.map((p) => p.name))) : fc.integer({ min: 1, max: 65535 });

const probe = (ports: Array<{ name: string; containerPort: number }>): fc.Arbitrary<Probe> =>
  fc.record(
    {
      handler: fc.oneof(
        fc.record({ httpGet: fc.record({ path: fc.constantFrom('/', '/healthz', '/a b?c=1'), port: portRef(ports) }, { requiredKeys: ['port'] }) }),
        fc.record({ tcpSocket: fc.record({ port: portRef(ports) }) }),
        fc.record({ grpc: fc.record({ port: fc.integer({ min: 1, max: 65535 }), service: fc.string() }, { requiredKeys: ['port'] }) }),
        fc.record({ exec: fc.record({ command: fc.array(fc.string(), { minLength: 1, maxLength: 3 }) }) }),
      ),
      periodSeconds: fc.integer({ min: 1, max: 60 }),
      timeoutSeconds: fc.integer({ min: 1, max: 30 }),
    },
    { requiredKeys: ['handler'] },
  ).map(({ handler, ...rest }) => ({ ...handler, ...rest }) as Probe);

const container: fc.Arbitrary<Container> = fc
  .record({
    name,
    ports: fc.uniqueArray(fc.record({ name: fc.stringMatching(/^[a-z]{1,8}$/), containerPort: fc.integer({ min: 1, max: 65535 }) }), { selector: (p) => p.name, maxLength: 3 }),
  })
  .chain(({ name, ports }) =>
    fc.record(
      {
        name: fc.constant(name),
        image: fc.constantFrom('nginx', 'example/app:1'),
        ports: fc.constant(ports),
        livenessProbe: probe(ports),
        readinessProbe: probe(ports),
        startupProbe: probe(ports),
      },
      { requiredKeys: ['name', 'image', 'ports'] },
    ),
  );

const template: fc.Arbitrary<PodTemplate> = fc
  .record(
    {
      containers: fc.uniqueArray(container, { selector: (c) => c.name, minLength: 1, maxLength: 3 }),
      initContainers: fc.uniqueArray(container, { selector: (c) => c.name, maxLength: 2 }),
      volumes: fc.uniqueArray(fc.record({ name, emptyDir: fc.constant({}) }), { selector: (v) => v.name, maxLength: 2 }),
      annotations: fc.dictionary(fc.stringMatching(/^[a-z./~-]{1,12}$/).filter((k) => !k.startsWith('meshlet.io/')), fc.string(), { maxKeys: 3 }),
      labels: fc.dictionary(fc.constantFrom('app', 'version', 'tier'), fc.stringMatching(/^[a-z0-9]{0,8}$/)),
    },
    { requiredKeys: ['containers'] },
  )
  .filter((p) => !p.initContainers || p.initContainers.every((i) => !p.containers.some((c) => c.name === i.name)))
  .map(({ containers, initContainers, volumes, annotations, labels }) => ({
    ...(annotations || labels ? { metadata: { ...(labels ? { labels } : {}), ...(annotations ? { annotations } : {}) } } : {}),
    spec: { containers, ...(initContainers ? { initContainers } : {}), ...(volumes ? { volumes } : {}) },
  }));

const settings = fc.record({ mode: fc.constantFrom('native', 'classic'), mtls: fc.constantFrom('permissive', 'strict') }).map(({ mode, mtls }) => settingsFromFlags({ 'sidecar-mode': mode, mtls }));

t.test('JSON pointers: fast-json-patch reads any keys we escape as those keys', async () => {
  // Except __proto__, which it refuses (no Kubernetes name or annotation key can be one).
  t.throws(() => applyPatch({}, [{ op: 'add', path: pointer('', '__proto__'), value: {} }]), TypeError);
  const key = fc.string().filter((k) => k !== '__proto__');
  fc.assert(
    fc.property(fc.uniqueArray(key), key, (keys, inner) => {
      const nested = applyPatch({ a: {} as Record<string, unknown> }, [{ op: 'add', path: pointer('/a', inner), value: 1 }]);
      const flat = applyPatch({} as Record<string, unknown>, keys.map((k) => ({ op: 'add' as const, path: pointer('', k), value: k })));
      t.same(nested.a, { [inner]: 1 });
      t.same(Object.keys(flat).sort(), [...keys].sort());
    }),
  );
});

t.test('any pod: inject then uninject gives it back; injecting again changes nothing', async (t) => {
  fc.assert(
    fc.property(template, settings, (pod, s) => {
      const target = { where: 'Pod p' };
      const result = injectPod(pod, target, s);
      if (!result.changed) return false;
      const injected = applyPatch(pod, result.ops);
      const again = injectPod(injected, target, s);
      const back = uninjectPod(injected, target);
      return !again.changed && back.changed && t.same(applyPatch(injected, back.ops), pod, 'restored') === true;
    }),
    { numRuns: 200 },
  );
});

t.test('the YAML node-tree patch and the plain-object patch agree, and YAML round-trips byte for byte', async (t) => {
  fc.assert(
    fc.property(template, settings, fc.boolean(), (pod, s, kubectlStyle) => {
      const object = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', ...pod.metadata }, spec: pod.spec };
      const text = YAML.stringify(object, { indentSeq: !kubectlStyle, lineWidth: 0 });
      const edit = injectEdit(s);
      const out = transformText(text, 'gen', (o, where) => editObject(o, where, edit, []));
      const ops = editObject(object, 'gen', edit, []);
      if (!t.same(YAML.parse(out), applyPatch(object, ops), 'same result both ways')) return false;
      const back = transformText(out, 'gen', (o, where) => editObject(o, where, uninjectEdit, []));
      return t.equal(back, text, 'byte for byte') === true;
    }),
    { numRuns: 150 },
  );
});

t.test('any text as a manifest: a result or a MeshletError, never a crash', async (t) => {
  const yamlish = fc.oneof(
    fc.string(),
    fc.array(fc.constantFrom('kind: Pod\n', 'spec:\n', '  containers:\n', '  - name: a\n', '---\n', '...\n', '{', '[', '"', '# c\n', 'items: [', 'kind: List\n', '  hostNetwork: true\n', '&a x', '*a\n', ': \n', '\t'), { maxLength: 12 }).map((a) => a.join('')),
  );
  fc.assert(
    fc.property(yamlish, (text) => {
      try {
        transformText(text, 'gen', (o, where) => editObject(o, where, injectEdit(DEFAULT_SETTINGS), []));
        transformText(text, 'gen', (o, where) => editObject(o, where, uninjectEdit, []));
        return true;
      } catch (err) {
        return isMeshletError(err, 'MESHLET_ERR_MANIFEST') || isMeshletError(err, 'MESHLET_ERR_INJECT') || (t.fail(String((err as Error).stack)) && false);
      }
    }),
    { numRuns: 500 },
  );
});

t.test('objects that are not workloads pass through byte for byte', async () => {
  const doc = fc.record({ kind: fc.constantFrom('ConfigMap', 'Service', 'Secret', 'Namespace'), data: fc.dictionary(fc.string(), fc.string(), { maxKeys: 3 }) });
  fc.assert(
    fc.property(fc.array(doc, { minLength: 1, maxLength: 4 }), fc.constantFrom('', '# comment\n', '\n'), (docs, lead) => {
      const text = lead + docs.map((d) => YAML.stringify(d)).join('---\n');
      return transformText(text, 'gen', (o, where) => editObject(o, where, injectEdit(DEFAULT_SETTINGS), [])) === text;
    }),
  );
});

t.test('any annotations: settings or a MeshletError naming the annotation', async (t) => {
  const key = fc.oneof(fc.constantFrom(...ANNOTATION_NAMES), fc.string().map((s) => `meshlet.io/${s}`));
  fc.assert(
    fc.property(fc.dictionary(key, fc.string(), { maxKeys: 4 }), (annotations) => {
      try {
        podSettings(DEFAULT_SETTINGS, annotations);
        return true;
      } catch (err) {
        return isMeshletError(err, 'MESHLET_ERR_INJECT') && /annotation meshlet\.io\//.test((err as Error).message) ? true : t.fail(String(err)) && false;
      }
    }),
    { numRuns: 500 },
  );
});
