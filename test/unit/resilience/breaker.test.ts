import { mock } from 'node:test';
import t, { type Test } from 'tap';
import { loadConfig } from '../../../src/config/load.ts';
import { MeshletError } from '../../../src/errors.ts';
import { shapeOf } from '../../../src/pipeline/error-shape.ts';
import type { ProxyRequest, ProxyResponse } from '../../../src/pipeline/exchange.ts';
import { Breakers, breakerLayer, EndpointBreaker, openDurationMs, responseOutcome } from '../../../src/resilience/breaker.ts';
import { BufferedBody } from '../../../src/pipeline/body.ts';
import { withDeadline } from '../../../src/resilience/timeout.ts';
import { FakeClock, settle } from '../../helpers/fake-clock.ts';
import { proxyRequest } from '../../helpers/proxy-request.ts';
import { testTarget } from './target.ts';

// opossum ends an open period with its own setTimeout: these tests move that time with
// node:test's mock timers, and the rolling window (rotated from our Clock) with FakeClock.

const env = (fields: Record<string, string>) => Object.fromEntries(Object.entries(fields).map(([k, v]) => [`MESHLET_RESILIENCE_DEFAULTS_CIRCUIT_BREAKER_${k}`, v]));

const ok = (status = 200): ProxyResponse => ({ status, headers: [], body: undefined, flag: '-' });
const connectFailure = () => new MeshletError('MESHLET_ERR_UPSTREAM_CONNECT', 'refused', { upstreamFailure: 'connect-failure', unsent: true });

/** An upstream whose next answers the test scripts: a status, or an error to throw; counts what reached it. */
function upstream() {
  const script: Array<number | Error> = [];
  let seen = 0;
  const handler = async (): Promise<ProxyResponse> => {
    seen++;
    const next = script.shift() ?? 200;
    if (next instanceof Error) throw next;
    return ok(next);
  };
  return { script, handler, get seen() {
    return seen;
  } };
}

function setup(t: Test, fields: Record<string, string>) {
  mock.timers.enable({ apis: ['setTimeout'] });
  t.teardown(() => mock.timers.reset());
  const clock = new FakeClock();
  const target = testTarget(env(fields));
  const breakers = new Breakers(clock);
  const up = upstream();
  const handler = breakerLayer(target, breakers)(up.handler);
  const breaker = target.state.get('breaker') as EndpointBreaker;
  const send = (req: ProxyRequest = proxyRequest()) => handler(req).catch((e: unknown) => e as MeshletError);
  return { clock, target, breakers, up, handler, breaker, send };
}

t.test('no breaker unless a threshold is set: the layer is the upstream call itself', async (t) => {
  const target = testTarget();
  const up = upstream();
  t.equal(breakerLayer(target, new Breakers(new FakeClock()))(up.handler), up.handler);
  t.equal(target.state.get('breaker'), undefined);
});

t.test('consecutive failures open it: 503 UO circuit_open at once, the upstream sees nothing; a successful probe closes it', async (t) => {
  const { up, breaker, target, send } = setup(t, { CONSECUTIVE_FAILURES: '3', OPEN_DURATION: '5s' });
  up.script.push(503, 503, 200, 503, 503, connectFailure());
  t.equal(((await send()) as ProxyResponse).status, 503);
  t.equal(((await send()) as ProxyResponse).status, 503);
  t.equal(((await send()) as ProxyResponse).status, 200, 'a success in between starts the count again');
  await send();
  await send();
  t.equal(breaker.state, 'closed', 'two in a row of three');
  const third = await send();
  t.ok(third instanceof MeshletError && third.code === 'MESHLET_ERR_UPSTREAM_CONNECT', 'the failure that opened it goes back as it was');
  t.equal(breaker.state, 'open');

  const refused = await send();
  t.ok(refused instanceof MeshletError);
  t.same([shapeOf(refused).status, shapeOf(refused).flag, shapeOf(refused).cause, shapeOf(refused).grpc], [503, 'UO', 'circuit_open', 14]);
  t.equal(up.seen, 6, 'the refused request never reached the upstream');
  t.match(breaker.snapshot(), { state: 'open', rejections: 1, opens: 1 });

  mock.timers.tick(4999);
  t.equal(breaker.state, 'open', 'still open before openDuration');
  mock.timers.tick(1);
  t.equal(breaker.state, 'half_open');
  t.equal(((await send()) as ProxyResponse).status, 200, 'the probe went and succeeded');
  t.equal(breaker.state, 'closed');
  t.equal(up.seen, 7);
  t.same(
    target.seen.filter((e) => e.startsWith('breaker')),
    ['breaker new -> closed', 'breaker closed -> open', 'breaker rejected', 'breaker open -> half_open', 'breaker half_open -> closed'],
  );
});

t.test('half-open lets one probe through; a failed probe opens it again for twice as long', async (t) => {
  const { up, breaker, send, handler } = setup(t, { CONSECUTIVE_FAILURES: '1', OPEN_DURATION: '1s', MAX_OPEN_DURATION: '3s' });
  up.script.push(500);
  await send();
  t.equal(breaker.state, 'open');
  mock.timers.tick(1000);
  t.equal(breaker.state, 'half_open');

  // The probe is under way (not yet answered) when the next request comes: that one is refused.
  up.script.push(502);
  const probe = handler(proxyRequest());
  const other = await send();
  t.match(other, { code: 'MESHLET_ERR_CIRCUIT_OPEN' }, 'a second request while the probe is out is refused');
  t.equal(((await probe) as ProxyResponse).status, 502, 'the probe failed (a gateway error counts as 5xx)');
  t.equal(breaker.state, 'open');
  mock.timers.tick(1999);
  t.equal(breaker.state, 'open', 'the second open period is 2 s');
  mock.timers.tick(1);
  t.equal(breaker.state, 'half_open');
  up.script.push(503);
  await send();
  mock.timers.tick(2999);
  t.equal(breaker.state, 'open', 'the third is capped at maxOpenDuration (3 s), not 4 s');
  mock.timers.tick(1);
  t.equal(breaker.state, 'half_open');
  await send();
  t.equal(breaker.state, 'closed');
  t.equal(breaker.snapshot().opens, 0, 'closing resets the backoff');
});

t.test('a probe that never answers counts as failed after 10 s: the breaker does not stay half-open', async (t) => {
  const { breaker, target, breakers } = setup(t, { CONSECUTIVE_FAILURES: '1', OPEN_DURATION: '1s' });
  const hangs = breakerLayer(target, breakers)(() => new Promise<ProxyResponse>(() => {}));
  breaker.report('5xx');
  t.equal(breaker.state, 'open');
  mock.timers.tick(1000);
  void hangs(proxyRequest());
  await settle();
  mock.timers.tick(9999);
  t.equal(breaker.state, 'half_open', 'the probe is out');
  mock.timers.tick(1);
  await settle();
  t.equal(breaker.state, 'open', 'no answer in 10 s: open again');
  mock.timers.tick(2000);
  t.equal(breaker.state, 'half_open', 'for the doubled period, then another probe may go');
});

t.test('by error rate: opens when more than errorPercent of the window failed, once it holds minRequests', async (t) => {
  const { up, breaker, send, clock } = setup(t, { ERROR_PERCENT: '50', MIN_REQUESTS: '10', WINDOW: '10s' });
  // 9 requests, all failing: under minRequests, stays closed.
  for (let i = 0; i < 9; i++) up.script.push(503);
  for (let i = 0; i < 9; i++) await send();
  t.equal(breaker.state, 'closed', '9 requests: under minRequests');
  t.match(breaker.snapshot(), { windowRequests: 9, windowFailures: 9 });

  // The window moves on: those 9 are forgotten after 10 s.
  await clock.advance(10_000);
  t.match(breaker.snapshot(), { windowRequests: 0, windowFailures: 0 }, 'the window forgot them');
  for (let i = 0; i < 10; i++) up.script.push(i % 2 === 0 ? 503 : 200);
  for (let i = 0; i < 10; i++) await send();
  t.equal(breaker.state, 'closed', 'exactly 50 % is not more than 50 %');
  up.script.push(503);
  await send();
  t.equal(breaker.state, 'open', '6 of 11 failed');
  t.equal(up.seen, 20);
});

t.test('what counts is failureOn: 4xx never, 5xx and errors as configured, a client that left never, a deadline as a timeout', async (t) => {
  {
    const { up, breaker, send } = setup(t, { CONSECUTIVE_FAILURES: '2', FAILURE_ON: '[connect-failure]' });
    up.script.push(500, 503, 404, 500);
    for (let i = 0; i < 4; i++) await send();
    t.equal(breaker.state, 'closed', 'statuses do not count when failureOn has only connect-failure');
    up.script.push(connectFailure(), connectFailure());
    await send();
    await send();
    t.equal(breaker.state, 'open');
    mock.timers.reset();
  }
  {
    const { up, breaker, send } = setup(t, { CONSECUTIVE_FAILURES: '2' });
    up.script.push(404, 429, 404);
    for (let i = 0; i < 3; i++) await send();
    t.equal(breaker.state, 'closed', '4xx are answers, not failures');
    up.script.push(new MeshletError('MESHLET_ERR_UPSTREAM_RESET', 'reset', { upstreamFailure: 'reset' }));
    await send();
    t.equal(breaker.snapshot().consecutiveFailures, 1, 'a reset counts by default');
    mock.timers.reset();
  }
  {
    const { breaker, target, breakers } = setup(t, { CONSECUTIVE_FAILURES: '1' });
    // A client that goes away: its try fails, but says nothing about the destination.
    const gone = proxyRequest();
    const abortedUp = breakerLayer(target, breakers)(async (req) => {
      req.abort.abort();
      throw new MeshletError('MESHLET_ERR_UPSTREAM_RESET', 'client left', { upstreamFailure: 'reset' });
    });
    await abortedUp(gone).catch(() => {});
    t.equal(breaker.state, 'closed', 'a client that left is not a failure');
    // A deadline of ours that expires: a timeout.
    const clock = new FakeClock();
    const hanging = breakerLayer(target, breakers)(
      (req) =>
        new Promise<ProxyResponse>((_, reject) =>
          req.abort.on(() => reject(new MeshletError('MESHLET_ERR_UPSTREAM_RESET', 'aborted', { upstreamFailure: 'reset' }))),
        ),
    );
    const req = proxyRequest();
    const pending = withDeadline(req, 100, hanging, clock, () => new MeshletError('MESHLET_ERR_UPSTREAM_TIMEOUT', 'late')).catch((e: unknown) => e);
    await clock.advance(100);
    t.match(await pending, { code: 'MESHLET_ERR_UPSTREAM_TIMEOUT' });
    await settle();
    t.equal(breaker.state, 'open', 'the expired deadline counted as a timeout');
  }
});

t.test('gRPC: a trailers-only UNAVAILABLE or INTERNAL counts as a 5xx; OK, NOT_FOUND and a status after a body do not', async (t) => {
  const grpc = (code: string, body = false): ProxyResponse => ({ status: 200, headers: ['grpc-status', code], body: body ? new BufferedBody([]) : undefined, flag: '-' });
  const req = proxyRequest({ grpc: true, method: 'POST' });
  t.same(
    [grpc('14'), grpc('13'), grpc('0'), grpc('5'), grpc('14', true)].map((res) => responseOutcome(req, res)),
    ['gateway-error', '5xx', 'success', 'success', 'success'],
  );
  t.equal(responseOutcome(proxyRequest(), grpc('14')), 'success', 'not a gRPC request: the HTTP status alone');
});

t.test('one breaker per destination and policy, shared; forgotten ones leave the metrics', async (t) => {
  const clock = new FakeClock();
  const breakers = new Breakers(clock);
  const a = testTarget(env({ CONSECUTIVE_FAILURES: '1' }));
  const again = { ...a, state: new Map() };
  t.equal(breakers.forTarget(a), breakers.forTarget(again), 'the same destination under the same policy: one breaker');
  t.equal(again.state.get('breaker'), breakers.forTarget(a), 'kept on each target as its breaker state');
  t.same([...breakers.entries()].map(([d]) => d), ['10.0.0.1:80']);
  breakers.dispose();
  t.same(a.seen, ['breaker new -> closed', 'breaker closed -> gone']);
});

t.test('open durations: doubled per failed probe, capped', async (t) => {
  const policy = { openMs: 5000, maxOpenMs: 60_000 } as EndpointBreaker['policy'];
  t.same([1, 2, 3, 4, 5, 6, 40].map((n) => openDurationMs(policy, n)), [5000, 10_000, 20_000, 40_000, 60_000, 60_000, 60_000]);
});

t.test('configuration errors name the field', async (t) => {
  const load = (fields: Record<string, string>) => () => loadConfig({ env: env(fields) });
  t.throws(load({ ERROR_PERCENT: '150' }), /resilience\.defaults\.circuitBreaker\.errorPercent: 150 is out of range 0–100/);
  t.throws(load({ FAILURE_ON: '[5xxx]' }), /resilience\.defaults\.circuitBreaker\.failureOn\.0: .*"5xxx".*connect-failure/);
  t.throws(load({ FAILURE_ON: '[]' }), /resilience\.defaults\.circuitBreaker\.failureOn/);
  t.throws(load({ OPEN_DURATION: '5' }), /resilience\.defaults\.circuitBreaker\.openDuration: 5 needs a unit/);
  t.throws(
    () => loadConfig({ env: { MESHLET_RESILIENCE_DESTINATIONS: '[{match: {ports: [80]}, circuitBreaker: {consecutiveFailure: 3}}]' } }),
    /resilience\.destinations\.0\.circuitBreaker\.consecutiveFailure: unknown field; did you mean consecutiveFailures\?/,
  );
  const policy = loadConfig({ env: { MESHLET_RESILIENCE_DESTINATIONS: '[{match: {ports: [80]}, circuitBreaker: {consecutiveFailures: 3}}]' } });
  t.same(policy.resilience.destinations[0]!.circuitBreaker, { consecutiveFailures: 3 });
});
