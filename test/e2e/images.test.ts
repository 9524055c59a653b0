import path from 'node:path';
import t from 'tap';
import YAML from 'yaml';
import { runManifestCommand } from '../../src/inject/command.ts';
import type { Container, PodTemplate } from '../../src/inject/kube.ts';
import { run } from '../../src/testbed/exec.ts';
import { IdentityStore } from '../../src/testbed/identities.ts';
import { scrape } from '../../src/testbed/metrics.ts';
import { REPO_ROOT, Testbed, testbedUnavailable, type Pod } from '../../src/testbed/netns.ts';
import { runPod } from '../helpers/kubelet.ts';
import { eventually } from './l7-common.ts';
import { IMAGES, podman, podmanUnavailable, runArgs } from '../helpers/podman.ts';

// The images scripts/build-images.sh builds (meshlet-init, meshlet-proxy), run with
// podman in network-namespace pods, configured by what `meshlet inject` writes: the init
// image runs `meshlet init --validate` in a pod; then a whole injected Deployment's pod
// runs from the images (test/helpers/kubelet.ts): the init container with exactly its
// two capabilities, the native sidecar as 1337 on a read-only root with no capabilities,
// then the app, which is reached through the sidecar. Skipped, with the reason, where
// podman or the images are missing.

const HTTP_APP = path.join(REPO_ROOT, 'src/testbed/apps/http-app.ts');

const MANIFEST = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web, version: v1}
      annotations:
        meshlet.io/exclude-outbound-ports: "9"
    spec:
      serviceAccountName: web
      containers:
      - name: web
        image: testbed/http-app
        ports:
        - {name: http, containerPort: 8080}
        readinessProbe:
          httpGet: {path: /ready, port: 8080}
`;

async function injected(): Promise<PodTemplate> {
  let out = '';
  const errors: string[] = [];
  const flags = ['--init-image', IMAGES.init, '--proxy-image', IMAGES.proxy, '-'];
  const code = await runManifestCommand('inject', flags, { stdin: () => MANIFEST, out: (s) => (out += s), err: (l) => errors.push(l) });
  if (code !== 0) throw new Error(errors.join('\n'));
  return YAML.parse(out).spec.template;
}

/** The init container as the image, in `pod`, with its spec's env and capabilities. */
function runInit(pod: Pod, init: Container, options: { extraArgs?: string[]; extraCapabilities?: string[]; name: string }) {
  const env = Object.fromEntries(((init.env ?? []) as Array<{ name: string; value: string }>).map((e) => [e.name, e.value]));
  return run(podman(runArgs({ image: init.image!, netns: pod.netns, container: init, env, mounts: {}, ...options, name: `${pod.netns}-${options.name}` })), { timeoutMs: 120_000 });
}

const rulesOf = async (pod: Pod) => (await pod.runOk(['iptables-save'])).stdout + (await pod.runOk(['iptables-nft-save'])).stdout;
const withoutComments = (save: string) => save.replace(/^#.*\n/gm, '');

const unavailable = testbedUnavailable() ?? podmanUnavailable([IMAGES.init, IMAGES.proxy]);
if (unavailable) {
  t.plan(0, unavailable);
} else {
  t.test('the init image runs meshlet init --validate in a pod', async (t) => {
    const tb = await Testbed.create(['web'], { subnet: 49 });
    t.teardown(() => tb.destroy());
    const web = tb.pod('web');
    const init = (await injected()).spec.initContainers!.find((c) => c.name === 'meshlet-init')!;
    t.equal(init.image, IMAGES.init);

    const before = withoutComments(await rulesOf(web));
    const noCaps = structuredClone(init);
    noCaps.securityContext = { ...noCaps.securityContext, capabilities: { drop: ['ALL'] } };
    const refused = await runInit(web, noCaps, { name: 'nocaps' });
    t.not(refused.code, 0, 'without NET_ADMIN the container cannot install rules: the capability set is real');
    t.equal(withoutComments(await rulesOf(web)), before, 'and the pod has no rules');

    // --validate also needs SETUID and SETGID (a connection as the proxy's UID), which injected pods do not grant.
    const result = await runInit(web, init, { name: 'validate', extraArgs: ['--validate'], extraCapabilities: ['SETUID', 'SETGID'] });
    t.equal(result.code, 0, result.stderr);
    t.match(result.stdout + result.stderr, /IPv4 rules installed with iptables-/, 'the rules went in from inside the container');
    t.match(result.stdout + result.stderr, /validated: a connection to .* was redirected to port 15001/, 'and a redirected connection proved them');
    t.match(await rulesOf(web), /MESHLET_OUTPUT .*--dport 9 .*-j RETURN/, "the pod's exclude-outbound-ports annotation reached the container's env");
  });

  t.test('an injected Deployment run from the images', async (t) => {
    const ids = new IdentityStore();
    t.teardown(() => ids.remove());
    const tb = await Testbed.create(['web', 'node'], { subnet: 50 });
    t.teardown(() => tb.destroy());
    const [web, node] = [tb.pod('web'), tb.pod('node')];
    const ca = await ids.ca('ca');
    const id = await ids.issue(ca, 'spiffe://cluster.local/ns/shop/sa/web', { name: 'web' });
    const template = await injected();
    const running = await runPod({
      pod: web,
      node,
      template,
      testbed: tb,
      containerImages: [IMAGES.init, IMAGES.proxy],
      downward: { 'metadata.name': 'web-7c9d8f6b5d-x7k2p', 'metadata.namespace': 'shop', "metadata.labels['app']": 'web', "metadata.labels['version']": 'v1', 'spec.serviceAccountName': 'web' },
      mounts: { '/var/run/secrets/meshlet': id.dir },
      apps: { 'testbed/http-app': [process.execPath, HTTP_APP, '--pod', 'web', '--port', '8080'] },
    });
    // Killing a podman client (the testbed's teardown) would leave its container running.
    t.teardown(() => running.close());
    t.pass("the init image ran meshlet init, the sidecar image passed its startup probe, the app started");

    const sidecar = template.spec.initContainers!.find((c) => c.name === 'meshlet-proxy')!;
    const name = running.containers.find((c) => c.includes('-meshlet-proxy-'))!;
    const pid = (await run(podman(['inspect', '--format', '{{.State.Pid}}', name]))).stdout.trim();
    const status = (await run(['cat', `/proc/${pid}/status`])).stdout;
    t.match(status, /^Uid:\s+1337\s+1337\s+1337\s+1337$/m, 'the proxy runs as 1337');
    t.match(status, /^CapEff:\s+0+$/m, 'with no capabilities');
    t.match((await run(['cat', `/proc/${pid}/mountinfo`])).stdout, /^\S+ \S+ \S+ \S+ \/ ro[ ,]/m, 'on a read-only root filesystem');

    for (const [what, probe] of [['readiness', sidecar.readinessProbe], ['liveness', sidecar.livenessProbe]] as const) {
      t.equal(await running.probe(probe!), 200, `the sidecar's ${what} probe answers from outside the pod`);
    }
    // The app has no startup probe: kubelet, too, waits for its readiness before sending it traffic.
    let last: number | string = '';
    const ready = await eventually(async () => (last = await running.probe(template.spec.containers[0]!.readinessProbe!)) === 200, 'app readiness', 20_000);
    t.ok(ready, `the app's readiness probe passes through the sidecar (last: ${last})`);
    const call = await node.runOk(['curl', '-s', '--max-time', '5', `http://${web.ipv4}:8080/hello`]);
    t.equal(JSON.parse(call.stdout).remoteAddress, web.ipv4, "a request from outside reached the app through the image's sidecar");
    const metrics = await scrape(web);
    t.ok(metrics.value('meshlet_tcp_connections_opened_total', { reporter: 'destination' }) > 0, "the sidecar's metrics count it");
    const rss = Number(/^VmRSS:\s+(\d+) kB$/m.exec((await run(['cat', `/proc/${pid}/status`])).stdout)?.[1]) / 1024;
    const limit = Number.parseInt(String((sidecar.resources as { limits?: { memory?: string } } | undefined)?.limits?.memory), 10);
    t.ok(rss > 0 && rss < limit, `the image's sidecar, ${rss.toFixed(0)} MiB RSS, is within inject's default memory limit (${limit} MiB)`);
    await running.close();
    t.equal((await run(podman(['ps', '--all', '--quiet', '--filter', `name=${web.netns}`]))).stdout.trim(), '', 'no container left behind');
  });
}
