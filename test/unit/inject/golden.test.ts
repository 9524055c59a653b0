import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import YAML from 'yaml';
import { runManifestCommand } from '../../../src/inject/command.ts';
import { REPO_ROOT } from '../../../src/testbed/netns.ts';
import { checkInjected } from './invariants.ts';

// Golden tests over a corpus of manifests written the way people write them
// (test/fixtures/k8s): each is injected with a few flag sets and compared with the
// expected output in golden/; then uninject must give back the input byte for byte,
// and injecting the output again must change nothing. UPDATE_GOLDEN=1 rewrites golden/
// (read the diff before committing it).
//
// Not done here: validating the outputs against the Kubernetes OpenAPI schema. That
// needs a schema validator package (kubernetes-models or the like), which is not
// installed; checkInjected asserts what meshlet is responsible for instead.

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

/** Every object of a YAML or JSON stream, Lists flattened. */
function objects(text: string): Array<Record<string, unknown>> {
  const all = YAML.parseAllDocuments(text).map((d) => d.toJS() as Record<string, unknown> | null).filter((o) => o !== null);
  return all.flatMap((o) => (o.kind === 'List' ? (o.items as Array<Record<string, unknown>>) : [o]));
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

      for (const object of objects(injected.stdout)) checkInjected(t, object, variant === 'strict' ? 'classic' : 'native');

      const again = await meshlet('inject', [...flags, '-'], injected.stdout);
      t.equal(again.stdout, injected.stdout, 'injecting again changes nothing');
      t.ok(again.stderr.every((l) => /unchanged \((already injected|meshlet\.io\/inject is "false")\)$/.test(l)), again.stderr.join('\n'));

      const back = await meshlet('uninject', ['-'], injected.stdout);
      t.equal(back.code, 0, back.stderr.join('\n'));
      t.equal(back.stdout, original, 'uninject gives back the input, byte for byte');
    });
  }
}
