// What the in-process layer benchmarks (bench/resilience-layers.ts, bench/telemetry-layers.ts)
// share: requests shaped as the codec makes them, a timed round, rounds that rotate the
// modes so none always runs first, and the median/min/max summary.
import { origDst } from '../../src/net/addresses.ts';
import { RequestAbort } from '../../src/pipeline/abort.ts';
import type { Handler } from '../../src/pipeline/compose.ts';
import type { AcceptedConnection } from '../../src/pipeline/connection.ts';
import type { ProxyRequest, ProxyResponse } from '../../src/pipeline/exchange.ts';

export interface RoundFigures {
  cpuNs: number;
  wallNs: number;
}

/**
 * A request object per call, as the codec makes one, on one of 16 client connections (the
 * L7 benchmark's HTTP/1.1 runs use 16), each a distinct object.
 */
export function requestMaker(headers: readonly string[], connection: (i: number) => Record<string, unknown> = () => ({})): (i: number) => ProxyRequest {
  const conns = Array.from({ length: 16 }, (_, i) => ({ id: i, direction: 'outbound', origDst: origDst('10.0.0.1', 8080), security: 'none', ...connection(i) }) as unknown as AcceptedConnection);
  return (i) => ({
    conn: conns[i & 15]!,
    protocol: 'http1',
    method: 'GET',
    authority: 'app:8080',
    path: '/',
    scheme: 'http',
    headers: [...headers],
    hostName: 'Host',
    body: undefined,
    grpc: false,
    abort: new RequestAbort(),
    onContinue: () => {},
  });
}

/** `requests` requests through `handler`, one at a time; CPU and wall time per request. `settle` runs inside the timed window. */
export async function timedRound(handler: Handler<ProxyRequest, ProxyResponse>, request: (i: number) => ProxyRequest, requests: number, settle?: () => Promise<void>): Promise<RoundFigures> {
  const cpu = process.cpuUsage();
  const start = process.hrtime.bigint();
  for (let i = 0; i < requests; i++) await handler(request(i));
  if (settle) await settle();
  const wall = Number(process.hrtime.bigint() - start);
  const used = process.cpuUsage(cpu);
  return { cpuNs: ((used.user + used.system) * 1000) / requests, wallNs: wall / requests };
}

/** One warm-up round of every mode, then `rounds` rounds, each starting at another mode; the figures by mode. */
export async function rotatingRounds<M extends string>(names: readonly M[], rounds: number, run: (mode: M) => Promise<RoundFigures>): Promise<Record<M, RoundFigures[]>> {
  for (const name of names) await run(name); // warm-up: JIT every path first
  const results = Object.fromEntries(names.map((n) => [n, [] as RoundFigures[]])) as Record<M, RoundFigures[]>;
  for (let r = 0; r < rounds; r++) {
    for (const mode of names.map((_, i) => names[(i + r) % names.length]!)) {
      const x = await run(mode);
      results[mode].push(x);
      process.stderr.write(`round ${r + 1} ${mode}: ${x.cpuNs.toFixed(0)} ns CPU, ${x.wallNs.toFixed(0)} ns wall per request\n`);
    }
  }
  return results;
}

export const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export function summary(xs: readonly RoundFigures[], key: keyof RoundFigures): { median: number; min: number; max: number } {
  const v = xs.map((x) => x[key]);
  return { median: Math.round(median(v)), min: Math.round(Math.min(...v)), max: Math.round(Math.max(...v)) };
}
