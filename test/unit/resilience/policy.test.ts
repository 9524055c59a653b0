import t from 'tap';
import { loadConfig } from '../../../src/config/load.ts';
import { origDst } from '../../../src/net/addresses.ts';
import { isInert, splitAuthority } from '../../../src/resilience/policy.ts';
import { policyTable } from '../../../src/resilience/runtime.ts';

const config = (destinations: string, extra: NodeJS.ProcessEnv = {}) => loadConfig({ env: { MESHLET_RESILIENCE_DESTINATIONS: destinations, ...extra } });

t.test('a destination policy is picked by authority, CIDR and port; the first that matches wins, else the defaults', async (t) => {
  const table = policyTable(
    config(`[
      {name: reviews, match: {authority: ["reviews:9080"]}, timeout: 2s},
      {name: any-port, match: {authority: [ratings]}, retries: {attempts: 4}},
      {name: cluster, match: {authority: ["*.svc.cluster.local"]}, perTryTimeout: 300ms},
      {name: db, match: {cidrs: [10.9.0.0/16], ports: [5432]}, connectTimeout: 3s},
      {name: v6, match: {cidrs: ["fd00::/8"]}, limits: {maxConcurrentRequests: 5}},
      {name: late, match: {authority: ["reviews:9080"]}, timeout: 9s}
    ]`),
  );
  const dst = origDst('10.0.0.1', 9080);
  t.equal(table.resolve('reviews:9080', dst).name, 'reviews');
  t.equal(table.resolve('REVIEWS:9080', dst).name, 'reviews', 'authority compared without case');
  t.equal(table.resolve('reviews', dst).name, 'reviews', 'no port in Host: the destination port counts');
  t.equal(table.resolve('reviews:9081', origDst('10.0.0.1', 9081)).name, 'default', 'another port: not this rule');
  t.equal(table.resolve('ratings:1234', dst).name, 'any-port', 'a name without a port matches every port');
  t.equal(table.resolve('a.b.svc.cluster.local', dst).name, 'cluster');
  t.equal(table.resolve('svc.cluster.local', dst).name, 'default', 'the suffix needs its dot');
  t.equal(table.resolve(undefined, origDst('10.9.3.4', 5432)).name, 'db', 'CIDR and port, opaque TCP (no authority)');
  t.equal(table.resolve(undefined, origDst('10.9.3.4', 5433)).name, 'default', 'CIDR matches, port does not');
  t.equal(table.resolve('x', origDst('fd00::1', 80)).name, 'v6');
  t.equal(table.resolve(undefined, dst).name, 'default', 'an authority rule never matches what has no authority');
  t.equal(table.resolve('reviews:9080', dst).timeoutMs, 2000, 'the first rule, not the later one');
});

t.test('a destination overrides only what it names; the rest comes from the defaults', async (t) => {
  const table = policyTable(
    config('[{name: slow, match: {ports: [80]}, retries: {budget: {percent: 50}}, fault: {abort: {percent: 10}}}]', { MESHLET_RESILIENCE_DEFAULTS_TIMEOUT: '15s', MESHLET_OUTBOUND_CONNECT_TIMEOUT: '2s' }),
  );
  const p = table.resolve(undefined, origDst('1.2.3.4', 80));
  t.equal(p.timeoutMs, 15_000, 'timeout from the defaults');
  t.equal(p.connectTimeoutMs, 2000, 'connect timeout from outbound.connectTimeout');
  t.equal(p.retries.attempts, 2);
  t.equal(p.retries.budget.ratio, 0.5, 'the budget field it names');
  t.equal(p.retries.budget.minPerSecond, 10, 'and the budget fields it does not');
  t.same(p.fault?.abort, { percent: 10, status: 503, grpcStatus: 14 });
  t.equal(p.fault?.delay, undefined);
  t.notOk(isInert(p, 2000));
  t.notOk(isInert(policyTable(loadConfig({ env: { MESHLET_RESILIENCE_DEFAULTS_RETRIES_ATTEMPTS: '1', MESHLET_RESILIENCE_DEFAULTS_CONNECT_TIMEOUT: '3s' } })).defaults, 1000), 'a connect timeout of its own is not inert');
  t.ok(isInert(policyTable(loadConfig({ env: { MESHLET_RESILIENCE_DEFAULTS_RETRIES_ATTEMPTS: '1' } })).defaults, 1000), 'one attempt and nothing else: inert');
});

t.test('config errors name the field path and show the bad value', async (t) => {
  const problems = (destinations: string) => {
    try {
      config(destinations);
      return '';
    } catch (err) {
      return (err as Error).message;
    }
  };
  t.match(problems('[{match: {}}]'), /resilience\.destinations\.0\.match: needs at least one of authority, cidrs or ports/);
  t.match(problems('[{match: {ports: [80]}, retries: {retryOn: [5xxx]}}]'), /resilience\.destinations\.0\.retries\.retryOn\.0: "5xxx" is not one of connect-failure/);
  t.match(problems('[{match: {ports: [80]}, retries: {atempts: 3}}]'), /resilience\.destinations\.0\.retries\.atempts: unknown field; did you mean attempts\?/);
  t.match(problems('[{match: {authority: ["a b"]}}]'), /resilience\.destinations\.0\.match\.authority\.0: "a b" is not an authority pattern/);
  t.match(problems('[{match: {cidrs: [10.0.0.0/40]}}]'), /resilience\.destinations\.0\.match\.cidrs\.0: "10.0.0.0\/40" is not a CIDR/);
  t.match(problems('[{match: {ports: [80]}, fault: {delay: {percent: 120, duration: 1s}}}]'), /resilience\.destinations\.0\.fault\.delay\.percent: 120 is out of range 0–100/);
  t.match(problems('[{match: {ports: [80]}, timeout: 5}]'), /resilience\.destinations\.0\.timeout: 5 needs a unit/);
  t.throws(() => loadConfig({ env: { MESHLET_RESILIENCE_INBOUND_PORTS: '{"80": {rateLimit: {requestsPerSecond: 0}}}' } }), /resilience\.inbound\.ports\.80\.rateLimit\.requestsPerSecond: expected a rate above 0, got 0/);
});

t.test('splitAuthority', async (t) => {
  t.same(splitAuthority('a:80'), { host: 'a', port: 80 });
  t.same(splitAuthority('a'), { host: 'a', port: undefined });
  t.same(splitAuthority('[::1]:8080'), { host: '::1', port: 8080 });
  t.same(splitAuthority('[::1]'), { host: '::1', port: undefined });
});

t.test('inbound per-port timeouts and retries: a table of their own, inert unless a port sets one; errors name the field', async (t) => {
  const none = policyTable(loadConfig({ env: {} })).inboundRequests;
  t.ok(none.policies.every((p) => isInert(p, none.baseConnectTimeoutMs)), 'nothing by default: no retry towards the app, whatever the outbound defaults');
  const table = policyTable(loadConfig({ env: { MESHLET_RESILIENCE_INBOUND_PORTS: '{"8080": {timeout: 2s, retries: {attempts: 3}}, "9090": {rateLimit: {requestsPerSecond: 5}}}' } })).inboundRequests;
  const p = table.resolve(undefined, origDst('10.0.0.5', 8080));
  t.match(p, { name: 'port 8080', timeoutMs: 2000, retries: { attempts: 3 } });
  t.equal(table.resolve(undefined, origDst('10.0.0.5', 9090)).name, 'default', 'a port with only a rate limit has no request policy');
  t.equal(table.resolve(undefined, origDst('10.0.0.5', 9090)).retries.attempts, 1);
  t.throws(() => loadConfig({ env: { MESHLET_RESILIENCE_INBOUND_PORTS: '{"8080": {retries: {atempts: 3}}}' } }), /resilience\.inbound\.ports\.8080\.retries\.atempts: unknown field; did you mean attempts\?/);
});
