import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import YAML from 'yaml';
import { runManifestCommand } from '../../../src/inject/command.ts';
import { REPO_ROOT } from '../../../src/testbed/netns.ts';
import { validateObject } from '../../helpers/kube-schema.ts';
import { checkInjected } from './invariants.ts';

// Golden tests over a corpus of manifests written the way people write them
// (test/fixtures/k8s): each is injected with a few flag sets and compared with the
// expected output in golden/; then uninject must give back the input byte for byte,
// and injecting the output again must change nothing. UPDATE_GOLDEN=1 rewrites golden/
// (read the diff before committing it). Every object in, out and back is checked against
// the Kubernetes OpenAPI schema (test/helpers/kube-schema.ts), and checkInjected asserts
// what the schema cannot: what meshlet is responsible for.

const FIXTURES = path.join(REPO_ROOT, 'test/fixtures/k8s');
const GOLDEN = path.join(FIXTURES, 'golden');
const VARIANTS: Record<string, string[]> = {
  default: [],
  strict: ['--mtls', 'strict', '--sidecar-mode', 'classic', '--identity', 'cert-manager', '--mesh-cidrs', '10.0.0.0/8,fd00::/8', '--image-pull-policy', 'IfNotPresent'],
};

async function meshlet(command: 'inject' | 'uninject', args: string[], stdin = '') {
  let stdout = '';
  const stderr: string[] = [];
  const code = await runManifestCommand(command, args, { stdin: () => stdin, out: (s) => (stdout += s), err: (l) => stderr.push(l) });
  return { code, stdout, stderr };
}

/** Every document of a YAML or JSON stream. */
function documents(text: string): Array<Record<string, any>> {
  return YAML.parseAllDocuments(text).map((d) => d.toJS() as Record<string, any> | null).filter((o) => o !== null);
}

/** Every object of a YAML or JSON stream, Lists flattened. */
function objects(text: string): Array<Record<string, any>> {
  return documents(text).flatMap((o) => (o.kind === 'List' ? (o.items as Array<Record<string, any>>) : [o]));
}

/** Each document of `text` against the schema: one passing assertion per document, or a failure naming the object and the errors. */
function schemaValid(t: Test, text: string, what: string): void {
  for (const document of documents(text)) {
    try {
      t.ok(validateObject(document).length > 0, `${what}: ${document.kind} ${document.metadata?.name ?? ''} is valid against the schema`);
    } catch (err) {
      t.fail((err as Error).message);
    }
  }
}

const update = process.env.UPDATE_GOLDEN === '1';
for (const file of readdirSync(FIXTURES).filter((f) => /\.(ya?ml|json)$/.test(f))) {
  for (const [variant, flags] of Object.entries(VARIANTS)) {
    t.test(`${file} (${variant})`, async (t) => {
      const input = path.join(FIXTURES, file);
      const original = readFileSync(input, 'utf8');
      const injected = await meshlet('inject', [...flags, input]);
      t.equal(injected.code, 0, injected.stderr.join('\n'));
      const golden = path.join(GOLDEN, `${path.basename(file).replace(/\.(\w+)$/, `.${variant}.$1`)}`);
      if (update) writeFileSync(golden, injected.stdout);
      t.equal(injected.stdout, readFileSync(golden, 'utf8'), `matches ${path.relative(REPO_ROOT, golden)}`);

      schemaValid(t, original, 'input');
      schemaValid(t, injected.stdout, 'injected');
      for (const object of objects(injected.stdout)) checkInjected(t, object, variant === 'strict' ? 'classic' : 'native');

      const again = await meshlet('inject', [...flags, '-'], injected.stdout);
      t.equal(again.stdout, injected.stdout, 'injecting again changes nothing');
      t.ok(again.stderr.every((l) => /unchanged \((already injected|meshlet\.io\/inject is "false")\)$/.test(l)), again.stderr.join('\n'));

      const back = await meshlet('uninject', ['-'], injected.stdout);
      t.equal(back.code, 0, back.stderr.join('\n'));
      t.equal(back.stdout, original, 'uninject gives back the input, byte for byte');
      schemaValid(t, back.stdout, 'uninjected');
    });
  }
}

// The schema check must be able to fail, or the assertions above say nothing: the
// mistakes an injection could make, each in an injected pod that is otherwise valid.
t.test('the schema check rejects broken injected objects', async (t) => {
  const injected = await meshlet('inject', [...VARIANTS.strict!, path.join(FIXTURES, 'shop.yaml')]);
  const deployment = objects(injected.stdout).find((o) => o.kind === 'Deployment')!;
  t.same(validateObject(deployment), ['apps/v1/Deployment'], 'valid as injected');
  const breakages: Array<[string, (pod: Record<string, any>) => void, RegExp]> = [
    ['a port number as a string', (pod) => (pod.spec.containers[0].ports[0].containerPort = '15020'), /containerPort must be integer/],
    ['an env value that is not a string', (pod) => (pod.spec.containers[0].env.find((e: any) => e.value !== undefined).value = 1), /env\/\d+\/value must be string/],
    ['a container without a name', (pod) => delete pod.spec.initContainers.at(-1).name, /initContainers\/\d+ must have required property name/],
    ['a UID as a string', (pod) => (pod.spec.containers[0].securityContext.runAsUser = '1337'), /runAsUser must be integer/],
    ['a probe without its port', (pod) => delete pod.spec.containers[0].readinessProbe.httpGet.port, /httpGet must have required property port/],
    ['a CSI volume without its driver', (pod) => delete pod.spec.volumes.find((v: any) => v.csi).csi.driver, /csi must have required property driver/],
    ['capabilities as a string', (pod) => (pod.spec.initContainers.at(-1).securityContext.capabilities.add = 'NET_ADMIN'), /capabilities\/add must be array/],
    ['an annotation that is not a string', (pod) => (pod.metadata.annotations['prometheus.io/port'] = 15020), /annotations\/prometheus\.io~1port must be string/],
  ];
  for (const [what, breakIt, error] of breakages) {
    const broken = structuredClone(deployment);
    breakIt(broken.spec.template);
    t.throws(() => validateObject(broken), error, what);
  }
  t.throws(() => validateObject({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'x' }, spec: { template: {} } }), /must have required property selector/, 'a Deployment without a selector');
  t.throws(() => validateObject({ apiVersion: 'example.com/v1', kind: 'Widget' }), /no schema for example\.com\/v1\/Widget/, 'an unknown kind is not waved through');
});
