import t from 'tap';
import { loadConfig } from '../../../src/config/load.ts';
import { origDst } from '../../../src/net/addresses.ts';
import type { Handler } from '../../../src/pipeline/compose.ts';
import type { AcceptedConnection } from '../../../src/pipeline/connection.ts';
import type { ProxyRequest, ProxyResponse } from '../../../src/pipeline/exchange.ts';
import { policyTable, ResilienceRuntime } from '../../../src/resilience/runtime.ts';
import type { Target } from '../../../src/resilience/targets.ts';
import { FakeClock } from '../../helpers/fake-clock.ts';
import { proxyRequest } from '../../helpers/proxy-request.ts';

const ok: ProxyResponse = { status: 200, headers: [], body: undefined, flag: '-' };
const conn = (address: string, port: number) => ({ id: 1, direction: 'outbound', origDst: origDst(address, port) }) as unknown as AcceptedConnection;

/** A runtime whose recipe records each target it builds a stack for. */
function runtime(env: NodeJS.ProcessEnv) {
  const built: Target[] = [];
  const rt = ResilienceRuntime.fromConfig(loadConfig({ env }), undefined, new FakeClock());
  const next: Handler<ProxyRequest, ProxyResponse> = async () => ok;
  const handler = rt.requestLayer('outbound', (target) => (built.push(target), []))(next);
  return { rt, built, handler, next };
}

t.test('a stack is built once per destination and policy, and found again through the connection', async (t) => {
  const { built, handler } = runtime({ MESHLET_RESILIENCE_DESTINATIONS: '[{name: api, match: {authority: ["api"]}}]' });
  const a = conn('10.0.0.1', 80);
  await handler(proxyRequest({ conn: a, authority: 'web' }));
  await handler(proxyRequest({ conn: a, authority: 'web' }));
  t.same(built.map((x) => x.policy.name), ['default'], 'one build for two requests');
  await handler(proxyRequest({ conn: a, authority: 'api' }));
  await handler(proxyRequest({ conn: conn('10.0.0.1', 80), authority: 'api' }));
  t.same(built.map((x) => x.policy.name), ['default', 'api'], 'another policy on the same connection: its own stack, shared by another connection to the same destination');
  await handler(proxyRequest({ conn: conn('10.0.0.2', 80), authority: 'api' }));
  t.equal(built.length, 3, 'another destination: its own stack (its own budget)');
});

t.test('with no policy that does anything, requests pass straight on; a reload applies to the next request', async (t) => {
  const { rt, built, handler } = runtime({ MESHLET_RESILIENCE_DEFAULTS_RETRIES_ATTEMPTS: '1' });
  await handler(proxyRequest({ conn: conn('10.0.0.1', 80) }));
  t.equal(built.length, 0, 'inert: no stack at all');
  await handler(proxyRequest({ conn: conn('10.0.0.1', 80), grpc: true }));
  t.equal(built.length, 1, 'but a gRPC request gets one, for its grpc-timeout');
  rt.update(policyTable(loadConfig({ env: { MESHLET_RESILIENCE_DEFAULTS_TIMEOUT: '1s' } })));
  await handler(proxyRequest({ conn: conn('10.0.0.1', 80) }));
  t.equal(built.length, 2, 'after the reload: a stack built for the new policy');
  t.equal(built[1]!.policy.timeoutMs, 1000);
});

t.test('opaque TCP: connect retries within attempts and the budget; state listed per destination', async (t) => {
  const rt = ResilienceRuntime.fromConfig(loadConfig({ env: { MESHLET_RESILIENCE_DEFAULTS_RETRIES_ATTEMPTS: '3', MESHLET_RESILIENCE_DEFAULTS_RETRIES_BUDGET_MIN_PER_SECOND: '0' } }), undefined, new FakeClock());
  const c = conn('10.0.0.9', 5432);
  let policy = rt.connectPolicy(c);
  for (let i = 0; i < 9; i++) policy = rt.connectPolicy(c);
  t.equal(policy.connectTimeoutMs, 1000);
  t.type(policy.retryConnect!(1), 'number', 'a retry after the first failure: 10 connections give 2 retries at 20 %');
  t.type(policy.retryConnect!(2), 'number');
  t.equal(policy.retryConnect!(1), undefined, 'the budget is spent');
  t.equal(policy.retryConnect!(3), undefined, 'and three attempts are the most anyway');
  t.match(rt.targets(), [{ direction: 'outbound', policy: 'default', destination: '10.0.0.9:5432', state: { budget: { requests: 10, retries: 2 } } }]);
  const none = ResilienceRuntime.fromConfig(loadConfig({ env: { MESHLET_RESILIENCE_DEFAULTS_RETRIES_ATTEMPTS: '1' } })).connectPolicy(c);
  t.equal(none.retryConnect, undefined, 'one attempt: no connect retries');
});
