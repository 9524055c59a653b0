import fc from 'fast-check';
import t from 'tap';
import { MeshletError } from '../../../src/errors.ts';
import { RequestAbort } from '../../../src/pipeline/abort.ts';
import { shapeOf } from '../../../src/pipeline/error-shape.ts';
import type { ProxyResponse } from '../../../src/pipeline/exchange.ts';
import { parseGrpcTimeout, timeoutLayer } from '../../../src/resilience/timeout.ts';
import { FakeClock, settle } from '../../helpers/fake-clock.ts';
import { proxyRequest } from '../../helpers/proxy-request.ts';
import { testTarget } from './target.ts';

const ok: ProxyResponse = { status: 200, headers: [], body: undefined, flag: '-' };

/** An upstream that answers only when told, and remembers the signal it was given. */
function slowUpstream() {
  const calls: Array<{ abort: RequestAbort; answer: (r: ProxyResponse) => void }> = [];
  return { calls, handler: (req: { abort: RequestAbort }) => new Promise<ProxyResponse>((answer) => calls.push({ abort: req.abort, answer })) };
}

t.test('the whole request times out: 504 UT (gRPC DEADLINE_EXCEEDED), and the try upstream is aborted', async (t) => {
  const clock = new FakeClock();
  const target = testTarget({ MESHLET_RESILIENCE_DEFAULTS_TIMEOUT: '1s' });
  const up = slowUpstream();
  const handler = timeoutLayer(target, clock)(up.handler);
  const result = handler(proxyRequest()).catch((err: unknown) => err);
  await clock.advance(999);
  t.notOk(up.calls[0]!.abort.aborted, 'not before the deadline');
  await clock.advance(1);
  const err = await result;
  t.ok(err instanceof MeshletError && err.code === 'MESHLET_ERR_UPSTREAM_TIMEOUT');
  t.same([shapeOf(err).status, shapeOf(err).flag, shapeOf(err).grpc], [504, 'UT', 4]);
  t.ok(up.calls[0]!.abort.aborted, 'the upstream try was aborted');
  t.same(target.seen, ['timeout total']);
});

t.test('a response in time passes unchanged and its timer is cancelled', async (t) => {
  const clock = new FakeClock();
  const up = slowUpstream();
  const handler = timeoutLayer(testTarget({ MESHLET_RESILIENCE_DEFAULTS_TIMEOUT: '1s' }), clock)(up.handler);
  const result = handler(proxyRequest());
  await clock.advance(500);
  up.calls[0]!.answer(ok);
  t.equal(await result, ok);
  t.equal(clock.pending, 0, 'no timer left behind');
});

t.test("the client's abort still reaches the upstream under a deadline", async (t) => {
  const clock = new FakeClock();
  const up = slowUpstream();
  const client = new RequestAbort();
  void timeoutLayer(testTarget({ MESHLET_RESILIENCE_DEFAULTS_TIMEOUT: '1s' }), clock)(up.handler)(proxyRequest({ abort: client })).catch(() => {});
  await settle();
  client.abort();
  t.ok(up.calls[0]!.abort.aborted);
});

t.test('grpc-timeout shortens the deadline of a gRPC request; with no policy timeout it is the deadline', async (t) => {
  for (const policy of ['5s', '0s']) {
    const clock = new FakeClock();
    const up = slowUpstream();
    const handler = timeoutLayer(testTarget({ MESHLET_RESILIENCE_DEFAULTS_TIMEOUT: policy }), clock)(up.handler);
    const result = handler(proxyRequest({ grpc: true, method: 'POST', headers: ['grpc-timeout', '200m'] })).catch((e: unknown) => e);
    await clock.advance(200);
    t.match(await result, { code: 'MESHLET_ERR_UPSTREAM_TIMEOUT', message: /grpc-timeout 200 ms/ }, `policy timeout ${policy}`);
  }
  const clock = new FakeClock();
  const up = slowUpstream();
  const result = timeoutLayer(testTarget(), clock)(up.handler)(proxyRequest({ headers: ['grpc-timeout', '200m'] }));
  await clock.advance(10_000);
  t.equal(clock.pending, 0, 'grpc-timeout is not read from a request that is not gRPC');
  up.calls[0]!.answer(ok);
  t.equal(await result, ok);
});

t.test('parseGrpcTimeout', async (t) => {
  t.equal(parseGrpcTimeout('1H'), 3_600_000);
  t.equal(parseGrpcTimeout('2M'), 120_000);
  t.equal(parseGrpcTimeout('3S'), 3000);
  t.equal(parseGrpcTimeout('250m'), 250);
  t.equal(parseGrpcTimeout('1500u'), 2, 'rounded up to whole milliseconds');
  t.equal(parseGrpcTimeout('1n'), 1, 'never 0: at least one millisecond');
  for (const bad of [undefined, '', 'S', '123456789S', '1x', '-1S', '1.5S', ' 1S']) t.equal(parseGrpcTimeout(bad), undefined, `${JSON.stringify(bad)} refused`);
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 99_999_999 }), fc.constantFrom('H', 'M', 'S', 'm'), (n, unit) => {
      const ms = { H: 3_600_000, M: 60_000, S: 1000, m: 1 }[unit] * n;
      return parseGrpcTimeout(`${n}${unit}`) === Math.max(1, ms);
    }),
  );
  fc.assert(fc.property(fc.string(), (text) => {
    const ms = parseGrpcTimeout(text);
    return ms === undefined || (Number.isFinite(ms) && ms >= 1);
  }));
});
