import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { Registry } from 'prom-client';
import t, { type Test } from 'tap';
import { createAppProbes, type AppProbeSpec } from '../../../src/admin/app-probes.ts';
import { startHealthServer } from '../../../src/admin/health.ts';
import { Readiness } from '../../../src/admin/readiness.ts';
import { loadConfig } from '../../../src/config/load.ts';
import { startProxy } from '../../../src/proxy/proxy.ts';
import { closedPort } from '../../helpers/http.ts';
import { proxyPorts } from '../../helpers/ports.ts';
import { captureLog } from '../proxy/mtls-harness.ts';

// The health server's /app-health/... paths (docs/kubernetes.md, "Probes under strict
// mTLS"): each runs the app's original probe against real servers on loopback, and the
// answer kubelet sees is 200 or 503 with what the check found.

async function listen<S extends net.Server>(t: Test, server: S): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.close();
    (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
  });
  return (server.address() as net.AddressInfo).port;
}

/** The app: /ok 200, /fail 500, /redirect 302 to a path that fails, /hang never answers, /auth 200 only with the probe's header. */
let hangArrived: () => void = () => {};
function appHandler(req: http.IncomingMessage, res: http.ServerResponse) {
  switch (req.url) {
    case '/ok':
      return res.writeHead(200).end('fine');
    case '/fail':
      return res.writeHead(500).end('broken');
    case '/redirect':
      return res.writeHead(302, { location: '/fail' }).end();
    case '/hang':
      return hangArrived();
    case '/auth':
      return res.writeHead(req.headers['x-probe'] === 'secret' && req.headers['user-agent']?.startsWith('kube-probe/') ? 200 : 401).end();
    default:
      return res.writeHead(404).end();
  }
}

async function healthServer(t: Test, specs: Record<string, AppProbeSpec>) {
  const probes = await createAppProbes(specs);
  const health = await startHealthServer(0, new Registry(), new Readiness(), probes);
  t.teardown(() => health.server.close());
  return (route: string) => fetch(`http://127.0.0.1:${health.port}${route}`).then(async (r) => ({ status: r.status, text: await r.text() }));
}

const tmp = mkdtempSync(path.join(os.tmpdir(), 'app-probes-'));
const certFile = path.join(tmp, 'app.crt');
const keyFile = path.join(tmp, 'app.key');
{
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=app.example', '-keyout', keyFile, '-out', certFile, '-days', '1'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl req failed: ${r.stderr}`);
}

t.test('httpGet: 200-399 is 200, anything else 503 naming the status or error', async (t) => {
  const app = await listen(t, http.createServer(appHandler));
  const closed = await closedPort();
  const get = await healthServer(t, {
    '/app-health/web/livez': { httpGet: { port: app, path: '/ok' } },
    '/app-health/web/readyz': { httpGet: { port: app, path: '/fail' } },
    '/app-health/web/startupz': { httpGet: { port: app, path: '/redirect' } },
    '/app-health/auth/livez': { httpGet: { port: app, path: '/auth', httpHeaders: [{ name: 'X-Probe', value: 'secret' }] } },
    '/app-health/noauth/livez': { httpGet: { port: app, path: '/auth' } },
    '/app-health/down/livez': { httpGet: { port: closed, path: '/ok' } },
  });
  t.same(await get('/app-health/web/livez'), { status: 200, text: 'ok: HTTP 200\n' });
  t.same(await get('/app-health/web/readyz'), { status: 503, text: 'failed: HTTP 500\n' });
  t.same(await get('/app-health/web/startupz'), { status: 200, text: 'ok: HTTP 302\n' }, 'a redirect is success and is not followed (its target fails)');
  t.same(await get('/app-health/auth/livez'), { status: 200, text: 'ok: HTTP 200\n' }, 'httpHeaders and the kube-probe user agent are sent');
  t.same(await get('/app-health/noauth/livez'), { status: 503, text: 'failed: HTTP 401\n' });
  const down = await get('/app-health/down/livez');
  t.equal(down.status, 503);
  t.match(down.text, /^failed: ECONNREFUSED: /, 'a closed port is named');
  t.same(await get('/app-health/web/readyz?x=1'), { status: 503, text: 'failed: HTTP 500\n' }, 'a query string does not change the path');
  t.same(await get('/app-health/other/livez'), { status: 404, text: 'not found\n' }, 'a path not configured is 404');
  t.same(await get('/healthz/live'), { status: 200, text: 'live\n' }, 'the proxy\'s own probes are unchanged');
});

t.test('httpGet: a hanging app is 503 after timeoutSeconds, and other probes answer meanwhile', async (t) => {
  const app = await listen(t, http.createServer(appHandler));
  const get = await healthServer(t, {
    '/app-health/web/livez': { httpGet: { port: app, path: '/hang' } },
    '/app-health/web/readyz': { httpGet: { port: app, path: '/ok' } },
  });
  const arrived = new Promise<void>((resolve) => (hangArrived = resolve));
  let hangSettled = false;
  const hanging = get('/app-health/web/livez').finally(() => (hangSettled = true));
  await arrived;
  t.same(await get('/app-health/web/readyz'), { status: 200, text: 'ok: HTTP 200\n' });
  t.notOk(hangSettled, 'the ready probe was answered while the live probe still waited for the app');
  t.same(await hanging, { status: 503, text: 'failed: no response within 1s\n' });
});

t.test('httpGet HTTPS: the app\'s self-signed certificate is not verified, as kubelet does not', async (t) => {
  const app = await listen(t, https.createServer({ cert: readFileSync(certFile), key: readFileSync(keyFile) }, appHandler));
  const get = await healthServer(t, {
    '/app-health/web/livez': { httpGet: { port: app, path: '/ok', scheme: 'HTTPS' } },
    '/app-health/web/readyz': { httpGet: { port: app, path: '/fail', scheme: 'HTTPS' } },
    '/app-health/plain/livez': { httpGet: { port: app, path: '/ok' } },
  });
  t.same(await get('/app-health/web/livez'), { status: 200, text: 'ok: HTTP 200\n' });
  t.same(await get('/app-health/web/readyz'), { status: 503, text: 'failed: HTTP 500\n' });
  t.equal((await get('/app-health/plain/livez')).status, 503, 'plain HTTP to a TLS port fails');
});

t.test('tcpSocket: a listener is 200, a closed port 503', async (t) => {
  const open = await listen(t, net.createServer((s) => s.destroy()));
  const closed = await closedPort();
  const get = await healthServer(t, {
    '/app-health/db/livez': { tcpSocket: { port: open } },
    '/app-health/db/readyz': { tcpSocket: { port: closed } },
  });
  t.same(await get('/app-health/db/livez'), { status: 200, text: `ok: connected to port ${open}\n` });
  const refused = await get('/app-health/db/readyz');
  t.equal(refused.status, 503);
  t.match(refused.text, /^failed: ECONNREFUSED: connect ECONNREFUSED 127\.0\.0\.1:\d+\n$/);
});

t.test('grpc: Health/Check for the service, 200 only when SERVING', async (t) => {
  const definition = protoLoader.loadSync(path.join(path.dirname(fileURLToPath(import.meta.url)), '../../fixtures/grpc/health.proto'), { enums: String });
  const loaded = grpc.loadPackageDefinition(definition) as unknown as { grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } } };
  const statuses: Record<string, string> = { '': 'SERVING', cart: 'SERVING', payments: 'NOT_SERVING' };
  const seen: string[] = [];
  const server = new grpc.Server();
  server.addService(loaded.grpc.health.v1.Health.service, {
    Check: (call: grpc.ServerUnaryCall<{ service: string }, unknown>, callback: grpc.sendUnaryData<{ status: string }>) => {
      seen.push(call.request.service);
      const status = statuses[call.request.service];
      if (status) callback(null, { status });
      else callback({ code: grpc.status.NOT_FOUND, details: 'unknown service' });
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  t.teardown(() => server.forceShutdown());
  const closed = await closedPort();
  const get = await healthServer(t, {
    '/app-health/api/livez': { grpc: { port } },
    '/app-health/api/readyz': { grpc: { port, service: 'cart' } },
    '/app-health/api/startupz': { grpc: { port, service: 'payments' } },
    '/app-health/other/livez': { grpc: { port, service: 'nope' } },
    '/app-health/down/livez': { grpc: { port: closed } },
  });
  t.same(await get('/app-health/api/livez'), { status: 200, text: 'ok: gRPC health SERVING\n' });
  t.same(await get('/app-health/api/readyz'), { status: 200, text: 'ok: gRPC health SERVING\n' });
  t.same(await get('/app-health/api/startupz'), { status: 503, text: 'failed: gRPC health NOT_SERVING\n' });
  t.same(await get('/app-health/other/livez'), { status: 503, text: 'failed: gRPC NOT_FOUND: unknown service\n' });
  t.same(seen, ['', 'cart', 'payments', 'nope'], 'each probe asked for its own service');
  const down = await get('/app-health/down/livez');
  t.equal(down.status, 503);
  t.match(down.text, /^failed: gRPC UNAVAILABLE: /);
});

t.test('meshlet proxy serves MESHLET_HEALTH_APP_PROBES on its health port', async (t) => {
  const app = await listen(t, http.createServer(appHandler));
  const { log } = captureLog();
  const env = {
    ...(await proxyPorts()),
    MESHLET_HEALTH_APP_PROBES: JSON.stringify({ '/app-health/web/livez': { httpGet: { port: app, path: '/ok' } }, '/app-health/web/readyz': { httpGet: { port: app, path: '/fail' } } }),
  };
  const p = await startProxy(loadConfig({ env }), log);
  t.teardown(() => p.stop());
  const get = (route: string) => fetch(`http://127.0.0.1:${p.health.port}${route}`).then(async (r) => ({ status: r.status, text: await r.text() }));
  t.same(await get('/app-health/web/livez'), { status: 200, text: 'ok: HTTP 200\n' });
  t.same(await get('/app-health/web/readyz'), { status: 503, text: 'failed: HTTP 500\n' });
  t.same(await get('/app-health/web/startupz'), { status: 404, text: 'not found\n' });
});
