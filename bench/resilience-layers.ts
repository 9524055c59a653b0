// What the resilience layers cost per request when nothing trips: the outbound request
// pipeline's per-destination stack (default policy: one retry of never-reached requests,
// budget, grpc-timeout honoured) against the same pipeline with every layer off
// (retries.attempts 1, so the policy is inert and requests pass straight on), in one
// process, over an upstream call that answers at once, so only the layers are measured.
// Three more modes price the circuit breaker: the defaults plus a breaker by consecutive
// failures (`breaker`) or by error rate (`breakerRate`, which also counts each request in
// its rolling window), and, for comparison, the defaults plus the same breaker driven the
// plain way, every request through opossum's fire() (`opossumFire`).
//
//   node bench/resilience-layers.ts [--requests 200000] [--rounds 11]
//
// Rounds rotate through the modes; each prints CPU (user + system) and wall time per request.
// The median of each is reported with its spread. CPU time is counted only for this
// process, so it is less disturbed by other work on the machine than wall time.
import { parseArgs } from 'node:util';
import { Registry } from 'prom-client';
import { loadConfig } from '../src/config/load.ts';
import { origDst } from '../src/net/addresses.ts';
import { RequestAbort } from '../src/pipeline/abort.ts';
import { compose, type Handler, type Layer } from '../src/pipeline/compose.ts';
import type { AcceptedConnection } from '../src/pipeline/connection.ts';
import type { ProxyRequest, ProxyResponse } from '../src/pipeline/exchange.ts';
import CircuitBreaker from 'opossum';
import { breakerLayer } from '../src/resilience/breaker.ts';
import { faultLayer } from '../src/resilience/fault.ts';
import { destinationLimitLayer } from '../src/resilience/limits.ts';
import { retryLayer } from '../src/resilience/retry.ts';
import { ResilienceRuntime } from '../src/resilience/runtime.ts';
import type { Target } from '../src/resilience/targets.ts';
import { timeoutLayer } from '../src/resilience/timeout.ts';
import { createResilienceMetrics } from '../src/telemetry/resilience-metrics.ts';

const { values } = parseArgs({ options: { requests: { type: 'string', default: '200000' }, rounds: { type: 'string', default: '11' } } });
const REQUESTS = Number(values.requests);
const ROUNDS = Number(values.rounds);

const RESPONSE: ProxyResponse = { status: 200, headers: ['content-length', '0'], body: undefined, flag: '-' };
const upstream: Handler<ProxyRequest, ProxyResponse> = () => Promise.resolve(RESPONSE);

/** The outbound request pipeline's resilience part as src/proxy/outbound/stack.ts composes it. */
function pipeline(env: NodeJS.ProcessEnv, breaker = (runtime: ResilienceRuntime) => (t: Target) => breakerLayer(t, runtime.breakers)): Handler<ProxyRequest, ProxyResponse> {
  const runtime = ResilienceRuntime.fromConfig(loadConfig({ env }), createResilienceMetrics(new Registry(), 'meshlet'));
  const { clock } = runtime;
  const innermost = breaker(runtime);
  return compose([runtime.requestLayer('outbound', (t) => [faultLayer(t, clock), timeoutLayer(t, clock), destinationLimitLayer(t), retryLayer(t, clock), innermost(t)])], upstream);
}

/** The plain way: every try through opossum's fire(), the status looked at in the action. */
const viaFire = () => (): Layer<ProxyRequest, ProxyResponse> => (next) => {
  const cb = new CircuitBreaker((req: ProxyRequest) => next(req).then((res) => (res.status >= 500 ? Promise.reject(new Error(String(res.status))) : res)), {
    timeout: false,
    rollingPercentilesEnabled: false,
    enableSnapshots: false,
    errorThresholdPercentage: 50,
  });
  return (req) => cb.fire(req);
};

// 16 client connections, as the L7 benchmark's HTTP/1.1 runs use, each a distinct object.
const conns = Array.from({ length: 16 }, (_, i) => ({ id: i, direction: 'outbound', origDst: origDst('10.0.0.1', 8080), security: 'none' }) as unknown as AcceptedConnection);

/** A request object per request, as the codec makes one. */
const request = (i: number): ProxyRequest => ({
  conn: conns[i & 15]!,
  protocol: 'http1',
  method: 'GET',
  authority: 'app:8080',
  path: '/',
  scheme: 'http',
  headers: ['accept', '*/*'],
  hostName: 'Host',
  body: undefined,
  grpc: false,
  abort: new RequestAbort(),
  onContinue: () => {},
});

async function round(handler: Handler<ProxyRequest, ProxyResponse>): Promise<{ cpuNs: number; wallNs: number }> {
  const cpu = process.cpuUsage();
  const start = process.hrtime.bigint();
  for (let i = 0; i < REQUESTS; i++) await handler(request(i));
  const wall = Number(process.hrtime.bigint() - start);
  const used = process.cpuUsage(cpu);
  return { cpuNs: ((used.user + used.system) * 1000) / REQUESTS, wallNs: wall / REQUESTS };
}

const breakerEnv = (fields: Record<string, string>) => Object.fromEntries(Object.entries(fields).map(([k, v]) => [`MESHLET_RESILIENCE_DEFAULTS_CIRCUIT_BREAKER_${k}`, v]));
const modes = {
  on: pipeline({}),
  off: pipeline({ MESHLET_RESILIENCE_DEFAULTS_RETRIES_ATTEMPTS: '1' }),
  breaker: pipeline(breakerEnv({ CONSECUTIVE_FAILURES: '5' })),
  breakerRate: pipeline(breakerEnv({ ERROR_PERCENT: '50' })),
  opossumFire: pipeline({}, viaFire),
};
type Mode = keyof typeof modes;
const names = Object.keys(modes) as Mode[];
// Warm-up: JIT every path before anything is recorded.
for (const handler of Object.values(modes)) await round(handler);
const results = Object.fromEntries(names.map((m) => [m, []])) as unknown as Record<Mode, Array<{ cpuNs: number; wallNs: number }>>;
for (let r = 0; r < ROUNDS; r++) {
  // Each round starts at another mode, so none always runs first.
  for (const mode of names.map((_, i) => names[(i + r) % names.length]!)) {
    const x = await round(modes[mode]);
    results[mode].push(x);
    process.stderr.write(`round ${r + 1} ${mode}: ${x.cpuNs.toFixed(0)} ns CPU, ${x.wallNs.toFixed(0)} ns wall per request\n`);
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const summary = (mode: Mode, key: 'cpuNs' | 'wallNs') => {
  const xs = results[mode].map((x) => x[key]);
  return { median: Math.round(median(xs)), min: Math.round(Math.min(...xs)), max: Math.round(Math.max(...xs)) };
};
const added = (mode: Mode, than: Mode, key: 'cpuNs' | 'wallNs') => Math.round(median(results[mode].map((x) => x[key])) - median(results[than].map((x) => x[key])));
const out = {
  requests: REQUESTS,
  rounds: ROUNDS,
  ...Object.fromEntries(names.map((m) => [m, { cpuNs: summary(m, 'cpuNs'), wallNs: summary(m, 'wallNs') }])),
  // The layers (defaults) over none; each breaker over the defaults alone.
  addedCpuNs: added('on', 'off', 'cpuNs'),
  addedWallNs: added('on', 'off', 'wallNs'),
  breakerAddedCpuNs: Object.fromEntries((['breaker', 'breakerRate', 'opossumFire'] as const).map((m) => [m, added(m, 'on', 'cpuNs')])),
  breakerAddedWallNs: Object.fromEntries((['breaker', 'breakerRate', 'opossumFire'] as const).map((m) => [m, added(m, 'on', 'wallNs')])),
};
process.stdout.write(`${JSON.stringify(out)}\n`);
