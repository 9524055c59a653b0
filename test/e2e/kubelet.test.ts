import path from 'node:path';
import t from 'tap';
import YAML from 'yaml';
import { runManifestCommand } from '../../src/inject/command.ts';
import type { PodTemplate } from '../../src/inject/kube.ts';
import { IdentityStore } from '../../src/testbed/identities.ts';
import { scrape } from '../../src/testbed/metrics.ts';
import { APP_UID, REPO_ROOT, Testbed, testbedUnavailable } from '../../src/testbed/netns.ts';
import { runPod, type RunningPod } from '../helpers/kubelet.ts';

// An injected Deployment's pod template run the way a kubelet would (test/helpers/kubelet.ts),
// in network-namespace pods: meshlet-init's command and env, then the native sidecar with
// its env until its startup probe passes, then the app. Then: the probes answer from
// outside the pod, and traffic between two such pods flows through both sidecars over
// mutual TLS. Under strict mTLS, inject moves the app's probes to the sidecar's 15020,
// and the sidecar answers them by checking the app over localhost.

const HTTP_APP = path.join(REPO_ROOT, 'src/testbed/apps/http-app.ts');

const manifest = (name: string, startup = '') => `apiVersion: apps/v1
kind: Deployment
metadata:
  name: ${name}
  namespace: shop
spec:
  selector:
    matchLabels: {app: ${name}}
  template:
    metadata:
      labels: {app: ${name}, version: v1}
      annotations:
        meshlet.io/exclude-outbound-ports: "9"
    spec:
      serviceAccountName: ${name}
      containers:
      - name: ${name}
        image: testbed/http-app
        ports:
        - {name: http, containerPort: 8080}
        readinessProbe:
          httpGet: {path: /ready, port: 8080}
        livenessProbe:
          tcpSocket: {port: 8080}
${startup}`;

async function inject(text: string, flags: string[]): Promise<PodTemplate> {
  let out = '';
  const errors: string[] = [];
  const code = await runManifestCommand('inject', [...flags, '-'], { stdin: () => text, out: (s) => (out += s), err: (l) => errors.push(l) });
  if (code !== 0) throw new Error(errors.join('\n'));
  return YAML.parse(out).spec.template;
}

const unavailable = testbedUnavailable();
if (unavailable) {
  t.plan(0, unavailable);
} else {
  t.test('an injected Deployment, run as a kubelet would, in two pods', async (t) => {
    const ids = new IdentityStore();
    t.teardown(() => ids.remove());
    const tb = await Testbed.create(['web', 'caller', 'node'], { subnet: 47 });
    t.teardown(() => tb.destroy());
    const [web, caller, node] = [tb.pod('web'), tb.pod('caller'), tb.pod('node')];
    const ca = await ids.ca('ca');
    const flags = ['--mesh-cidrs', `${web.ipv4}/32,${caller.ipv4}/32,${web.ipv6}/128,${caller.ipv6}/128`];

    const running: Record<string, RunningPod> = {};
    for (const pod of [web, caller]) {
      const template = await inject(manifest(pod.name), flags);
      const id = await ids.issue(ca, `spiffe://cluster.local/ns/shop/sa/${pod.name}`, { name: pod.name });
      running[pod.name] = await runPod({
        pod,
        node,
        template,
        downward: { 'metadata.name': `${pod.name}-7c9d8f6b5d-x7k2p`, 'metadata.namespace': 'shop', "metadata.labels['app']": pod.name, "metadata.labels['version']": 'v1', 'spec.serviceAccountName': pod.name },
        mounts: { '/var/run/secrets/meshlet': id.dir },
        apps: { 'testbed/http-app': [process.execPath, HTTP_APP, '--pod', pod.name, '--port', '8080'] },
      });
      t.pass(`${pod.name}: init container ran, the sidecar passed its startup probe, the app started`);
    }

    const rules = (await web.runOk(['iptables-save'])).stdout + (await web.runOk(['iptables-nft-save'])).stdout;
    t.match(rules, /MESHLET_OUTPUT .*--dport 9 .*-j RETURN/, "the pod's exclude-outbound-ports annotation reached meshlet init");

    const template = await inject(manifest('web'), flags);
    const sidecar = template.spec.initContainers!.find((c) => c.name === 'meshlet-proxy')!;
    const app = template.spec.containers[0]!;
    for (const [what, probe] of [['sidecar readiness', sidecar.readinessProbe], ['sidecar liveness', sidecar.livenessProbe], ['app readiness', app.readinessProbe], ['app liveness', app.livenessProbe]] as const) {
      t.equal(await running.web!.probe(probe!), 200, `${what} answers from outside the pod`);
    }

    const call = await caller.runOk(['curl', '-s', '--max-time', '5', `http://${web.ipv4}:8080/hello`], { uid: APP_UID });
    const seen = JSON.parse(call.stdout);
    t.equal(seen.pod, 'web', "the caller's request reached web's app");
    t.equal(seen.remoteAddress, web.ipv4, "through web's sidecar (the app sees its own pod's address)");
    const metrics = await scrape(web);
    t.ok(metrics.value('meshlet_tcp_connections_opened_total', { reporter: 'destination', connection_security_policy: 'mutual_tls' }) > 0, "web's sidecar took the caller's connection over mutual TLS");
  });

  t.test('strict mTLS: the rewritten probes answer from another namespace', async (t) => {
    const ids = new IdentityStore();
    t.teardown(() => ids.remove());
    const tb = await Testbed.create(['web', 'node'], { subnet: 48 });
    t.teardown(() => tb.destroy());
    const [web, node] = [tb.pod('web'), tb.pod('node')];
    const ca = await ids.ca('ca');
    const flags = ['--mtls', 'strict', '--mesh-cidrs', `${web.ipv4}/32,${web.ipv6}/128`];
    const startup = '        startupProbe:\n          httpGet: {path: /started, port: http}\n';
    const template = await inject(manifest('web', startup), flags);
    const app = template.spec.containers[0]!;
    t.match(app.startupProbe, { httpGet: { path: '/app-health/web/startupz', port: 15020 } }, 'inject rewrote the startup probe');
    t.match(app.readinessProbe, { httpGet: { path: '/app-health/web/readyz', port: 15020 } });
    t.match(app.livenessProbe, { httpGet: { path: '/app-health/web/livez', port: 15020 } }, 'a tcpSocket probe becomes httpGet on 15020');

    const id = await ids.issue(ca, 'spiffe://cluster.local/ns/shop/sa/web', { name: 'web' });
    const running = await runPod({
      pod: web,
      node,
      template,
      downward: { 'metadata.name': 'web-7c9d8f6b5d-x7k2p', 'metadata.namespace': 'shop', "metadata.labels['app']": 'web', "metadata.labels['version']": 'v1', 'spec.serviceAccountName': 'web' },
      mounts: { '/var/run/secrets/meshlet': id.dir },
      apps: { 'testbed/http-app': [process.execPath, HTTP_APP, '--pod', 'web', '--port', '8080'] },
    });
    t.pass("the app's rewritten startup probe passed through the sidecar");

    t.not(await running.probe({ httpGet: { path: '/ready', port: 8080 } }), 200, "the original plaintext probe to the app's port is refused under strict");
    for (const [what, probe] of [['readiness', app.readinessProbe], ['liveness', app.livenessProbe], ['startup', app.startupProbe]] as const) {
      t.equal(await running.probe(probe!), 200, `the rewritten ${what} probe answers 200 from outside the pod`);
    }
    const body = (route: string) => node.runOk(['curl', '-s', '--max-time', '5', `http://${web.ipv4}:15020${route}`]).then((r) => r.stdout);
    t.equal(await body('/app-health/web/readyz'), 'ok: HTTP 200\n', 'readiness ran its httpGet against the app');
    t.equal(await body('/app-health/web/livez'), 'ok: connected to port 8080\n', 'liveness ran its tcpSocket check against the app');
    t.equal(await body('/app-health/other/livez'), 'not found\n', 'a path inject did not write is not found');
  });
}
