import t from 'tap';
import { MeshletError } from '../../../src/errors.ts';
import { RequestAbort } from '../../../src/pipeline/abort.ts';
import { BufferedBody } from '../../../src/pipeline/body.ts';
import { shapeOf } from '../../../src/pipeline/error-shape.ts';
import type { ProxyResponse } from '../../../src/pipeline/exchange.ts';
import { destinationLimitLayer } from '../../../src/resilience/limits.ts';
import { settle } from '../../helpers/fake-clock.ts';
import { proxyRequest } from '../../helpers/proxy-request.ts';
import { testTarget } from './target.ts';

function held() {
  const answers: Array<(r: ProxyResponse) => void> = [];
  return { answers, handler: () => new Promise<ProxyResponse>((resolve) => answers.push(resolve)) };
}

t.test('max concurrent requests: one waits while the queue has room, the next is refused 503 UO', async (t) => {
  const target = testTarget({ MESHLET_RESILIENCE_DEFAULTS_LIMITS_MAX_CONCURRENT_REQUESTS: '1', MESHLET_RESILIENCE_DEFAULTS_LIMITS_MAX_PENDING_REQUESTS: '1' });
  const up = held();
  const handler = destinationLimitLayer(target)(up.handler);
  const first = handler(proxyRequest());
  const second = handler(proxyRequest());
  const third = handler(proxyRequest()).catch((e: unknown) => e);
  await settle();
  t.equal(up.answers.length, 1, 'only one reached the upstream');
  const err = await third;
  t.ok(err instanceof MeshletError);
  t.same([shapeOf(err).status, shapeOf(err).flag, shapeOf(err).cause], [503, 'UO', 'overflow']);
  t.same(target.seen, ['overflow max_pending_requests']);
  t.match(target.state.get('limits')?.snapshot(), { inFlight: 1, pending: 1, overflows: 1 });

  // The first one's response has a body: its slot is held until the body ends.
  const body = new BufferedBody([Buffer.from('x')]);
  up.answers[0]!({ status: 200, headers: [], body, flag: '-' });
  const res = await first;
  await settle();
  t.equal(up.answers.length, 1, 'the head alone does not free the slot');
  res.body!.pipe({ data: () => true, end: () => {}, abort: () => {} });
  await settle();
  t.equal(up.answers.length, 2, 'once the body ended, the waiting request went');
  up.answers[1]!({ status: 204, headers: [], body: undefined, flag: '-' });
  t.equal((await second).status, 204);
  t.match(target.state.get('limits')?.snapshot(), { inFlight: 0, pending: 0 });
});

t.test('without a queue the overflow is max_concurrent_requests; a failed request frees its slot', async (t) => {
  const target = testTarget({ MESHLET_RESILIENCE_DEFAULTS_LIMITS_MAX_CONCURRENT_REQUESTS: '1', MESHLET_RESILIENCE_DEFAULTS_LIMITS_MAX_PENDING_REQUESTS: '0' });
  let fail = true;
  const handler = destinationLimitLayer(target)(async () => {
    if (fail) throw new Error('boom');
    return { status: 200, headers: [], body: undefined, flag: '-' };
  });
  await handler(proxyRequest()).catch(() => {});
  fail = false;
  t.equal((await handler(proxyRequest())).status, 200, 'the slot came back after the failure');
  const up = held();
  const h2 = destinationLimitLayer(target)(up.handler);
  void h2(proxyRequest());
  await t.rejects(h2(proxyRequest()), { code: 'MESHLET_ERR_OVERFLOW' });
  t.same(target.seen, ['overflow max_concurrent_requests']);
});

t.test('a waiting request whose client goes away leaves the queue', async (t) => {
  const target = testTarget({ MESHLET_RESILIENCE_DEFAULTS_LIMITS_MAX_CONCURRENT_REQUESTS: '1' });
  const up = held();
  const handler = destinationLimitLayer(target)(up.handler);
  void handler(proxyRequest());
  const client = new RequestAbort();
  const waiting = handler(proxyRequest({ abort: client })).catch((e: unknown) => e);
  await settle();
  t.match(target.state.get('limits')?.snapshot(), { pending: 1 });
  client.abort();
  await waiting;
  t.match(target.state.get('limits')?.snapshot(), { pending: 0, inFlight: 1 });
  t.same(target.seen, [], 'not an overflow');
});

t.test('no limit configured: no layer', async (t) => {
  const next = async (): Promise<ProxyResponse> => ({ status: 200, headers: [], body: undefined, flag: '-' });
  t.equal(destinationLimitLayer(testTarget())(next), next);
});
