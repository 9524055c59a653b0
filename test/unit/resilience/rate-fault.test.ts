import fc from 'fast-check';
import t from 'tap';
import { loadConfig } from '../../../src/config/load.ts';
import { origDst } from '../../../src/net/addresses.ts';
import type { AcceptedConnection } from '../../../src/pipeline/connection.ts';
import { shapeOf } from '../../../src/pipeline/error-shape.ts';
import type { ProxyResponse } from '../../../src/pipeline/exchange.ts';
import { faultLayer } from '../../../src/resilience/fault.ts';
import { inboundRequestLayer, matchRoute } from '../../../src/resilience/inbound.ts';
import { TokenBucket } from '../../../src/resilience/rate-limit.ts';
import { policyTable } from '../../../src/resilience/runtime.ts';
import { FakeClock, settle } from '../../helpers/fake-clock.ts';
import { proxyRequest } from '../../helpers/proxy-request.ts';
import { recorder, testTarget } from './target.ts';

const ok = async (): Promise<ProxyResponse> => ({ status: 200, headers: [], body: undefined, flag: '-' });

t.test('token bucket: a burst at once, then the rate; says how long until the next token', async (t) => {
  const clock = new FakeClock();
  const bucket = new TokenBucket(10, 3, clock);
  t.same([bucket.take(), bucket.take(), bucket.take()], [0, 0, 0]);
  t.equal(bucket.take(), 100, '100 ms until the next token at 10/s');
  await clock.advance(100);
  t.equal(bucket.take(), 0);
  await clock.advance(10_000);
  t.same([bucket.take(), bucket.take(), bucket.take(), bucket.take() > 0], [0, 0, 0, true], 'never more than the burst in hand');
});

t.test('inbound rate limit per port: 429 RL with Retry-After; other ports untouched', async (t) => {
  const clock = new FakeClock();
  const table = policyTable(loadConfig({ env: { MESHLET_RESILIENCE_INBOUND_PORTS: '{"8080": {rateLimit: {requestsPerSecond: 0.5, burst: 2}}}' } }));
  const { events, seen } = recorder();
  const handler = inboundRequestLayer(() => table.inbound, clock, events, { views: new Map() })(ok);
  const to = (port: number) => proxyRequest({ conn: { origDst: origDst('10.0.0.2', port) } as AcceptedConnection });
  t.equal((await handler(to(8080))).status, 200);
  t.equal((await handler(to(8080))).status, 200);
  const err = await handler(to(8080)).catch((e: unknown) => e);
  t.same([shapeOf(err).status, shapeOf(err).flag, shapeOf(err).grpc], [429, 'RL', 8]);
  t.match(err, { retryAfterSeconds: 2 }, 'one token every 2 s');
  t.equal((await handler(to(9090))).status, 200, 'another port has no limit');
  t.same(seen, ['rate_limited']);
});

t.test('inbound concurrent requests: all ports together, beyond it 503 UO at once', async (t) => {
  const table = policyTable(loadConfig({ env: { MESHLET_RESILIENCE_INBOUND_MAX_CONCURRENT_REQUESTS: '1' } }));
  const { events, seen } = recorder();
  const hold: Array<() => void> = [];
  const handler = inboundRequestLayer(() => table.inbound, new FakeClock(), events, { views: new Map() })(
    () => new Promise((resolve) => hold.push(() => resolve({ status: 200, headers: [], body: undefined, flag: '-' }))),
  );
  const req = () => proxyRequest({ conn: { origDst: origDst('10.0.0.2', 8080) } as AcceptedConnection });
  const first = handler(req());
  await t.rejects(handler(req()), { code: 'MESHLET_ERR_OVERFLOW' });
  hold[0]!();
  await first;
  await settle();
  void handler(req());
  t.equal(hold.length, 2, 'after the first ended, the next one went');
  t.same(seen, ['overflow inbound_max_concurrent_requests']);
});

t.test('fault injection: abort answers for the upstream (FI), delay waits (DI); both by percentage', async (t) => {
  const clock = new FakeClock();
  const abort = testTarget({ MESHLET_RESILIENCE_DEFAULTS_FAULT_ABORT_PERCENT: '50', MESHLET_RESILIENCE_DEFAULTS_FAULT_ABORT_STATUS: '418' });
  let calls = 0;
  const next = async () => (calls++, ok());
  const handler = faultLayer(abort, clock)(next);
  clock.randomValue = 0.4; // 40 < 50: injected
  const res = await handler(proxyRequest());
  t.same([res.status, res.flag, calls], [418, 'FI', 0]);
  t.ok(res.headers.includes('fault_abort'));
  const grpc = await handler(proxyRequest({ grpc: true, method: 'POST' }));
  t.same([grpc.status, grpc.flag], [200, 'FI']);
  t.ok(grpc.headers.join(' ').includes('grpc-status 14'), 'gRPC: UNAVAILABLE');
  clock.randomValue = 0.6; // 60 ≥ 50: not injected
  t.equal((await handler(proxyRequest())).flag, '-');
  t.equal(calls, 1);

  const delay = testTarget({ MESHLET_RESILIENCE_DEFAULTS_FAULT_DELAY_PERCENT: '100', MESHLET_RESILIENCE_DEFAULTS_FAULT_DELAY_DURATION: '2s' });
  const delayed = faultLayer(delay, clock)(ok)(proxyRequest());
  let done = false;
  void delayed.then(() => (done = true));
  await clock.advance(1999);
  t.notOk(done, 'still waiting');
  await clock.advance(1);
  t.equal((await delayed).flag, 'DI');
  t.same([...abort.seen, ...delay.seen], ['fault abort', 'fault abort', 'fault delay']);
  const none = async () => ok();
  t.equal(faultLayer(testTarget(), clock)(none), none, 'off by default: no layer');
});

t.test('inbound rate limits per route: the first path prefix that matches has its own bucket, then the port', async (t) => {
  const clock = new FakeClock();
  const table = policyTable(
    loadConfig({
      env: {
        MESHLET_RESILIENCE_INBOUND_PORTS:
          '{"8080": {rateLimit: {requestsPerSecond: 3, burst: 3}, routes: [{pathPrefix: /api/search, rateLimit: {requestsPerSecond: 1, burst: 1}}, {pathPrefix: /api/, rateLimit: {requestsPerSecond: 2, burst: 2}}]}}',
      },
    }),
  );
  const { events, seen } = recorder();
  const handler = inboundRequestLayer(() => table.inbound, clock, events, { views: new Map() })(ok);
  const to = (path: string) => handler(proxyRequest({ path, conn: { origDst: origDst('10.0.0.2', 8080) } as AcceptedConnection })).then((r) => r.status, (e: unknown) => shapeOf(e).status);
  t.equal(await to('/api/search?q=1'), 200);
  t.equal(await to('/api/search?q=2'), 429, "the search route's bucket (1) is empty");
  t.equal(await to('/api/items'), 200, 'another route has its own bucket');
  t.equal(await to('/other'), 200, 'no route: only the port limit');
  t.equal(await to('/other'), 429, "the port's bucket (3) is spent by every admitted request");
  t.same(seen, ['rate_limited', 'rate_limited']);
  await clock.advance(1000);
  t.equal(await to('/api/search'), 200, 'a second later, a token again');
});

t.test('route matching: the first route whose prefix starts the path, for any path; bad prefixes are config errors', async (t) => {
  fc.assert(
    fc.property(fc.array(fc.string().map((s) => `/${s}`), { maxLength: 5 }), fc.string(), (prefixes, path) => {
      const routes = prefixes.map((pathPrefix) => ({ pathPrefix }));
      const found = matchRoute(routes, path);
      const expected = routes.find((r) => path.startsWith(r.pathPrefix));
      return found === expected;
    }),
  );
  t.throws(() => loadConfig({ env: { MESHLET_RESILIENCE_INBOUND_PORTS: '{"80": {routes: [{pathPrefix: api, rateLimit: {requestsPerSecond: 1}}]}}' } }), /resilience\.inbound\.ports\.80\.routes\.0\.pathPrefix: "api" is not a path prefix: it must start with \//);
  t.throws(() => loadConfig({ env: { MESHLET_RESILIENCE_INBOUND_PORTS: '{"80": {routes: [{pathPrefix: /api}]}}' } }), /resilience\.inbound\.ports\.80\.routes\.0\.rateLimit/);
});
