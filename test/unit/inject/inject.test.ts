import t from 'tap';
import { isMeshletError } from '../../../src/errors.ts';
import { runManifestCommand } from '../../../src/inject/command.ts';
import { applyPatch } from '../../../src/inject/json-patch.ts';
import type { PodTemplate } from '../../../src/inject/kube.ts';
import { injectPod } from '../../../src/inject/pod.ts';
import { DEFAULT_SETTINGS, podSettings, settingsFromFlags } from '../../../src/inject/settings.ts';
import { uninjectPod } from '../../../src/inject/uninject.ts';
import { loadConfig } from '../../../src/config/load.ts';
import { parseInitOptions } from '../../../src/iptables/options.ts';
import { checkPod } from './invariants.ts';

// injectPod and uninjectPod on plain objects (the webhook's path), the refusals, the
// per-pod annotations, and that what the sidecar and the init container are given is
// what the proxy's and init's own parsers accept.

const pod = (spec: Partial<PodTemplate['spec']> = {}, annotations?: Record<string, string>): PodTemplate => ({
  metadata: { name: 'web', namespace: 'shop', labels: { app: 'web' }, ...(annotations ? { annotations } : {}) },
  spec: { containers: [{ name: 'web', image: 'nginx' }], ...spec },
});

function inject(template: PodTemplate, settings = DEFAULT_SETTINGS) {
  const result = injectPod(template, { where: 'Pod shop/web' }, settings);
  if (!result.changed) throw new Error(`not injected: ${result.reason}`);
  return applyPatch(template, result.ops);
}

function refused(template: PodTemplate): Error {
  try {
    injectPod(template, { where: 'Deployment shop/web' }, DEFAULT_SETTINGS);
  } catch (err) {
    return err as Error;
  }
  throw new Error('not refused');
}

t.test('a pod injected and uninjected as plain objects, both modes', async (t) => {
  for (const mode of ['native', 'classic'] as const) {
    const template = pod({ initContainers: [{ name: 'setup', image: 'busybox' }] });
    const injected = inject(template, { ...DEFAULT_SETTINGS, sidecarMode: mode });
    checkPod(t, injected, mode, `${mode} pod`);
    const result = uninjectPod(injected, { where: 'Pod shop/web' });
    t.ok(result.changed);
    if (result.changed) t.same(applyPatch(injected, result.ops), template, `${mode}: uninject restores the object exactly`);
  }
});

t.test('refusals name the object and the container', async (t) => {
  const host = refused(pod({ hostNetwork: true }));
  t.ok(isMeshletError(host, 'MESHLET_ERR_INJECT'));
  t.match(host.message, /^Deployment shop\/web: uses hostNetwork: true/);
  const uid = refused(pod({ containers: [{ name: 'web', image: 'x' }, { name: 'helper', image: 'y', securityContext: { runAsUser: 1337 } }] }));
  t.match(uid.message, /^Deployment shop\/web: container helper runs as UID 1337, the proxy's/);
  const podUid = refused(pod({ securityContext: { runAsUser: 1337 } }));
  t.match(podUid.message, /container web runs as UID 1337/, 'the pod-level UID applies to containers that do not set their own');
  t.doesNotThrow(() => inject(pod({ securityContext: { runAsUser: 1337 }, containers: [{ name: 'web', image: 'x', securityContext: { runAsUser: 1000 } }] })), 'unless the container overrides it');
  const gid = refused(pod({ initContainers: [{ name: 'setup', image: 'x', securityContext: { runAsGroup: 1337 } as never }] }));
  t.match(gid.message, /init container setup runs as GID 1337/);
  const clash = refused(pod({ containers: [{ name: 'meshlet-proxy', image: 'x' }] }));
  t.match(clash.message, /already has a container named meshlet-proxy/);
  const volume = refused(pod({ volumes: [{ name: 'meshlet-identity', emptyDir: {} }] }));
  t.match(volume.message, /already has a volume named meshlet-identity/);
});

t.test('annotations: per-pod settings, checked, with the closest name for a typo', async (t) => {
  const injected = inject(pod({}, { 'meshlet.io/exclude-outbound-ports': '5432,6379', 'meshlet.io/proxy-memory': '1Gi', 'meshlet.io/mtls': 'strict' }));
  const init = injected.spec.initContainers!.find((c) => c.name === 'meshlet-init')!;
  t.same(init.env, [{ name: 'MESHLET_EXCLUDE_OUTBOUND_PORTS', value: '5432,6379' }]);
  const proxy = injected.spec.initContainers!.find((c) => c.name === 'meshlet-proxy')!;
  t.equal((proxy.resources as any).requests.memory, '1Gi');
  t.ok((proxy.env as any[]).some((e) => e.name === 'MESHLET_INBOUND_MTLS' && e.value === 'strict'));

  const bad = (annotations: Record<string, string>) => {
    try {
      podSettings(DEFAULT_SETTINGS, annotations);
    } catch (err) {
      t.ok(isMeshletError(err, 'MESHLET_ERR_INJECT'));
      return (err as Error).message;
    }
    return 'accepted';
  };
  t.match(bad({ 'meshlet.io/exclude-outbound-port': '80' }), /annotation meshlet\.io\/exclude-outbound-port: unknown; did you mean meshlet\.io\/exclude-outbound-ports\?/);
  t.match(bad({ 'meshlet.io/valueOf': '' }), /annotation meshlet\.io\/valueOf: unknown/, 'a name of Object.prototype is an unknown annotation like any other (fast-check found it)');
  t.match(bad({ 'meshlet.io/constructor': 'x' }), /annotation meshlet\.io\/constructor: unknown/);
  t.match(bad({ 'meshlet.io/exclude-outbound-ports': '80,90-x' }), /annotation meshlet\.io\/exclude-outbound-ports: .*90-x/);
  t.match(bad({ 'meshlet.io/include-outbound-cidrs': '10.0.0.0/33' }), /annotation meshlet\.io\/include-outbound-cidrs: .*10\.0\.0\.0\/33/);
  t.match(bad({ 'meshlet.io/sidecar-mode': 'sidecar' }), /annotation meshlet\.io\/sidecar-mode: "sidecar" is not one of native, classic/);
  t.match(bad({ 'meshlet.io/inject': 'yes' }), /annotation meshlet\.io\/inject: "yes" is not "true" or "false"/);
  t.match(bad({ 'meshlet.io/proxy-cpu': 'x', 'meshlet.io/mtls': 'on' }), /proxy-cpu.*; annotation meshlet\.io\/mtls/, 'every problem at once');
  t.equal(bad({ 'other.io/whatever': 'x', 'meshlet.io/inject': 'true' }), 'accepted', 'other prefixes are not ours');
  t.equal(bad({ 'meshlet.io/identity-secret': 'id-{serviceAccount}.mesh' }), 'accepted');
  t.match(bad({ 'meshlet.io/identity-secret': 'Id_{serviceAccount}' }), /annotation meshlet\.io\/identity-secret: "Id_\{serviceAccount\}" is not a Kubernetes object name/);
  t.match(bad({ 'meshlet.io/identity-secret': '{service}' }), /is not a Kubernetes object name/, 'only {serviceAccount} is a placeholder');
  t.same(podSettings(DEFAULT_SETTINGS, { 'meshlet.io/inject': 'false' }), { inject: false, reason: 'meshlet.io/inject is "false"' });
});

t.test('the sidecar env is what the proxy loads, the init env what init parses', async (t) => {
  const settings = settingsFromFlags({ mtls: 'strict', 'mesh-cidrs': '10.0.0.0/8, fd00::/8' });
  const template = pod({ containers: [{ name: 'web', image: 'x', ports: [{ name: 'http', containerPort: 8080 }], livenessProbe: { httpGet: { path: '/h', port: 'http' } }, readinessProbe: { tcpSocket: { port: 8080 } }, startupProbe: { grpc: { port: 9000 } } }] }, { 'meshlet.io/inbound-ports': '8080,9000' });
  const injected = inject(template, settings);
  const proxy = injected.spec.initContainers!.find((c) => c.name === 'meshlet-proxy')!;
  // Downward API values as kubelet would fill them in.
  const downward: Record<string, string> = { 'metadata.namespace': 'shop', "metadata.labels['app']": 'web', "metadata.labels['version']": '', 'metadata.name': 'web-1', 'spec.serviceAccountName': 'default' };
  const env = Object.fromEntries((proxy.env as any[]).map((e) => [e.name, e.value ?? downward[e.valueFrom.fieldRef.fieldPath]]));
  const config = loadConfig({ env });
  t.equal(config.inbound.mtls, 'strict');
  t.same(config.mesh.peers, [{ cidrs: ['10.0.0.0/8', 'fd00::/8'] }]);
  // No workload name in the target (as for the webhook's pods): the pod's own name.
  t.same([config.workload.name, config.workload.namespace, config.workload.app, config.workload.pod], ['web-1', 'shop', 'web', 'web-1']);
  t.same(config.health.appProbes, {
    '/app-health/web/livez': { httpGet: { path: '/h', port: 8080 } },
    '/app-health/web/readyz': { tcpSocket: { port: 8080 } },
    '/app-health/web/startupz': { grpc: { port: 9000 } },
  }, 'named ports resolved; every kind the proxy would answer for');
  const init = injected.spec.initContainers!.find((c) => c.name === 'meshlet-init')!;
  const options = parseInitOptions([], Object.fromEntries((init.env as any[]).map((e) => [e.name, e.value])));
  t.same(options.inboundPorts, [{ from: 8080, to: 8080 }, { from: 9000, to: 9000 }]);
});

t.test('a probe on an undeclared port name is refused, naming container and probe', async (t) => {
  const template = pod({ containers: [{ name: 'web', image: 'x', livenessProbe: { httpGet: { port: 'http' } } }] });
  t.throws(() => injectPod(template, { where: 'Pod shop/web' }, settingsFromFlags({ mtls: 'strict' })), /Pod shop\/web: container web: livenessProbe: port 'http' is not a named port/);
  t.doesNotThrow(() => injectPod(template, { where: 'Pod shop/web' }, DEFAULT_SETTINGS), 'without the rewrite, the probe is not read');
  const plain = injectPod(template, { where: 'Pod shop/web' }, DEFAULT_SETTINGS);
  t.notOk(plain.changed && plain.warnings, 'no probes rewritten, no warning');
  const fixed = pod({ containers: [{ name: 'web', image: 'x', livenessProbe: { httpGet: { port: 8080 } } }] });
  const rewritten = injectPod(fixed, { where: 'Pod shop/web' }, settingsFromFlags({ mtls: 'strict' }));
  t.match(rewritten.changed && rewritten.warnings, [/runs them against the app over localhost/], 'rewritten probes come with a note that says where they went');
});

t.test('a status annotation that is not meshlet\'s is an error for uninject, not a guess', async (t) => {
  const template = pod({}, { 'meshlet.io/status': '{"version":2}' });
  t.throws(() => uninjectPod(template, { where: 'Pod shop/web' }), /Pod shop\/web: annotation meshlet\.io\/status is not what meshlet inject writes/);
  t.same(uninjectPod(pod(), { where: 'x' }), { changed: false, reason: 'not injected' });
});

t.test('the command: errors on stderr in one style, nothing on stdout when refused', async (t) => {
  const run = async (command: 'inject' | 'uninject', args: string[], stdin: string) => {
    let stdout = '';
    const stderr: string[] = [];
    const code = await runManifestCommand(command, args, { stdin: () => stdin, out: (s) => (stdout += s), err: (l) => stderr.push(l) });
    return { code, stdout, stderr };
  };
  const hostNet = 'kind: Pod\nmetadata: {name: a}\nspec:\n  hostNetwork: true\n  containers: [{name: a, image: b}]\n';
  const refusedRun = await run('inject', [], `kind: ConfigMap\n---\n${hostNet}`);
  t.equal(refusedRun.code, 1);
  t.equal(refusedRun.stdout, '', 'all or nothing');
  t.match(refusedRun.stderr[0], /^meshlet inject: MESHLET_ERR_INJECT: stdin, document 2: Pod a: uses hostNetwork: true/);
  const broken = await run('inject', [], 'kind: Pod\nspec: [unclosed\n');
  t.match(broken.stderr[0], /^meshlet inject: MESHLET_ERR_MANIFEST: stdin: YAML syntax error at line \d+, column \d+/);
  const noContainers = await run('inject', [], 'kind: Deployment\nmetadata: {name: d}\nspec: {template: {spec: {}}}\n');
  t.match(noContainers.stderr[0], /Deployment d: no pod spec with containers at spec\.template\.spec\.containers/);
  const missing = await run('inject', ['/nonexistent/x.yaml'], '');
  t.match(missing.stderr[0], /^meshlet inject: MESHLET_ERR_MANIFEST: cannot read \/nonexistent\/x\.yaml/);
  const passthrough = 'kind: ConfigMap   # spacing kept\ndata: {a: "1"}\n';
  t.equal((await run('inject', [], passthrough)).stdout, passthrough, 'other objects are copied byte for byte');
  const dir = t.testdir({ 'a.yaml': 'kind: ConfigMap\n', 'b.json': '{"kind": "Secret"}', 'notes.txt': 'not a manifest' });
  t.equal((await run('inject', [dir], '')).stdout, 'kind: ConfigMap\n---\n{"kind": "Secret"}', 'a directory: its manifests in name order, joined as one stream');
});
