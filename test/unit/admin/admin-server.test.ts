import net from 'node:net';
import t, { type Test } from 'tap';
import { startAdminServer, type AdminControls } from '../../../src/admin/admin-server.ts';
import type { DrainStatus } from '../../../src/admin/drain.ts';

// The admin server's routing and answers, with fake controls: every endpoint answers
// JSON, reads are GET, changes only POST, a bad level is refused without a change,
// /quitquitquit quits only after its answer is out, and nothing listens beyond 127.0.0.1.

interface Fake extends AdminControls {
  calls: string[];
  level: string;
}

function fakeControls(): Fake {
  const status: DrainStatus = { draining: true, reason: 'POST /drain', startedAt: '2026-01-01T00:00:00.000Z', acceptingInbound: true, openConnections: 3, delayMs: 5000, timeoutMs: 30000 };
  const fake: Fake = {
    calls: [],
    level: 'info',
    configDump: () => ({ admin: { port: 15000 }, secretToken: '[redacted]' }),
    clusters: () => [{ pool: 'outbound/http1', direction: 'outbound', protocol: 'http1', mtls: false, destination: '10.0.0.1:80', connections: 2, idle: 1, breaker: null }],
    resilience: () => [{ direction: 'outbound', policy: 'reviews', destination: '10.0.0.1:80', state: { budget: { requests: 10, retries: 1, available: 101, exhausted: 0 } } }],
    certs: () => undefined,
    logLevel: () => fake.level,
    setLogLevel: (level) => {
      fake.calls.push(`level ${level}`);
      fake.level = level;
    },
    levels: ['debug', 'info', 'warn'],
    drain: () => {
      fake.calls.push('drain');
      return status;
    },
    quit: () => fake.calls.push('quit'),
  };
  return fake;
}

async function admin(t: Test, controls: AdminControls = fakeControls()) {
  const server = await startAdminServer(0, controls);
  t.teardown(() => server.server.close());
  const base = `http://127.0.0.1:${server.port}`;
  const call = async (path: string, method = 'GET') => {
    const res = await fetch(`${base}${path}`, { method });
    const text = await res.text();
    return { status: res.status, allow: res.headers.get('allow'), type: res.headers.get('content-type'), body: JSON.parse(text) as Record<string, unknown> };
  };
  return { server, call };
}

t.test('binds 127.0.0.1 only', async (t) => {
  const { server } = await admin(t);
  t.equal((server.server.address() as net.AddressInfo).address, '127.0.0.1');
});

t.test('GET endpoints answer JSON; / lists the endpoints with their methods', async (t) => {
  const { call } = await admin(t);
  const index = await call('/');
  t.equal(index.status, 200);
  t.equal(index.type, 'application/json');
  t.same(index.body.endpoints, ['GET /config_dump', 'GET /clusters', 'GET /certs', 'GET,POST /logging', 'POST /drain', 'POST /quitquitquit']);
  t.same((await call('/config_dump')).body, { admin: { port: 15000 }, secretToken: '[redacted]' });
  const clusters = await call('/clusters');
  t.match(clusters.body, { clusters: [{ destination: '10.0.0.1:80', connections: 2, idle: 1, breaker: null }] });
  t.match(clusters.body, { resilience: [{ policy: 'reviews', destination: '10.0.0.1:80', state: { budget: { retries: 1 } } }] }, 'and each destination\'s resilience state');
  const certs = await call('/certs');
  t.equal(certs.status, 200);
  t.equal(certs.body.identity, null, 'no identity configured: null, with the reason');
  t.match(certs.body.reason, /identity\.dir is unset/);
});

t.test('/logging: GET reads, POST ?level= sets, a bad or missing level is refused and changes nothing', async (t) => {
  const fake = fakeControls();
  const { call } = await admin(t, fake);
  t.same((await call('/logging')).body, { level: 'info', levels: ['debug', 'info', 'warn'] });
  const set = await call('/logging?level=debug', 'POST');
  t.equal(set.status, 200);
  t.same(set.body, { level: 'debug', previous: 'info' });
  t.equal(fake.level, 'debug');
  const bad = await call('/logging?level=verbose', 'POST');
  t.equal(bad.status, 400);
  t.match(bad.body.error, /must be one of debug, info, warn; got "verbose"/);
  t.equal((await call('/logging', 'POST')).status, 400, 'no level at all');
  t.equal(fake.level, 'debug', 'unchanged by the refused calls');
  t.same(fake.calls, ['level debug']);
});

t.test('mutating endpoints are POST only: GET is 405 with Allow, and does nothing', async (t) => {
  const fake = fakeControls();
  const { call } = await admin(t, fake);
  for (const path of ['/drain', '/quitquitquit']) {
    const r = await call(path);
    t.equal(r.status, 405, `GET ${path}`);
    t.equal(r.allow, 'POST');
  }
  const put = await call('/logging?level=warn', 'PUT');
  t.equal(put.status, 405);
  t.equal((await call('/clusters', 'POST')).status, 405, 'a read-only endpoint refuses POST');
  t.same(fake.calls, [], 'nothing was drained, quit or changed');
  t.equal((await call('/nope')).status, 404);
});

t.test('POST /drain starts the drain and answers its status; POST /quitquitquit quits after answering', async (t) => {
  const fake = fakeControls();
  const { call } = await admin(t, fake);
  const drain = await call('/drain', 'POST');
  t.equal(drain.status, 202);
  t.match(drain.body, { draining: true, openConnections: 3, delayMs: 5000, timeoutMs: 30000 });
  const quit = await call('/quitquitquit', 'POST');
  t.equal(quit.status, 200);
  t.same(quit.body, { quitting: true });
  t.same(fake.calls, ['drain', 'quit']);
});
