import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import jsonpatch from 'fast-json-patch';
import t from 'tap';
import type { Operation } from '../../../src/inject/json-patch.ts';
import type { PodTemplate } from '../../../src/inject/kube.ts';
import { settingsFromFlags } from '../../../src/inject/settings.ts';
import { createLogger } from '../../../src/log.ts';
import { REPO_ROOT } from '../../../src/testbed/netns.ts';
import { startWebhook } from '../../../src/webhook/server.ts';
import { workloadName } from '../../../src/webhook/workload-name.ts';
import { validateObject } from '../../helpers/kube-schema.ts';
import { checkPod } from '../inject/invariants.ts';

// The webhook over real HTTPS, as the API server calls it: a certificate for the
// Service's DNS name, the AdmissionReview a ReplicaSet controller's pod creation
// produces, and the JSON patch in the answer applied to that pod with fast-json-patch
// (as the API server applies it: every operation must apply), the result checked
// against the Kubernetes OpenAPI schema.

const SERVICE = 'meshlet-webhook.meshlet-system.svc';
const REVIEW = JSON.parse(readFileSync(path.join(REPO_ROOT, 'test/fixtures/k8s/admission/pod-create.json'), 'utf8'));

function certificate(dir: string): string {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', `/CN=${SERVICE}`, '-addext', `subjectAltName=DNS:${SERVICE}`, '-keyout', path.join(dir, 'tls.key'), '-out', path.join(dir, 'tls.crt')], { stdio: 'ignore' });
  return readFileSync(path.join(dir, 'tls.crt'), 'utf8');
}

interface Reply {
  status: number;
  body: any;
}

function post(port: number, ca: string, body: unknown, { path: urlPath = '/inject', method = 'POST', raw }: { path?: string; method?: string; raw?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path: urlPath, method, ca, servername: SERVICE, agent: false, headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, body: text.startsWith('{') ? JSON.parse(text) : text }));
    });
    req.on('error', reject);
    req.end(raw ?? (body === undefined ? undefined : JSON.stringify(body)));
  });
}

const review = (patch: (request: any) => void = () => {}) => {
  const copy = structuredClone(REVIEW);
  patch(copy.request);
  return copy;
};

t.test('webhook over HTTPS', async (t) => {
  const dir = t.testdir({});
  const ca = certificate(dir);
  const webhook = await startWebhook({ port: 0, host: '127.0.0.1', tlsDir: dir, settings: settingsFromFlags({ mtls: 'strict' }), scope: { ownNamespace: 'meshlet-system' }, log: createLogger('silent') });
  t.teardown(() => webhook.close());

  t.test('a ReplicaSet pod: patched, and the patched pod is meshed', async (t) => {
    const reply = await post(webhook.port, ca, REVIEW);
    t.equal(reply.status, 200);
    t.equal(reply.body.apiVersion, 'admission.k8s.io/v1');
    t.equal(reply.body.kind, 'AdmissionReview');
    t.equal(reply.body.response.uid, REVIEW.request.uid, 'the answer carries the request uid');
    t.equal(reply.body.response.allowed, true);
    t.equal(reply.body.response.patchType, 'JSONPatch');
    t.match(reply.body.response.warnings, [/^meshlet: Pod shop\/cart-7c9d8f6b5d-\*: the app's probes now go to the sidecar's \/app-health\/\.\.\. on 15020, which runs them against the app over localhost/], 'kubectl says where the rewritten probes went');
    const ops: Operation[] = JSON.parse(Buffer.from(reply.body.response.patch, 'base64').toString('utf8'));
    t.ok(ops.every((o) => ['add', 'replace', 'remove'].includes(o.op) && o.path.startsWith('/')), 'RFC 6902 operations');
    t.same(validateObject(REVIEW.request.object), ['v1/Pod'], 'the pod as the API server sent it is valid');
    const pod = jsonpatch.applyPatch(structuredClone(REVIEW.request.object), ops, true, false).newDocument as PodTemplate;
    t.same(validateObject(pod as never), ['v1/Pod'], 'and so is the patched pod');
    checkPod(t, pod, 'native', 'webhook pod');
    const proxy = pod.spec.initContainers!.find((c) => c.name === 'meshlet-proxy')!;
    const env = Object.fromEntries((proxy.env as any[]).map((e) => [e.name, e.value]));
    t.equal(env.MESHLET_WORKLOAD_NAME, 'cart', 'the Deployment name, not the ReplicaSet or the pod: a bounded metric label');
    t.same(JSON.parse(env.MESHLET_HEALTH_APP_PROBES), { '/app-health/cart/livez': { httpGet: { path: '/healthz', port: 8080, scheme: 'HTTP' }, timeoutSeconds: 1 }, '/app-health/cart/readyz': { tcpSocket: { port: 8080 }, timeoutSeconds: 1 } });
    t.equal((pod.spec.volumes as any[])[1].secret.secretName, 'meshlet-identity-cart', "the service account's identity");
    t.same(pod.spec.containers[0]!.volumeMounts, REVIEW.request.object.spec.containers[0].volumeMounts, "the app's own mounts untouched");
  });

  t.test('never kube-system or its own namespace; not other kinds, operations, or opted-out pods', async (t) => {
    const cases: Array<[string, (r: any) => void]> = [
      ['kube-system', (r) => (r.namespace = 'kube-system')],
      ['own namespace', (r) => (r.namespace = 'meshlet-system')],
      ['UPDATE', (r) => (r.operation = 'UPDATE')],
      ['a Deployment', (r) => (r.kind = { group: 'apps', version: 'v1', kind: 'Deployment' })],
      ['pod label false', (r) => (r.object.metadata.labels['meshlet.io/inject'] = 'false')],
      ['annotation false', (r) => (r.object.metadata.annotations = { 'meshlet.io/inject': 'false' })],
      ['already injected', (r) => (r.object.metadata.annotations = { 'meshlet.io/status': '{}' })],
    ];
    for (const [label, change] of cases) {
      const reply = await post(webhook.port, ca, review(change));
      t.equal(reply.status, 200, label);
      t.same(reply.body.response, { uid: REVIEW.request.uid, allowed: true }, `${label}: allowed, no patch`);
    }
    const host = await post(webhook.port, ca, review((r) => (r.object.spec.hostNetwork = true)));
    t.equal(host.body.response.allowed, true);
    t.notOk(host.body.response.patch);
    t.match(host.body.response.warnings[0], /hostNetwork: true and was not injected/);
  });

  t.test('a pod meshlet refuses is denied with the reason', async (t) => {
    const reply = await post(webhook.port, ca, review((r) => (r.object.spec.containers[0].securityContext = { runAsUser: 1337 })));
    t.equal(reply.body.response.allowed, false);
    t.equal(reply.body.response.status.code, 400);
    t.match(reply.body.response.status.message, /^meshlet: Pod shop\/cart-7c9d8f6b5d-\*: container cart runs as UID 1337/);
    const annotation = await post(webhook.port, ca, review((r) => (r.object.metadata.annotations = { 'meshlet.io/sidecar-mode': 'side' })));
    t.match(annotation.body.response.status.message, /annotation meshlet\.io\/sidecar-mode: "side" is not one of native, classic/);
  });

  t.test('bad requests', async (t) => {
    t.equal((await post(webhook.port, ca, undefined, { raw: '{not json' })).status, 400);
    const wrongVersion = await post(webhook.port, ca, { ...REVIEW, apiVersion: 'admission.k8s.io/v1beta1' });
    t.equal(wrongVersion.status, 400);
    t.match(wrongVersion.body.error, /admission\.k8s\.io\/v1/);
    t.equal((await post(webhook.port, ca, review((r) => delete r.uid))).status, 400);
    t.equal((await post(webhook.port, ca, review((r) => delete r.object.spec.containers))).status, 400);
    t.equal((await post(webhook.port, ca, REVIEW, { path: '/mutate' })).status, 404);
    t.equal((await post(webhook.port, ca, undefined, { method: 'GET' })).status, 405);
    t.equal((await post(webhook.port, ca, undefined, { path: '/healthz', method: 'GET' })).status, 200);
    t.equal((await post(webhook.port, ca, REVIEW)).status, 200, 'and it still answers');
  });

  t.test('a certificate that is not for the Service is refused by the client: TLS is real', async (t) => {
    await t.rejects(post(webhook.port, certificate(t.testdir({})), REVIEW), /self[- ]signed|unable to verify|certificate/i);
  });
});

t.test('a renewed serving certificate is served without a restart', async (t) => {
  const dir = t.testdir({});
  const first = certificate(dir);
  const webhook = await startWebhook({ port: 0, host: '127.0.0.1', tlsDir: dir, settings: settingsFromFlags({}), scope: { ownNamespace: 'x' }, log: createLogger('silent'), reloadMs: 50 });
  t.teardown(() => webhook.close());
  t.equal((await post(webhook.port, first, REVIEW)).status, 200);
  const second = certificate(dir); // as cert-manager renews the Secret
  const accepted = async () => (await post(webhook.port, second, REVIEW).then((r) => r.status, () => 0)) === 200;
  const deadline = Date.now() + 10_000;
  while (!(await accepted()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  t.ok(await accepted(), 'a client trusting only the new certificate gets through');
  await t.rejects(post(webhook.port, first, REVIEW), /self[- ]signed|unable to verify|certificate/i, 'and the old one is no longer served');
});

t.test('the webhook refuses to start without its certificate, naming the file', async (t) => {
  const dir = t.testdir({ 'tls.crt': 'x' });
  await t.rejects(startWebhook({ port: 0, tlsDir: dir, settings: settingsFromFlags({}), scope: { ownNamespace: 'x' }, log: createLogger('silent') }), /tls\.key/);
  writeFileSync(path.join(dir, 'tls.key'), 'not a key');
  await t.rejects(startWebhook({ port: 0, tlsDir: dir, settings: settingsFromFlags({}), scope: { ownNamespace: 'x' }, log: createLogger('silent') }));
});

t.test('workload names from what a pod carries at admission', async (t) => {
  t.equal(workloadName({ generateName: 'cart-7c9d8f6b5d-', labels: { 'pod-template-hash': '7c9d8f6b5d' }, ownerReferences: [{ kind: 'ReplicaSet', name: 'cart-7c9d8f6b5d', controller: true }] }), 'cart');
  t.equal(workloadName({ name: 'orders-0', ownerReferences: [{ kind: 'StatefulSet', name: 'orders', controller: true }] }), 'orders');
  t.equal(workloadName({ generateName: 'report-29412345-', ownerReferences: [{ kind: 'Job', name: 'report-29412345', controller: true }] }), 'report', "a CronJob's job");
  t.equal(workloadName({ generateName: 'backfill-', ownerReferences: [{ kind: 'Job', name: 'backfill', controller: true }] }), 'backfill');
  t.equal(workloadName({ name: 'debug' }), 'debug');
  t.equal(workloadName({ generateName: 'tmp-' }), 'tmp');
  t.equal(workloadName({}), undefined);
});
