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
import { compose, type Handler, type Layer } from '../src/pipeline/compose.ts';
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
import { median, requestMaker, rotatingRounds, summary, timedRound } from './lib/in-process.ts';

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

const request = requestMaker(['accept', '*/*']);

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
const results = await rotatingRounds(names, ROUNDS, (mode) => timedRound(modes[mode], request, REQUESTS));
const added = (mode: Mode, than: Mode, key: 'cpuNs' | 'wallNs') => Math.round(median(results[mode].map((x) => x[key])) - median(results[than].map((x) => x[key])));
const out = {
  requests: REQUESTS,
  rounds: ROUNDS,
  ...Object.fromEntries(names.map((m) => [m, { cpuNs: summary(results[m], 'cpuNs'), wallNs: summary(results[m], 'wallNs') }])),
  // The layers (defaults) over none; each breaker over the defaults alone.
  addedCpuNs: added('on', 'off', 'cpuNs'),
  addedWallNs: added('on', 'off', 'wallNs'),
  breakerAddedCpuNs: Object.fromEntries((['breaker', 'breakerRate', 'opossumFire'] as const).map((m) => [m, added(m, 'on', 'cpuNs')])),
  breakerAddedWallNs: Object.fromEntries((['breaker', 'breakerRate', 'opossumFire'] as const).map((m) => [m, added(m, 'on', 'wallNs')])),
};
process.stdout.write(`${JSON.stringify(out)}\n`);
