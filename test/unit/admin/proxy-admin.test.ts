import { readFileSync } from 'node:fs';
import path from 'node:path';
import { X509Certificate } from 'node:crypto';
import t, { type Test } from 'tap';
import { loadConfig } from '../../../src/config/load.ts';
import { startProxy } from '../../../src/proxy/proxy.ts';
import { proxyPorts } from '../../helpers/ports.ts';
import { captureLog, makeIdentity } from '../proxy/mtls-harness.ts';
import { caOk, tempDir } from '../tls/ca-helpers.ts';

// The admin server and readiness of a whole proxy (startProxy, on free ports): /certs
// shows the identity loaded from identity.dir and /config_dump never its key; /logging
// changes the level the proxy logs at; POST /drain fails readiness at once and, with no
// connection open, the proxy ends by itself; POST /quitquitquit ends it at once.

const SPIFFE_ID = 'spiffe://cluster.local/ns/shop/sa/cart';

const root = tempDir();
const caDir = path.join(root, 'ca');
await caOk(['init', '--out', caDir]);
const idDir = await makeIdentity(root, caDir, 'cart', SPIFFE_ID);

async function proxy(t: Test, env: NodeJS.ProcessEnv = {}) {
  const { log, lines } = captureLog();
  log.level = 'info';
  const ports = await proxyPorts();
  const p = await startProxy(loadConfig({ env: { ...ports, MESHLET_IDENTITY_DIR: idDir, ...env } }), log);
  t.teardown(() => p.stop());
  const admin = (route: string, method = 'GET') => fetch(`http://127.0.0.1:${p.admin.port}${route}`, { method }).then(async (r) => ({ status: r.status, body: (await r.json()) as Record<string, any> }));
  const ready = () => fetch(`http://127.0.0.1:${p.health.port}/healthz/ready`).then(async (r) => ({ status: r.status, text: await r.text() }));
  return { p, ports, log, lines, admin, ready };
}

t.test('/certs and /config_dump: the identity in use, never its key', async (t) => {
  const { admin, ports } = await proxy(t);
  const leaf = new X509Certificate(readFileSync(path.join(idDir, 'tls.crt')));
  const certs = await admin('/certs');
  t.equal(certs.status, 200);
  t.match(certs.body.identity, { spiffeId: SPIFFE_ID, trustDomain: 'cluster.local', serial: leaf.serialNumber, notAfter: leaf.validToDate.toISOString() });
  t.ok(certs.body.identity.secondsUntilExpiry > 0);
  t.equal(certs.body.identity.trustAnchors.length, 1);

  const dump = await admin('/config_dump');
  t.equal(dump.body.identity.dir, idDir, 'the identity directory is shown');
  t.equal(dump.body.admin.port, Number(ports.MESHLET_ADMIN_PORT));
  t.equal(dump.body.drain.timeout, 30_000, 'durations in milliseconds');
  const text = JSON.stringify([certs.body, dump.body]);
  const key = readFileSync(path.join(idDir, 'tls.key'), 'utf8');
  t.notOk(text.includes('PRIVATE KEY'), 'no key PEM anywhere');
  t.notOk(text.includes(key.split('\n')[1]!), 'nor any line of the key');
});

t.test('/logging sets the level the proxy logs at', async (t) => {
  const { admin, log } = await proxy(t);
  t.equal((await admin('/logging')).body.level, 'info');
  t.equal((await admin('/logging?level=debug', 'POST')).status, 200);
  t.equal(log.level, 'debug');
  t.equal(log.isLevelEnabled('debug'), true);
});

t.test('POST /drain: not ready at once (the body says why), still live, and with nothing open the proxy ends by itself', async (t) => {
  // The delay outlasts the checks below even on a busy machine: once it is over, the
  // proxy (with nothing open) ends, and its health and admin servers with it.
  const { p, admin, ready, lines } = await proxy(t, { MESHLET_DRAIN_DELAY: '1s' });
  t.same(await ready(), { status: 200, text: 'ready\n' });
  const drain = await admin('/drain', 'POST');
  t.equal(drain.status, 202);
  t.match(drain.body, { draining: true, reason: 'POST /drain', delayMs: 1000, timeoutMs: 30_000 });
  const after = await ready();
  t.equal(after.status, 503);
  t.match(after.text, /not ready: not draining/);
  t.equal((await fetch(`http://127.0.0.1:${p.health.port}/healthz/live`)).status, 200, 'live while draining');
  t.equal((await admin('/drain', 'POST')).body.reason, 'POST /drain', 'a second POST /drain is the same drain');
  t.equal(await p.ended, 'drained');
  t.ok(lines.some((l) => l.msg === 'draining'));
  t.equal(p.inbound.server.listening, false);
  t.equal(p.outbound.server.listening, false);
});

t.test('POST /quitquitquit: the answer, then the proxy ends at once', async (t) => {
  const { p, admin } = await proxy(t, { MESHLET_DRAIN_DELAY: '1h', MESHLET_DRAIN_TIMEOUT: '1h' });
  const quit = await admin('/quitquitquit', 'POST');
  t.same(quit, { status: 200, body: { quitting: true } });
  t.equal(await p.ended, 'quit');
  t.equal(p.admin.server.listening, false);
});
