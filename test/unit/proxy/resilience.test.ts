import http2 from 'node:http2';
import net from 'node:net';
import t, { type Test } from 'tap';
import type { Registry } from 'prom-client';
import { closedPort, h1App, h2App, h2Request, h2Session, header, RawClient, rawExchange, tcpApp, type H1App } from '../../helpers/http.ts';
import { through } from '../../helpers/http-sidecars.ts';
import { sidecar } from './mtls-harness.ts';
import { loadConfig } from '../../../src/config/load.ts';
import { policyTable } from '../../../src/resilience/runtime.ts';
import { clusterEntries } from '../../../src/admin/clusters.ts';
import { origDst } from '../../../src/net/addresses.ts';
import { RequestAbort } from '../../../src/pipeline/abort.ts';
import { Http1Upstream } from '../../../src/proxy/http/http1-upstream.ts';
import { proxyRequest } from '../../helpers/proxy-request.ts';

// The resilience layers through a real outbound sidecar (real sockets, the real stack)
// against upstreams that misbehave on purpose, asserting what the upstream saw.

const env = (fields: Record<string, string>) => Object.fromEntries(Object.entries(fields).map(([k, v]) => [`MESHLET_RESILIENCE_DEFAULTS_${k}`, v]));

async function app(t: Test, handle: Parameters<typeof h1App>[0]): Promise<H1App> {
  const a = await h1App(handle);
  t.teardown(() => a.close());
  return a;
}

async function misbehaving(t: Test, onSocket: (socket: net.Socket) => void) {
  const a = await tcpApp(onSocket);
  t.teardown(() => a.close());
  return a;
}

/** One request on a new connection through `port`: the parsed response, or how the connection ended without one. */
async function request(port: number, method = 'GET', body = ''): Promise<{ status: number; flag?: string; cause?: string; body: string } | { closed: true }> {
  const head = `${method} /x HTTP/1.1\r\nHost: app\r\nConnection: close\r\n${body ? `Content-Length: ${body.length}\r\n` : ''}\r\n`;
  const r = await rawExchange(port, [head + body]);
  const text = r.data.toString('latin1');
  const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
  if (!m) return { closed: true };
  const c = new RegExp('^meshlet-error: (.*)$', 'mi').exec(text);
  return { status: Number(m[1]), ...(c ? { cause: c[1]!.trim() } : {}), body: text.slice(text.indexOf('\r\n\r\n') + 4) };
}

async function counter(registry: Registry, name: string, labels: Record<string, string>): Promise<number> {
  const metric = registry.getSingleMetric(name);
  const values = (await metric?.get())?.values ?? [];
  return values.filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x)).reduce((n, v) => n + v.value, 0);
}

t.test('an upstream that hangs: 504 upstream_timeout after the timeout; per-try timeouts retried under gateway-error', async (t) => {
  const hang = await app(t, () => {});
  const one = await through(t, 'one', () => hang.port, env({ TIMEOUT: '300ms' }));
  const r = await request(one.port);
  t.match(r, { status: 504, cause: 'upstream_timeout' });
  t.equal(hang.requests.length, 1, 'one try: no retry condition matched');

  const perTry = await through(t, 'one', () => hang.port, env({ PER_TRY_TIMEOUT: '100ms', RETRIES_ATTEMPTS: '3', RETRIES_RETRY_ON: '[gateway-error]' }));
  const before = hang.requests.length;
  t.match(await request(perTry.port), { status: 504, cause: 'upstream_timeout' });
  t.equal(hang.requests.length - before, 3, 'the upstream saw three tries');
  t.equal(await counter(perTry.outbound.registry, 'meshlet_upstream_timeouts_total', { kind: 'per_try' }), 3);
});

t.test('resets before the response head: retried for GET when retryOn has reset, never for POST; after the head, never', async (t) => {
  const resets = await misbehaving(t, (socket) => socket.once('data', () => socket.resetAndDestroy()));
  const sidecar = await through(t, 'one', () => resets.port, env({ RETRIES_ATTEMPTS: '3', RETRIES_RETRY_ON: '[reset]' }));
  t.match(await request(sidecar.port), { status: 503, cause: 'upstream_reset' });
  t.equal(resets.connections, 3, 'GET: three tries');
  t.match(await request(sidecar.port, 'POST', 'order=1'), { status: 503 });
  t.equal(resets.connections, 4, 'POST: one try');

  const plain = await through(t, 'one', () => resets.port);
  await request(plain.port);
  t.equal(resets.connections, 5, 'by default a reset is not retried: the request may have been processed');

  const cut = await misbehaving(t, (socket) => socket.once('data', () => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial', () => socket.resetAndDestroy())));
  const after = await through(t, 'one', () => cut.port, env({ RETRIES_ATTEMPTS: '3', RETRIES_RETRY_ON: '[reset, 5xx]' }));
  const r = await rawExchange(after.port, ['GET / HTTP/1.1\r\nHost: app\r\n\r\n']);
  t.match(r.data.toString(), /^HTTP\/1\.1 200 OK/, 'the head went to the client as it came');
  t.notMatch(r.data.toString(), /\r\n\r\npartial.{93}/, 'and the body was cut short, not completed');
  t.equal(cut.connections, 1, 'once the head is out there is nothing to retry');
});

t.test('503 bursts: GET retried until it succeeds; POST not retried after a 5xx unless nonIdempotent, its body replayed then', async (t) => {
  let failures = 0;
  const bodies: string[] = [];
  const burst = await app(t, (req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d));
    req.on('end', () => {
      bodies.push(body);
      if (failures-- > 0) res.writeHead(503).end('busy');
      else res.writeHead(200).end(`ok ${body}`);
    });
  });
  const sidecar = await through(t, 'one', () => burst.port, env({ RETRIES_ATTEMPTS: '3', RETRIES_RETRY_ON: '[5xx]' }));
  failures = 2;
  t.match(await request(sidecar.port), { status: 200 });
  t.equal(burst.requests.length, 3, 'GET: two 503s, then 200');

  failures = 2;
  t.match(await request(sidecar.port, 'POST', 'pay=1'), { status: 503, body: 'busy' }, "the upstream's own 503");
  t.equal(burst.requests.length, 4, 'POST: the upstream saw it once');

  const allowed = await through(t, 'one', () => burst.port, env({ RETRIES_ATTEMPTS: '3', RETRIES_RETRY_ON: '[5xx]', RETRIES_NON_IDEMPOTENT: 'true' }));
  failures = 1;
  bodies.length = 0;
  t.match(await request(allowed.port, 'POST', 'pay=2'), { status: 200, body: 'ok pay=2' });
  t.same(bodies, ['pay=2', 'pay=2'], 'the body replayed whole');

  failures = 10;
  const r = await request(sidecar.port);
  t.match(r, { status: 503 });
  t.equal(await counter(sidecar.outbound.registry, 'meshlet_upstream_retries_total', { reason: 'status', outcome: 'attempts_exhausted' }), 1);
});

for (const topology of ['one', 'mesh'] as const) {
  const where = topology === 'one' ? 'one sidecar' : 'a sidecar pair (the inbound side cannot reach its app and says so)';
  t.test(`a refused port through ${where}: retried once by default, a POST too (it never reached the app), then 503 UF,URX`, async (t) => {
    const port = await closedPort();
    const sidecar = await through(t, topology, () => port);
    t.match(await request(sidecar.port, 'POST', 'x=1'), { status: 503, cause: 'upstream_connect_failure' });
    t.equal(await counter(sidecar.outbound.registry, 'meshlet_upstream_retries_total', { reason: 'connect-failure', outcome: 'sent' }), 1, 'one retry by the outbound sidecar');
    t.equal(await counter(sidecar.outbound.registry, 'meshlet_upstream_retries_total', { reason: 'connect-failure', outcome: 'attempts_exhausted' }), 1);
  });
}

t.test('under total failure the retries stay within the budget', async (t) => {
  const down = await app(t, (_req, res) => res.writeHead(503).end());
  const sidecar = await through(t, 'one', () => down.port, env({ RETRIES_ATTEMPTS: '3', RETRIES_RETRY_ON: '[5xx]', RETRIES_BUDGET_MIN_PER_SECOND: '1' }));
  const client = new RawClient(sidecar.port);
  t.teardown(() => client.close());
  for (let i = 0; i < 100; i++) {
    client.write('GET / HTTP/1.1\r\nHost: app\r\n\r\n');
    await client.read(['GET']);
  }
  // 20 % of 100 plus 1/s over the 10 s window: at most 30 retries (without a budget: 200).
  t.ok(down.requests.length <= 130, `the upstream saw ${down.requests.length} requests for 100`);
  t.ok(down.requests.length > 100, 'some were retried');
  t.ok((await counter(sidecar.outbound.registry, 'meshlet_retry_budget_exhausted_total', {})) >= 70, 'the rest were refused by the budget, and counted');
});

t.test('keep-alive connections closed exactly when reused: no client-visible error over 10 000 requests', async (t) => {
  // Each upstream connection answers one request, then closes (FIN or RST, alternately)
  // as soon as the next request arrives on it, without answering: the keep-alive race.
  let n = 0;
  let requests = 0;
  const racy = await misbehaving(t, (socket) => {
    const close = n++ % 2 === 0 ? () => socket.end() : () => socket.resetAndDestroy();
    let answered = false;
    socket.on('data', () => {
      requests++;
      if (answered) return close();
      answered = true;
      socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    });
  });
  const sidecar = await through(t, 'one', () => racy.port);
  const clients = Array.from({ length: 10 }, () => new RawClient(sidecar.port));
  t.teardown(() => clients.forEach((c) => c.close()));
  let errors = 0;
  await Promise.all(
    clients.map(async (c) => {
      for (let i = 0; i < 1000; i++) {
        c.write('GET / HTTP/1.1\r\nHost: app\r\n\r\n');
        const [r] = await c.read(['GET']);
        if (r?.status !== 200 || header(r, 'meshlet-error')) errors++;
      }
    }),
  );
  t.equal(errors, 0, 'every one of 10 000 requests answered 200');
  t.ok(requests > 10_000, `the upstream saw ${requests} requests: the reused connections were closed on the proxy ${requests - 10_000} times`);
});

t.test('a reload applies to the next request on the same connection; the connection is not dropped', async (t) => {
  const ok = await app(t, (_req, res) => res.writeHead(200).end('ok'));
  const sidecar = await through(t, 'one', () => ok.port, env({ FAULT_ABORT_PERCENT: '100', FAULT_ABORT_STATUS: '418' }));
  const client = new RawClient(sidecar.port);
  t.teardown(() => client.close());
  client.write('GET / HTTP/1.1\r\nHost: app\r\n\r\n');
  const [before] = await client.read(['GET']);
  t.equal(before?.status, 418, 'the fault policy in force');
  t.equal(header(before!, 'meshlet-error'), 'fault_abort');
  t.equal(ok.requests.length, 0);

  sidecar.outbound.resilience.update(policyTable(loadConfig({ env: {} })));
  client.write('GET / HTTP/1.1\r\nHost: app\r\n\r\n');
  const [after] = await client.read(['GET']);
  t.equal(after?.status, 200, 'the new policy (no fault) on the next request');
  t.notOk(client.closed, 'the same client connection');
  t.equal(await counter(sidecar.outbound.registry, 'meshlet_faults_injected_total', { kind: 'abort' }), 1);
});

t.test('the per-destination state is readable for /clusters', async (t) => {
  const ok = await app(t, (_req, res) => res.writeHead(200).end('ok'));
  const sidecar = await through(t, 'one', () => ok.port, env({ LIMITS_MAX_CONCURRENT_REQUESTS: '10' }));
  t.match(await request(sidecar.port), { status: 200 });
  const [target] = sidecar.outbound.resilience.targets();
  t.match(target, { direction: 'outbound', policy: 'default', destination: `127.0.0.1:${ok.port}`, state: { budget: { requests: 1, retries: 0 }, limits: { inFlight: 0, max: 10 } } });
});

t.test("a destination's own connect timeout applies to its HTTP connections", async (t) => {
  // Accepts TCP and never speaks: an h2c session to it is never made.
  const silent = await misbehaving(t, () => {});
  const sidecar = await through(t, 'one', () => silent.port, {
    MESHLET_RESILIENCE_DESTINATIONS: `[{name: slow-start, match: {ports: [${silent.port}]}, connectTimeout: 150ms, retries: {attempts: 1}}]`,
  });
  const session = h2Session(t, sidecar.port);
  const r = await h2Request(session, { ':path': '/' });
  t.equal(r.status, 503);
  t.equal(r.headers['meshlet-error'], 'upstream_connect_failure');
  t.match(r.body.toString(), /within 150 ms/, "the destination's 150 ms, not outbound.connectTimeout");
});

t.test('inbound limits: connections beyond maxConnections are reset; requests beyond maxConcurrentRequests get 503 overflow', async (t) => {
  const holding: Array<() => void> = [];
  const slow = await app(t, (_req, res) => holding.push(() => res.writeHead(200).end('ok')));
  const inbound = await sidecar('inbound', () => slow.port, {
    env: { MESHLET_RESILIENCE_INBOUND_MAX_CONNECTIONS: '2', MESHLET_RESILIENCE_INBOUND_PORTS: `{"${slow.port}": {maxConcurrentRequests: 1}}` },
  });
  t.teardown(() => inbound.close());
  const first = new RawClient(inbound.port);
  const second = new RawClient(inbound.port);
  t.teardown(() => (first.close(), second.close()));
  first.write('GET /1 HTTP/1.1\r\nHost: app\r\n\r\n');
  while (holding.length === 0) await new Promise((r) => setTimeout(r, 10));
  second.write('GET /2 HTTP/1.1\r\nHost: app\r\n\r\n');
  const [over] = await second.read(['GET']);
  t.equal(over?.status, 503);
  t.equal(header(over!, 'meshlet-error'), 'overflow');
  t.equal(slow.requests.length, 1, 'the app saw only the first');
  const third = await rawExchange(inbound.port, ['GET /3 HTTP/1.1\r\nHost: app\r\n\r\n']);
  t.equal(third.error, 'ECONNRESET', 'a third connection is reset');
  t.equal(third.data.length, 0);
  holding[0]!();
  const [ok] = await first.read(['GET']);
  t.equal(ok?.status, 200);
  t.equal(await counter(inbound.registry, 'meshlet_overflows_total', { limit: 'max_concurrent_requests' }), 1);
  t.equal(await counter(inbound.registry, 'meshlet_overflows_total', { limit: 'inbound_max_connections' }), 1);
});

t.test('a gRPC call whose body has not arrived yet, to a refused port: retried, then answered UNAVAILABLE by the proxy, not cancelled', async (t) => {
  const port = await closedPort();
  const sidecar = await through(t, 'one', () => port);
  const session = h2Session(t, sidecar.port);
  // The client sends its headers and waits: the answer comes before any of the body.
  const stream = session.request({ ':method': 'POST', ':path': '/pkg.Svc/Call', 'content-type': 'application/grpc', te: 'trailers' }, { endStream: false });
  stream.on('error', () => {});
  let headers: Record<string, unknown> = {};
  stream.once('response', (h) => {
    headers = h;
    stream.end(Buffer.from([0, 0, 0, 0, 2, 8, 1]));
  });
  stream.resume();
  await new Promise((r) => stream.once('close', r));
  t.equal(headers['grpc-status'], '14', 'UNAVAILABLE');
  t.equal(headers['meshlet-error'], 'upstream_connect_failure');
  t.equal(stream.rstCode, 0, 'the stream was not reset (a reset reads as CANCELLED to a gRPC client)');
  t.equal(await counter(sidecar.outbound.registry, 'meshlet_upstream_retries_total', { reason: 'connect-failure', outcome: 'sent' }), 1);
});

/** Waits (polling, no timing asserted) until `ok()` holds. */
async function until(ok: () => boolean): Promise<void> {
  while (!ok()) await new Promise((r) => setTimeout(r, 20));
}

t.test('circuit breaker: opens after the configured failures, answers 503 UO circuit_open without the upstream seeing traffic, closes after a successful probe', async (t) => {
  let failing = true;
  const flaky = await app(t, (_req, res) => (failing ? res.writeHead(503).end('down') : res.writeHead(200).end('ok')));
  const sidecar = await through(t, 'one', () => flaky.port, env({ CIRCUIT_BREAKER_CONSECUTIVE_FAILURES: '3', CIRCUIT_BREAKER_OPEN_DURATION: '2s', RETRIES_ATTEMPTS: '1' }));
  const { registry, resilience } = sidecar.outbound;
  const destination = `127.0.0.1:${flaky.port}`;
  for (let i = 0; i < 3; i++) t.match(await request(sidecar.port), { status: 503, body: 'down' }, "the app's own 503s go back as they are");
  t.equal(resilience.breakerStates().get(destination), 'open');

  for (let i = 0; i < 5; i++) t.match(await request(sidecar.port), { status: 503, cause: 'circuit_open' });
  t.equal(flaky.requests.length, 3, 'the upstream saw nothing while the breaker was open');
  t.equal(await counter(registry, 'meshlet_circuit_breaker_rejections_total', {}), 5);
  t.equal(await counter(registry, 'meshlet_circuit_breaker_transitions_total', { state: 'open' }), 1);
  t.equal(await counter(registry, 'meshlet_circuit_breakers', { state: 'open' }), 1);
  t.equal(await counter(registry, 'meshlet_circuit_breakers', { state: 'closed' }), 0);
  t.match(clusterEntries(sidecar.outbound.parts.pools, resilience.breakerStates()), [{ pool: 'outbound/http1', destination, breaker: 'open' }], '/clusters shows it');
  t.match(resilience.targets()[0]?.state.breaker, { state: 'open', rejections: 5 });
  t.match(
    sidecar.outbound.lines.find((l) => l.msg?.toString().startsWith('circuit breaker opened')),
    { level: 40, destination, policy: 'default', from: 'closed', to: 'open' },
    'the opening is logged at warn, with the destination',
  );

  failing = false;
  await until(() => resilience.breakerStates().get(destination) === 'half_open');
  t.match(await request(sidecar.port), { status: 200, body: 'ok' }, 'the probe went through');
  t.equal(flaky.requests.length, 4);
  t.equal(resilience.breakerStates().get(destination), 'closed');
  t.equal(await counter(registry, 'meshlet_circuit_breaker_transitions_total', { state: 'closed' }), 1);
  t.equal(await counter(registry, 'meshlet_circuit_breakers', { state: 'closed' }), 1);
  t.match(await request(sidecar.port), { status: 200 });
});

t.test('circuit breaker on opaque TCP: connect failures open it, then connections are reset (flag UO) without a connect attempt; a probe that connects closes it', async (t) => {
  const port = await closedPort();
  const sidecar = await through(t, 'one', () => port, {
    MESHLET_PROTOCOLS_OPAQUE_PORTS: `[${port}]`,
    ...env({ CIRCUIT_BREAKER_CONSECUTIVE_FAILURES: '2', CIRCUIT_BREAKER_OPEN_DURATION: '2s', RETRIES_ATTEMPTS: '1' }),
  });
  const { outcomes, resilience } = sidecar.outbound;
  for (let i = 0; i < 2; i++) t.equal((await rawExchange(sidecar.port, ['hello'])).error, 'ECONNRESET', 'refused: the app sees a reset');
  t.match(await outcomes[1], { flag: 'UF' });
  t.equal(resilience.breakerStates().get(`127.0.0.1:${port}`), 'open');

  // Something listens there now: the open breaker still sends nothing to it.
  let accepted = 0;
  const server = net.createServer((s) => {
    accepted++;
    s.end('hi');
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  t.teardown(() => server.close());
  t.equal((await rawExchange(sidecar.port, ['hello'])).error, 'ECONNRESET');
  t.match(await outcomes[2], { flag: 'UO', reason: 'circuit_open' });
  t.equal(accepted, 0, 'no connect attempt while open');
  t.equal(await counter(sidecar.outbound.registry, 'meshlet_circuit_breaker_rejections_total', {}), 1);

  await until(() => resilience.breakerStates().get(`127.0.0.1:${port}`) === 'half_open');
  t.match((await rawExchange(sidecar.port, ['hello'])).data.toString(), 'hi', 'the probe connected');
  t.equal(accepted, 1);
  t.equal(resilience.breakerStates().get(`127.0.0.1:${port}`), 'closed');
});

t.test('maxConnections: HTTP/1.1 requests wait for one of the destination connections, the queue beyond maxPendingRequests gets 503 overflow', async (t) => {
  const holding: Array<() => void> = [];
  const slow = await app(t, (req, res) => holding.push(() => res.writeHead(200).end(`ok ${req.url}`)));
  const sidecar = await through(t, 'one', () => slow.port, env({ LIMITS_MAX_CONNECTIONS: '1', LIMITS_MAX_PENDING_REQUESTS: '1' }));
  const clients = [1, 2, 3].map(() => new RawClient(sidecar.port));
  t.teardown(() => clients.forEach((c) => c.close()));
  clients[0]!.write('GET /1 HTTP/1.1\r\nHost: app\r\n\r\n');
  await until(() => holding.length === 1);
  clients[1]!.write('GET /2 HTTP/1.1\r\nHost: app\r\n\r\n');
  // The second waits for the one connection (as /clusters shows); the third finds the queue full.
  await until(() => clusterEntries(sidecar.outbound.parts.pools)[0]?.waiting === 1);
  clients[2]!.write('GET /3 HTTP/1.1\r\nHost: app\r\n\r\n');
  const [over] = await clients[2]!.read(['GET']);
  t.equal(over?.status, 503);
  t.equal(header(over!, 'meshlet-error'), 'overflow');
  t.equal(slow.requests.length, 1, 'the app has seen only the first');
  t.equal(slow.connections, 1);

  holding[0]!();
  t.equal((await clients[0]!.read(['GET']))[0]?.status, 200);
  await until(() => holding.length === 2);
  holding[1]!();
  const [second] = await clients[1]!.read(['GET']);
  t.equal(second?.status, 200, 'the waiting request went once the connection was free');
  t.equal(slow.connections, 1, 'over the same connection: never more than one');
  t.equal(await counter(sidecar.outbound.registry, 'meshlet_overflows_total', { limit: 'max_connections' }), 1);
  t.match(sidecar.outbound.resilience.targets()[0]?.state.connections, { max: 1, maxPending: 1, overflows: 1 });
});

t.test('maxConnections on opaque TCP: a connection beyond it is reset (flag UO) without reaching the destination', async (t) => {
  const echo = await misbehaving(t, (socket) => socket.on('data', (d) => socket.write(d)));
  const sidecar = await through(t, 'one', () => echo.port, { MESHLET_PROTOCOLS_OPAQUE_PORTS: `[${echo.port}]`, ...env({ LIMITS_MAX_CONNECTIONS: '1' }) });
  const first = net.connect(sidecar.port, '127.0.0.1');
  t.teardown(() => first.destroy());
  first.write('one');
  await new Promise((r) => first.once('data', r));
  t.equal((await rawExchange(sidecar.port, ['two'])).error, 'ECONNRESET', 'the second is reset');
  t.match(await sidecar.outbound.outcomes[1], { flag: 'UO', reason: 'overflow' });
  t.equal(echo.connections, 1);
  first.destroy();
  await sidecar.outbound.outcomes[0];
  t.match((await rawExchange(sidecar.port, ['three'])).data.toString(), 'three', 'once the first closed, a new one goes');
  t.equal(await counter(sidecar.outbound.registry, 'meshlet_overflows_total', { limit: 'max_connections' }), 1);
});

t.test('maxConnections in the HTTP/1.1 pool: a request whose client leaves while it waits is dropped from the queue, never sent', async (t) => {
  const holding: Array<() => void> = [];
  const slow = await app(t, (_req, res) => holding.push(() => res.writeHead(200).end('ok')));
  const pool = new Http1Upstream({ connectTimeoutMs: 1000, idleTimeoutMs: 30_000 });
  t.teardown(() => pool.close());
  let overflows = 0;
  const limit = { max: 1, maxPending: 1, overflow: () => overflows++ };
  const dst = origDst('127.0.0.1', slow.port);
  const first = pool.send(proxyRequest({ path: '/1' }), dst, 1000, limit);
  await until(() => holding.length === 1);
  const abort = new RequestAbort();
  const leaving = pool.send(proxyRequest({ path: '/2', abort }), dst, 1000, limit).catch((e: unknown) => e);
  await t.rejects(pool.send(proxyRequest({ path: '/3' }), dst, 1000, limit), { code: 'MESHLET_ERR_OVERFLOW' }, 'the queue (1) is full');
  t.equal(overflows, 1);
  abort.abort();
  t.match(await leaving, { code: 'MESHLET_ERR_UPSTREAM_RESET' });
  const queued = pool.send(proxyRequest({ path: '/4' }), dst, 1000, limit);
  holding[0]!();
  const res = await first;
  res.body?.pipe({ data: () => true, end: () => {}, abort: () => {} });
  await until(() => holding.length === 2);
  holding[1]!();
  t.equal((await queued).status, 200);
  t.same(slow.requests.map((r) => r.url), ['/1', '/4'], 'the request whose client left was never sent');
  t.equal(slow.connections, 1);
});

t.test('inbound per-route rate limit: 429 rate_limited with Retry-After on the route, other paths untouched, the app sees nothing refused', async (t) => {
  const ok = await app(t, (req, res) => res.writeHead(200).end(`ok ${req.url}`));
  const inbound = await sidecar('inbound', () => ok.port, {
    env: { MESHLET_RESILIENCE_INBOUND_PORTS: `{"${ok.port}": {routes: [{pathPrefix: /search, rateLimit: {requestsPerSecond: 0.1, burst: 1}}]}}` },
  });
  t.teardown(() => inbound.close());
  const client = new RawClient(inbound.port);
  t.teardown(() => client.close());
  const send = async (path: string) => {
    client.write(`GET ${path} HTTP/1.1\r\nHost: app\r\n\r\n`);
    return (await client.read(['GET']))[0]!;
  };
  t.equal((await send('/search?q=a')).status, 200);
  const limited = await send('/search?q=b');
  t.equal(limited.status, 429);
  t.equal(header(limited, 'meshlet-error'), 'rate_limited');
  t.equal(header(limited, 'retry-after'), '10', 'one token every 10 s');
  t.equal((await send('/items')).status, 200, 'a path outside the route');
  t.same(ok.requests.map((r) => r.url), ['/search?q=a', '/items']);
  t.equal(await counter(inbound.registry, 'meshlet_rate_limited_total', { direction: 'inbound' }), 1);
});

t.test('HTTP/2 stream idle timeout: a stream with no frame either way is reset (CANCEL), its upstream stream cancelled, flag UT; a stream with frames flowing is not', async (t) => {
  const upstreamClosed: number[] = [];
  const h2 = await h2App((stream, headers) => {
    stream.on('error', () => {});
    stream.once('close', () => upstreamClosed.push(stream.rstCode));
    if (headers[':path'] === '/ticking') {
      // A frame every 50 ms for 750 ms: longer than the idle timeout, never idle a tenth as long.
      stream.respond({ ':status': 200 });
      let n = 0;
      const tick = setInterval(() => (++n < 15 ? stream.write('.') : (clearInterval(tick), stream.end('done'))), 50);
    }
    // '/stuck': never answered.
  });
  t.teardown(() => h2.close());
  const sidecar = await through(t, 'one', () => h2.port, { MESHLET_HTTP_STREAM_IDLE_TIMEOUT: '500ms' });
  const session = h2Session(t, sidecar.port);
  const stuck = await h2Request(session, { ':path': '/stuck' });
  t.same([stuck.end, stuck.rstCode], ['reset', http2.constants.NGHTTP2_CANCEL], "the client's stream was reset");
  await until(() => upstreamClosed.length === 1);
  t.not(upstreamClosed[0], http2.constants.NGHTTP2_NO_ERROR, 'and the upstream stream was cancelled, not left open');
  const ticking = await h2Request(session, { ':path': '/ticking' });
  t.same([ticking.status, ticking.end, ticking.body.toString()], [200, 'end', `${'.'.repeat(14)}done`], 'frames kept it alive past the idle timeout');
  t.equal(await counter(sidecar.outbound.registry, 'meshlet_requests_total', { response_flags: 'UT' }), 1, 'the idle stream is counted with flag UT');
});

t.test('inbound timeouts and retries towards the app, per port: none by default; a port policy times out (504 UT) and retries (direction inbound)', async (t) => {
  let n = 0;
  const flaky = await misbehaving(t, (socket) =>
    socket.once('data', () => (n++ === 0 ? socket.resetAndDestroy() : socket.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok'))),
  );
  const plain = await sidecar('inbound', () => flaky.port);
  t.teardown(() => plain.close());
  t.match(await request(plain.port), { status: 503, cause: 'upstream_reset' }, 'by default the inbound side tries once');
  t.equal(flaky.connections, 1);

  const retrying = await sidecar('inbound', () => flaky.port, { env: { MESHLET_RESILIENCE_INBOUND_PORTS: `{"${flaky.port}": {retries: {attempts: 2, retryOn: [reset]}}}` } });
  t.teardown(() => retrying.close());
  n = 0;
  t.match(await request(retrying.port), { status: 200, body: 'ok' }, 'the reset was retried towards the app');
  t.equal(flaky.connections, 3);
  t.equal(await counter(retrying.registry, 'meshlet_upstream_retries_total', { direction: 'inbound', policy: `port ${flaky.port}`, reason: 'reset', outcome: 'sent' }), 1);

  const hang = await app(t, () => {});
  const timing = await sidecar('inbound', () => hang.port, { env: { MESHLET_RESILIENCE_INBOUND_PORTS: `{"${hang.port}": {timeout: 200ms}}` } });
  t.teardown(() => timing.close());
  t.match(await request(timing.port), { status: 504, cause: 'upstream_timeout' });
  t.equal(await counter(timing.registry, 'meshlet_upstream_timeouts_total', { direction: 'inbound', kind: 'total' }), 1);
});
