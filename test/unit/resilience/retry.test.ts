import t from 'tap';
import { MeshletError, type MeshletErrorOptions } from '../../../src/errors.ts';
import { RequestAbort } from '../../../src/pipeline/abort.ts';
import { BufferedBody, PushBody, type Body } from '../../../src/pipeline/body.ts';
import { shapeOf } from '../../../src/pipeline/error-shape.ts';
import type { ProxyRequest, ProxyResponse } from '../../../src/pipeline/exchange.ts';
import { retryLayer } from '../../../src/resilience/retry.ts';
import { FakeClock } from '../../helpers/fake-clock.ts';
import { proxyRequest } from '../../helpers/proxy-request.ts';
import { testTarget } from './target.ts';

const response = (status: number, headers: string[] = [], body?: Body): ProxyResponse => ({ status, headers, body, flag: '-' });
const connectFailure = () => new MeshletError('MESHLET_ERR_UPSTREAM_CONNECT', 'refused', { upstreamFailure: 'connect-failure', unsent: true });
const failure = (code: 'MESHLET_ERR_UPSTREAM_RESET' | 'MESHLET_ERR_UPSTREAM_TIMEOUT', options: MeshletErrorOptions) => new MeshletError(code, 'x', options);

/** An upstream that plays `script` in order (the last entry repeats) and records what each try received. */
function upstream(script: Array<ProxyResponse | Error>) {
  const tries: Array<{ method: string; body: string }> = [];
  const handler = async (req: ProxyRequest): Promise<ProxyResponse> => {
    const body = await read(req.body);
    const step = script[Math.min(tries.length, script.length - 1)]!;
    tries.push({ method: req.method, body });
    if (step instanceof Error) throw step;
    return step;
  };
  return { tries, handler };
}

function read(body: Body | undefined): Promise<string> {
  if (!body) return Promise.resolve('');
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    body.pipe({ data: (c) => (chunks.push(c), true), end: () => resolve(Buffer.concat(chunks).toString()), abort: reject });
  });
}

/** Runs one request through the retry layer of a target with `env`, moving the fake clock until it settles. */
async function run(env: NodeJS.ProcessEnv, script: Array<ProxyResponse | Error>, req: Partial<ProxyRequest> = {}, clock = new FakeClock()) {
  const target = testTarget(env);
  const up = upstream(script);
  const result = retryLayer(target, clock)(up.handler)(proxyRequest(req)).then(
    (res): { res?: ProxyResponse; err?: unknown } => ({ res }),
    (err: unknown): { res?: ProxyResponse; err?: unknown } => ({ err }),
  );
  await clock.advance(60_000);
  return { ...(await result), tries: up.tries, seen: target.seen, target, clock };
}

const RETRY_5XX = { MESHLET_RESILIENCE_DEFAULTS_RETRIES_RETRY_ON: '[5xx, reset]', MESHLET_RESILIENCE_DEFAULTS_RETRIES_ATTEMPTS: '3' };

t.test('by default a request that never reached the upstream is retried once, whatever its method', async (t) => {
  for (const method of ['GET', 'POST']) {
    const r = await run({}, [connectFailure(), response(200)], { method });
    t.equal(r.res?.status, 200, `${method}: answered by the second try`);
    t.equal(r.tries.length, 2);
    t.same(r.seen, ['retry connect-failure sent']);
  }
  const refused = await run({}, [new MeshletError('MESHLET_ERR_UPSTREAM_RESET', 'refused', { upstreamFailure: 'refused-stream', unsent: true }), response(204)], { method: 'POST' });
  t.equal(refused.tries.length, 2, 'a refused stream too');
});

t.test('out of attempts: the last failure, flagged URX with its own flag (UF,URX)', async (t) => {
  const r = await run({}, [connectFailure()]);
  t.equal(r.tries.length, 2, 'two attempts by default');
  t.equal(shapeOf(r.err).flag, 'UF,URX');
  t.equal(shapeOf(r.err).status, 503);
  t.same(r.seen, ['retry connect-failure sent', 'retry connect-failure attempts_exhausted']);
});

t.test('a reset or a 5xx is not retried unless retryOn says so', async (t) => {
  const reset = await run({}, [failure('MESHLET_ERR_UPSTREAM_RESET', { upstreamFailure: 'reset' }), response(200)]);
  t.equal(reset.tries.length, 1, 'reset: one try');
  t.equal(shapeOf(reset.err).flag, 'UC', 'and no URX: no retry was wanted');
  const status = await run({}, [response(503), response(200)]);
  t.equal(status.tries.length, 1, '503: one try');
  t.equal(status.res?.flag, '-');
});

t.test('5xx and reset retries apply to idempotent methods only, unless nonIdempotent', async (t) => {
  const get = await run(RETRY_5XX, [response(503), failure('MESHLET_ERR_UPSTREAM_RESET', { upstreamFailure: 'reset' }), response(200)]);
  t.equal(get.res?.status, 200);
  t.equal(get.tries.length, 3);
  t.same(get.seen, ['retry status sent', 'retry reset sent']);
  const post = await run(RETRY_5XX, [response(503), response(200)], { method: 'POST' });
  t.equal(post.res?.status, 503, 'POST after a 5xx: the 5xx');
  t.equal(post.tries.length, 1, 'the upstream saw the POST once');
  const allowed = await run({ ...RETRY_5XX, MESHLET_RESILIENCE_DEFAULTS_RETRIES_NON_IDEMPOTENT: 'true' }, [response(503), response(200)], { method: 'POST' });
  t.equal(allowed.tries.length, 2, 'nonIdempotent: the POST is retried');
});

t.test('a retried response that runs out of attempts keeps its status and is flagged URX', async (t) => {
  const r = await run(RETRY_5XX, [response(503)]);
  t.equal(r.tries.length, 3);
  t.equal(r.res?.status, 503);
  t.equal(r.res?.flag, 'URX');
});

t.test('gRPC: trailers-only statuses named in retryOn are retried, for POST too', async (t) => {
  const env = { MESHLET_RESILIENCE_DEFAULTS_RETRIES_RETRY_ON: '[unavailable]' };
  const unavailable = response(200, ['grpc-status', '14']);
  const r = await run(env, [unavailable, response(200, ['grpc-status', '0'])], { method: 'POST', grpc: true });
  t.equal(r.tries.length, 2);
  t.same(r.seen, ['retry grpc-status sent']);
  const internal = await run(env, [response(200, ['grpc-status', '13'])], { method: 'POST', grpc: true });
  t.equal(internal.tries.length, 1, 'INTERNAL is not named');
});

t.test('backoff: jittered exponential within the cap; Retry-After honoured up to the cap, beyond it no retry', async (t) => {
  const clock = new FakeClock();
  const waits: number[] = [];
  const after = clock.after.bind(clock);
  clock.after = (ms, fn) => (waits.push(ms), after(ms, fn));
  await run({ ...RETRY_5XX, MESHLET_RESILIENCE_DEFAULTS_RETRIES_ATTEMPTS: '6' }, [response(503)], {}, clock);
  // random() = 0.5 of min(250, 25 × 2^(n-1)): 12, 25, 50, 100, then the cap's half.
  t.same(waits, [12, 25, 50, 100, 125]);

  const soon = await run(RETRY_5XX, [response(503, ['Retry-After', '0']), response(200)]);
  t.equal(soon.tries.length, 2, 'Retry-After: 0 is within the cap');
  const late = await run(RETRY_5XX, [response(503, ['Retry-After', '5']), response(200)]);
  t.equal(late.tries.length, 1, 'Retry-After 5 s is beyond the 250 ms cap: not retried');
  t.equal(late.res?.flag, '-', 'the answer as the upstream gave it');
  t.same(late.seen, ['retry status retry_after_too_long']);
});

t.test('a body is replayed whole on the retry; a body over 64 KiB is not retried', async (t) => {
  const body = new BufferedBody([Buffer.from('hello '), Buffer.from('world')]);
  const r = await run({}, [connectFailure(), response(200)], { method: 'POST', body });
  t.same(r.tries.map((x) => x.body), ['hello world', 'hello world']);

  const big = new BufferedBody([Buffer.alloc(64 * 1024 + 1, 'x')]);
  const large = await run({}, [connectFailure(), response(200)], { method: 'POST', body: big });
  t.equal(large.tries.length, 1);
  t.same(large.seen, ['retry connect-failure body_too_large']);
  t.equal(shapeOf(large.err).flag, 'UF', 'not URX: retries did not run out, the body could not be replayed');

  // A body of unknown length that turns out to be too large: the first try takes it all, no retry.
  const pushed = new PushBody({ pause() {}, resume() {}, cancel() {} });
  for (let i = 0; i < 17; i++) pushed.push(Buffer.alloc(4096, 'y'));
  pushed.finish([]);
  const unknown = await run({}, [connectFailure(), response(200)], { method: 'POST', body: pushed });
  t.equal(unknown.tries.length, 1);
  t.equal(unknown.tries[0]!.body.length, 17 * 4096, 'the first try still got the whole body');
});

t.test('under total failure the budget bounds the retries: no retry storm', async (t) => {
  const clock = new FakeClock();
  const target = testTarget({ ...RETRY_5XX, MESHLET_RESILIENCE_DEFAULTS_RETRIES_BUDGET_MIN_PER_SECOND: '1' });
  const up = upstream([response(503)]);
  const handler = retryLayer(target, clock)(up.handler);
  let exhausted = 0;
  for (let i = 0; i < 200; i++) {
    const done = handler(proxyRequest());
    await clock.advance(1000);
    if ((await done).flag === 'URX') exhausted++;
  }
  // 200 requests in 200 s: each 10 s window holds ~10 of them, so 2 + 10 retries per window at most.
  t.ok(up.tries.length <= 200 + 200 * 0.2 + 20 * 10, `the upstream saw ${up.tries.length} tries for 200 requests, attempts 3`);
  t.ok(up.tries.length < 200 * 3, 'fewer than attempts × requests');
  t.ok(target.seen.some((e) => e === 'retry status budget_exhausted'), 'budget exhaustion was reported');
  t.equal(exhausted, 200, 'every answer flagged URX');
  t.match(target.state.get('budget')?.snapshot(), { exhausted: Number });
});

t.test('per-try timeout: each try gets its own deadline and, under gateway-error, is retried', async (t) => {
  const clock = new FakeClock();
  const target = testTarget({ MESHLET_RESILIENCE_DEFAULTS_PER_TRY_TIMEOUT: '100ms', MESHLET_RESILIENCE_DEFAULTS_RETRIES_RETRY_ON: '[gateway-error]', MESHLET_RESILIENCE_DEFAULTS_RETRIES_ATTEMPTS: '3' });
  const signals: RequestAbort[] = [];
  const handler = retryLayer(target, clock)((req) => {
    signals.push(req.abort);
    return new Promise(() => {});
  });
  const result = handler(proxyRequest()).catch((e: unknown) => e);
  await clock.advance(5000);
  const err = await result;
  t.equal(signals.length, 3);
  t.ok(signals.every((s) => s.aborted), 'each try was aborted at its deadline');
  t.equal(shapeOf(err).flag, 'UT,URX');
  t.equal(shapeOf(err).status, 504);
  t.same(target.seen.filter((e) => e.startsWith('timeout')), ['timeout per_try', 'timeout per_try', 'timeout per_try']);
});

t.test('a client that goes away stops the retries', async (t) => {
  const clock = new FakeClock();
  const client = new RequestAbort();
  const up = upstream([connectFailure()]);
  const result = retryLayer(testTarget({ MESHLET_RESILIENCE_DEFAULTS_RETRIES_ATTEMPTS: '5' }), clock)(up.handler)(proxyRequest({ abort: client })).catch((e: unknown) => e);
  await clock.advance(1);
  client.abort();
  await clock.advance(10_000);
  t.ok((await result) instanceof MeshletError);
  t.ok(up.tries.length <= 2, `${up.tries.length} tries`);
});

t.test('one attempt and no per-try timeout: the layer is not there at all', async (t) => {
  const next = async () => response(200);
  t.equal(retryLayer(testTarget({ MESHLET_RESILIENCE_DEFAULTS_RETRIES_ATTEMPTS: '1' }), new FakeClock())(next), next);
});

t.test("a peer sidecar's 503 saying it could not reach its app is retried like a connect failure, only from a meshed destination", async (t) => {
  const peer503 = response(503, ['meshlet-error', 'upstream_connect_failure']);
  const meshed = { upstreamPeer: { cidrs: [], trustDomain: 'cluster.local' } } as unknown as ProxyRequest['conn'];
  const r = await run({}, [peer503, response(200)], { method: 'POST', conn: meshed });
  t.equal(r.tries.length, 2, 'retried, a POST too: it never reached the app');
  t.same(r.seen, ['retry connect-failure sent']);
  const overflow = await run({}, [response(503, ['meshlet-error', 'overflow']), response(200)], { conn: meshed });
  t.same(overflow.seen, ['retry overflow sent']);
  const plain = await run({}, [peer503, response(200)], { conn: {} as ProxyRequest['conn'] });
  t.equal(plain.tries.length, 1, 'the same header from a destination outside the mesh is not trusted');
  const limited = await run({}, [response(503, ['meshlet-error', 'upstream_reset']), response(200)], { conn: meshed });
  t.equal(limited.tries.length, 1, 'a reset at the peer may have reached the app: not retried by default');
});
