// What the resilience layers cost per request when nothing trips: the outbound request
// pipeline's per-destination stack (default policy: one retry of never-reached requests,
// budget, grpc-timeout honoured) against the same pipeline with every layer off
// (retries.attempts 1, so the policy is inert and requests pass straight on), in one
// process, over an upstream call that answers at once, so only the layers are measured.
//
//   node bench/resilience-layers.ts [--requests 200000] [--rounds 11]
//
// Rounds alternate on / off; each prints CPU (user + system) and wall time per request.
// The median of each is reported with its spread. CPU time is counted only for this
// process, so it is less disturbed by other work on the machine than wall time.
import { parseArgs } from 'node:util';
import { Registry } from 'prom-client';
import { loadConfig } from '../src/config/load.ts';
import { origDst } from '../src/net/addresses.ts';
import { RequestAbort } from '../src/pipeline/abort.ts';
import { compose, type Handler } from '../src/pipeline/compose.ts';
import type { AcceptedConnection } from '../src/pipeline/connection.ts';
import type { ProxyRequest, ProxyResponse } from '../src/pipeline/exchange.ts';
import { faultLayer } from '../src/resilience/fault.ts';
import { destinationLimitLayer } from '../src/resilience/limits.ts';
import { retryLayer } from '../src/resilience/retry.ts';
import { ResilienceRuntime } from '../src/resilience/runtime.ts';
import { timeoutLayer } from '../src/resilience/timeout.ts';
import { createResilienceMetrics } from '../src/telemetry/resilience-metrics.ts';

const { values } = parseArgs({ options: { requests: { type: 'string', default: '200000' }, rounds: { type: 'string', default: '11' } } });
const REQUESTS = Number(values.requests);
const ROUNDS = Number(values.rounds);

const RESPONSE: ProxyResponse = { status: 200, headers: ['content-length', '0'], body: undefined, flag: '-' };
const upstream: Handler<ProxyRequest, ProxyResponse> = () => Promise.resolve(RESPONSE);

/** The outbound request pipeline's resilience part as src/proxy/outbound/stack.ts composes it. */
function pipeline(env: NodeJS.ProcessEnv): Handler<ProxyRequest, ProxyResponse> {
  const runtime = ResilienceRuntime.fromConfig(loadConfig({ env }), createResilienceMetrics(new Registry(), 'meshlet'));
  const { clock } = runtime;
  return compose([runtime.requestLayer('outbound', (t) => [faultLayer(t, clock), timeoutLayer(t, clock), destinationLimitLayer(t), retryLayer(t, clock)])], upstream);
}

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

const modes = { on: pipeline({}), off: pipeline({ MESHLET_RESILIENCE_DEFAULTS_RETRIES_ATTEMPTS: '1' }) };
// Warm-up: JIT both paths before anything is recorded.
for (const handler of Object.values(modes)) await round(handler);
const results: Record<keyof typeof modes, Array<{ cpuNs: number; wallNs: number }>> = { on: [], off: [] };
for (let r = 0; r < ROUNDS; r++) {
  for (const mode of (r % 2 === 0 ? ['on', 'off'] : ['off', 'on']) as Array<keyof typeof modes>) {
    const x = await round(modes[mode]);
    results[mode].push(x);
    process.stderr.write(`round ${r + 1} ${mode}: ${x.cpuNs.toFixed(0)} ns CPU, ${x.wallNs.toFixed(0)} ns wall per request\n`);
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const summary = (mode: keyof typeof modes, key: 'cpuNs' | 'wallNs') => {
  const xs = results[mode].map((x) => x[key]);
  return { median: Math.round(median(xs)), min: Math.round(Math.min(...xs)), max: Math.round(Math.max(...xs)) };
};
const out = {
  requests: REQUESTS,
  rounds: ROUNDS,
  on: { cpuNs: summary('on', 'cpuNs'), wallNs: summary('on', 'wallNs') },
  off: { cpuNs: summary('off', 'cpuNs'), wallNs: summary('off', 'wallNs') },
  addedCpuNs: Math.round(median(results.on.map((x) => x.cpuNs)) - median(results.off.map((x) => x.cpuNs))),
  addedWallNs: Math.round(median(results.on.map((x) => x.wallNs)) - median(results.off.map((x) => x.wallNs))),
};
process.stdout.write(`${JSON.stringify(out)}\n`);
