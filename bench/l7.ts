// L7 scenario: HTTP/1.1, HTTP/2 and gRPC requests between a client in pod a and an app in
// pod b, through the meshlet pair and through equivalent L7 proxy pairs, in one run:
//
//   direct      no proxies;
//   plaintext   meshlet in both pods (rules by `meshlet init`), no identities;
//   plaintext-off  the same with every resilience layer off (retries.attempts 1), to
//               measure what the default resilience policy costs when nothing trips;
//   telemetry-on   the plaintext pair with its request metrics and OpenTelemetry tracing
//               at a 1 % sampling ratio, exporting OTLP/HTTP protobuf to a sink on each
//               pod's loopback (bench/apps/otlp-sink.ts);
//   telemetry-off  the plaintext pair with request metrics off and no tracing: with
//               telemetry-on, what observability costs (the issue's limit: at most 5 % of
//               HTTP/1.1 requests/s and 0.05 ms at p50);
//   mtls        meshlet in both pods, mesh-wide strict mTLS (identities from `meshlet ca`);
//   nginx       nginx in both pods, the client addressing nginx a, which proxies to
//               nginx b, which proxies to the app (bench/lib/baselines.ts);
//   nginx-tls   the same with TLS 1.3 and client certificates between the two nginx;
//   haproxy     haproxy in both pods, the same way as nginx;
//   node        the Node.js floor pair (bench/apps/node-pair.ts), addressed like nginx:
//               the least a pair of Node.js proxies can do on meshlet's path — every
//               request a stream on one mTLS HTTP/2 session per protocol between the two,
//               with the nginx TLS pair's certificates — and none of meshlet's features
//               (interception, detection, SPIFFE checks, routing, metrics, logs). meshlet
//               is far slower than nginx; the floor, measured in the same run, tells how
//               much of that is the runtime (floor vs nginx TLS) and how much is meshlet
//               (meshlet mTLS vs floor). It is not a tuned ceiling for Node either.
//   node-raw    the Node.js ceiling pair (bench/apps/node-raw-pair.ts), addressed like
//               nginx, HTTP/1.1 only: the simplest Node pair that moves HTTP/1.1 on raw
//               sockets (heads split at CRLFCRLF, Content-Length bodies, pooled upstream
//               keep-alive sockets, plaintext), what the runtime itself can do on this
//               path; meshlet's HTTP/1.1 target is a share of it. It runs the h1 and
//               latency kinds; its HTTP/2 and gRPC cells read "–".
//
// Figures (h2load for the maximum rates, bench/apps/l7-load.ts for the fixed rate):
//
//   h1       HTTP/1.1 requests/s: h2load --h1, 16 connections, one request at a time each;
//   latency  HTTP/1.1 latency p50/p99 at a fixed 1000 requests/s, open loop (each request
//            timed from when it was due, so stalls are not hidden);
//   h2       HTTP/2 (cleartext, prior knowledge) requests/s: h2load, 4 connections × 16 streams;
//   grpc     gRPC requests/s: h2load posting one fixed gRPC message per request (unary
//            call on a @grpc/grpc-js server), 4 connections × 16 streams.
//
// Plus the CPU time of each proxy per request and its memory, and the data-path targets
// (design.md), each as measured / target, met or not. Each mode is its own
// testbed, built once and kept for the whole run; runs come in rounds of one run per mode
// in an order that rotates each round, after unrecorded warm-up runs of each kind and mode
// (for the request-rate kinds, until the rate stops rising). The same app process
// (bench/apps/l7-app.ts) serves every mode's requests in its own testbed.
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { run as runCommand } from '../src/testbed/exec.ts';
import { IdentityStore } from '../src/testbed/identities.ts';
import { APP_UID, type Pod, type SpawnedProcess } from '../src/testbed/netns.ts';
import { APP_PORTS, BACK_PORTS, FRONT_PORTS, hostPort, issueBaselineCerts, startBaselinePair, startNodePair, startNodeRawPair, type BaselineProxy, type Ports, type Protocol } from './lib/baselines.ts';
import { issueIdentities, mtlsEnv } from './lib/mesh.ts';
import { pinLoadGenerator, pinning, pinToPods, releaseLoadGenerator } from './lib/pinning.ts';
import { busyFraction, CpuMeter, descendants, irqFraction, rssBytes, RssSampler, systemCpu } from './lib/procfs.ts';
import { median, sig, signed, spread, type Spread } from './lib/stats.ts';
import { counterSum, createTopology, scrapeMetrics, startAppServer, type Topology } from './lib/topology.ts';
import type { BenchContext, Scenario, ScenarioResult, Table } from './scenario.ts';

const APPS = path.join(path.dirname(fileURLToPath(import.meta.url)), 'apps');
export const APP = path.join(APPS, 'l7-app.ts');
export const SINK = path.join(APPS, 'otlp-sink.ts');
export const SINK_PORT = 4318;
/**
 * The plaintext pair's variants: plaintext-off with every resilience layer off (one
 * attempt, nothing else configured), to measure what the default policy costs when nothing
 * trips; telemetry-on and -off, what metrics and tracing cost together.
 */
export const VARIANT_ENV: Partial<Record<Mode, () => NodeJS.ProcessEnv>> = {
  'plaintext-off': () => ({ MESHLET_RESILIENCE_DEFAULTS_RETRIES_ATTEMPTS: '1' }),
  'telemetry-on': () => ({
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${SINK_PORT}`,
    OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
    OTEL_TRACES_SAMPLER_ARG: '0.01',
  }),
  'telemetry-off': () => ({ MESHLET_METRICS_ENABLED: 'false' }),
};
const LOAD = path.join(APPS, 'l7-load.ts');
const GRPC_PATH = '/meshlet.bench.Bench/Call';

const MODES = ['direct', 'plaintext', 'plaintext-off', 'telemetry-on', 'telemetry-off', 'mtls', 'nginx', 'nginx-tls', 'haproxy', 'node', 'node-raw'] as const;
type Mode = (typeof MODES)[number];
const PROXIED = MODES.filter((m) => m !== 'direct');
const MESHLET = ['plaintext', 'mtls'] as const;
type Meshlet = (typeof MESHLET)[number];
const LABEL: Record<Mode, string> = {
  direct: 'direct',
  plaintext: 'meshlet plaintext pair',
  'plaintext-off': 'meshlet plaintext pair, resilience off',
  'telemetry-on': 'meshlet plaintext pair, metrics and tracing at 1 %',
  'telemetry-off': 'meshlet plaintext pair, metrics and tracing off',
  mtls: 'meshlet mTLS pair',
  nginx: 'nginx pair',
  'nginx-tls': 'nginx TLS pair',
  haproxy: 'haproxy pair',
  node: 'Node.js floor pair',
  'node-raw': 'Node.js ceiling pair',
};
const SHORT: Record<Mode, string> = { direct: 'direct', plaintext: 'meshlet', 'plaintext-off': 'meshlet, resilience off', 'telemetry-on': 'meshlet, telemetry on', 'telemetry-off': 'meshlet, telemetry off', mtls: 'meshlet mTLS', nginx: 'nginx', 'nginx-tls': 'nginx TLS', haproxy: 'haproxy', node: 'Node floor', 'node-raw': 'Node ceiling' };
const SECURITY: Record<Meshlet, string> = { plaintext: 'none', mtls: 'mutual_tls' };
/** Second octet of each testbed's addresses (the L4 scenario uses 44–46). */
const SUBNET: Record<Mode, number> = { direct: 50, plaintext: 51, 'plaintext-off': 58, 'telemetry-on': 59, 'telemetry-off': 60, mtls: 52, nginx: 53, 'nginx-tls': 54, haproxy: 55, node: 56, 'node-raw': 57 };

const KINDS = ['h1', 'latency', 'h2', 'grpc'] as const;
type Kind = (typeof KINDS)[number];
const RATE_KINDS = ['h1', 'h2', 'grpc'] as const;
type RateKind = (typeof RATE_KINDS)[number];
const KIND_LABEL: Record<Kind, string> = { h1: 'HTTP/1.1', latency: 'HTTP/1.1 at 1000/s', h2: 'HTTP/2', grpc: 'gRPC' };
/** Modes that carry HTTP/1.1 only: their HTTP/2 and gRPC kinds are not run. */
const HTTP1_ONLY: readonly Mode[] = ['node-raw'];
const measures = (mode: Mode, kind: Kind) => !HTTP1_ONLY.includes(mode) || kind === 'h1' || kind === 'latency';

/** Response body of the app (each protocol), and the gRPC request message. */
export const BODY_BYTES = 1024;

/** The scenario's app in `pod`, on APP_PORTS, answering BODY_BYTES. */
export function startL7App(pod: Pod): ReturnType<typeof startAppServer> {
  return startAppServer(pod, [APP, 'server', '--h1-port', String(APP_PORTS.h1), '--h2-port', String(APP_PORTS.h2), '--grpc-port', String(APP_PORTS.grpc), '--body', String(BODY_BYTES)]);
}
const GRPC_REQUEST_BYTES = 64;
/** h2load's connections and streams per connection. */
const LOAD_SHAPE: Record<RateKind, { conns: number; streams: number }> = { h1: { conns: 16, streams: 1 }, h2: { conns: 4, streams: 16 }, grpc: { conns: 4, streams: 16 } };
/** The fixed rate of the latency runs, and the keep-alive connections it is spread over. */
const FIXED_RATE = 1000;
const FIXED_RATE_CONNS = 16;
/**
 * The data-path targets (design.md, "The data path"), HTTP/1.1 keep-alive with a small
 * response unless named: requests/s ratios (at least), latency added over direct at
 * FIXED_RATE (µs, at most), both proxies' CPU per request at FIXED_RATE as a ratio (at most).
 */
const TARGET = {
  h1PlaintextVsNginx: 0.6,
  h1MtlsVsNginxTls: 0.5,
  h1PlaintextVsCeiling: 0.8,
  addedP50Us: 300,
  addedP99Us: 1500,
  cpuVsNginx: 1.6,
  h2GrpcMtlsVsNginxTls: 0.7,
} as const;
/** "Anything else" (machine busy − our processes) above this many cores marks a run as disturbed. */
const DISTURBED_CORES = 0.5;
const MiB = 2 ** 20;

/** CPU time / wall time of a run's window, per process (1 = one core busy), split user/kernel. */
type CpuShare = Record<string, { user: number; system: number }>;

interface LatencyFigures {
  requests: number;
  us: { min: number; p50: number; p90: number; p99: number; p999: number; max: number; mean: number };
  serviceUs: { p50: number; p99: number; max: number };
  latenessUs: { p50: number; p99: number; max: number };
  maxQueue: number;
  reconnects: number;
  achievedRate: number;
}

interface H2loadFigures {
  reqPerS: number;
  succeeded: number;
  total: number;
  failed: number;
  errored: number;
  timeout: number;
  status: Record<string, number>;
}

interface Run {
  /** Requests/s for the rate kinds; the p99 (µs) for latency runs. */
  value: number;
  /** Requests answered in the window. */
  requests: number;
  elapsedS: number;
  cpu: CpuShare;
  /** Fraction of all the machine's cores busy (and in irq/softirq) during the window. */
  machineBusy: number;
  machineIrq: number;
  h2load?: H2loadFigures;
  latency?: LatencyFigures;
}

export interface Side {
  mode: Mode;
  topology: Topology;
  appPid: number;
  /** The proxy processes (meshlet, nginx, haproxy or the Node.js floor), by pod. */
  proxies: Array<{ pod: string; pid: number }>;
  /** Where the client sends each protocol: b's address (direct, meshlet), or proxy a on a's loopback. */
  host: string;
  ports: Ports;
}

interface Durations {
  /** One h2load run (seconds). */
  rateS: number;
  /** The recorded part of one fixed-rate run, and its unrecorded start. */
  latencyS: number;
  latencyWarmupS: number;
}

/** Per run, and (shorter) for the unrecorded warm-up run of each kind and mode. */
const DURATIONS: Record<'quick' | 'full', { run: Durations; warmup: Durations }> = {
  quick: { run: { rateS: 1, latencyS: 1, latencyWarmupS: 0.25 }, warmup: { rateS: 0.5, latencyS: 0.5, latencyWarmupS: 0.25 } },
  // V8 takes 10 to 30 s of full load to finish optimising a meshlet pair, the longest with
  // tracing at 1 %, whose span and export code runs for one request in a hundred: in 10-s
  // chunks of HTTP/1.1 load, the telemetry-on pair ran 7 % below its steady rate from 10 to
  // 20 s and at it from 20 s on (the telemetry-off pair 9 % below, then at it). So 24 s of
  // warm-up per kind, then more runs until the rate stops rising (untilSteady), then the
  // interleaved runs. An 8-s warm-up (and 4 to 10 s more of untilSteady) measured the
  // telemetry-on pair while its span code was still being compiled.
  full: { run: { rateS: 2, latencyS: 4, latencyWarmupS: 1 }, warmup: { rateS: 24, latencyS: 1, latencyWarmupS: 0.5 } },
};

/** Warm-up after the first run, for the request-rate kinds: runs of one run's length until WARM_FLAT_RUNS in a row are no more than WARM_GAIN faster than the fastest before them, at most WARM_MAX_RUNS. */
const WARM_GAIN = 0.03;
const WARM_FLAT_RUNS = 2;
const WARM_MAX_RUNS = 12;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const url = (side: Side, p: Protocol) => `http://${hostPort(side.host, side.ports[p])}${p === 'grpc' ? GRPC_PATH : '/'}`;

function pidsOf(side: Side): Map<string, number> {
  const pids = new Map<string, number>([['app', side.appPid]]);
  for (const p of side.proxies) pids.set(`proxy-${p.pod}`, p.pid);
  return pids;
}

function proxyPids(side: Side): Map<string, number> {
  return new Map(side.proxies.map((p) => [p.pod, p.pid]));
}

/**
 * A client process's end. After `timeoutMs` it is killed with everything it started (the
 * shell's h2load would otherwise keep the pipes, and the run, open).
 */
async function closed(proc: SpawnedProcess, timeoutMs: number): Promise<void> {
  const timer = setTimeout(() => {
    for (const pid of [...descendants(proc.child.pid!), proc.child.pid!]) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }, timeoutMs);
  await new Promise((resolve) => (proc.child.exitCode !== null || proc.child.signalCode !== null ? resolve(null) : proc.child.once('close', resolve)));
  clearTimeout(timer);
}

/** `times` of the shell that ran h2load: its children's user and system seconds (last line). */
function childTimes(stderr: string): { user: number; system: number } | undefined {
  const lines = stderr.trim().split('\n');
  const m = /^(\d+)m([\d.]+)s (\d+)m([\d.]+)s$/.exec(lines.at(-1)?.trim() ?? '');
  return m ? { user: Number(m[1]) * 60 + Number(m[2]), system: Number(m[3]) * 60 + Number(m[4]) } : undefined;
}

export function parseH2load(stdout: string): H2loadFigures | undefined {
  const finished = /finished in [\d.]+\w*, ([\d.]+) req\/s/.exec(stdout);
  const req = /requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(stdout);
  const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(stdout);
  if (!finished || !req || !codes) return undefined;
  return {
    reqPerS: Number(finished[1]),
    total: Number(req[1]),
    succeeded: Number(req[2]),
    failed: Number(req[3]),
    errored: Number(req[4]),
    timeout: Number(req[5]),
    status: { '2xx': Number(codes[1]), '3xx': Number(codes[2]), '4xx': Number(codes[3]), '5xx': Number(codes[4]) },
  };
}

/**
 * One h2load run in pod a, as the app UID, with the side's processes metered from its
 * start to its end (h2load's own CPU from the shell's `times`).
 */
export async function h2loadRun(side: Side, kind: RateKind, seconds: number, grpcFrame: string, rss?: RssSampler): Promise<Run> {
  const { conns, streams } = LOAD_SHAPE[kind];
  const args = ['-t', '1', '-c', String(conns), '-m', String(streams), '-D', `${Math.round(seconds * 1000)}ms`];
  if (kind === 'h1') args.push('--h1');
  if (kind === 'grpc') args.push('-d', grpcFrame, '-H', 'content-type: application/grpc', '-H', 'te: trailers');
  // h2load's own Host for an IPv6 URL lacks the brackets, which nginx answers with 400.
  args.push('-H', `:authority: ${hostPort(side.host, side.ports[kind])}`);
  args.push(url(side, kind));
  const pids = pidsOf(side);
  rss?.start();
  const machineFrom = systemCpu();
  const meter = new CpuMeter(pids);
  const start = process.hrtime.bigint();
  const proc = side.topology.client.spawn(['sh', '-c', 'h2load "$@"; rc=$?; times >&2; exit $rc', 'h2load', ...args], { uid: APP_UID });
  try {
    await closed(proc, (seconds + 60) * 1000);
  } finally {
    rss?.stop();
  }
  const elapsedS = Number(process.hrtime.bigint() - start) / 1e9;
  const used = meter.read();
  const machineTo = systemCpu();
  const { stdout, stderr } = proc.output();
  const what = `${side.mode} ${kind} h2load`;
  if (proc.child.exitCode !== 0) throw new Error(`${what} exited ${proc.child.exitCode ?? proc.child.signalCode}: ${stderr.trim() || stdout.trim()}`);
  const figures = parseH2load(stdout);
  if (!figures) throw new Error(`${what}: unreadable output: ${stdout.trim()}`);
  const bad = figures.failed + figures.errored + figures.timeout + figures.status['3xx']! + figures.status['4xx']! + figures.status['5xx']!;
  if (bad > 0 || figures.succeeded === 0) throw new Error(`${what}: ${figures.succeeded} requests succeeded, ${JSON.stringify(figures)}: ${stdout.trim()}`);
  const cpu: CpuShare = {};
  const client = childTimes(stderr);
  cpu.client = client ? { user: client.user / elapsedS, system: client.system / elapsedS } : { user: Number.NaN, system: Number.NaN };
  for (const [name, t] of used) cpu[name] = { user: t.user / elapsedS, system: t.system / elapsedS };
  return {
    value: figures.reqPerS,
    requests: figures.succeeded,
    elapsedS,
    cpu,
    machineBusy: busyFraction(machineFrom, machineTo),
    machineIrq: irqFraction(machineFrom, machineTo),
    h2load: figures,
  };
}

/**
 * One fixed-rate run (bench/apps/l7-load.ts) in pod a, as the app UID: the other
 * processes are metered from when the client announces its recorded window.
 */
async function latencyRun(side: Side, d: Durations, rss?: RssSampler): Promise<Run> {
  const pids = pidsOf(side);
  let meter = new CpuMeter(pids);
  rss?.start();
  const proc = side.topology.client.node(
    [
      LOAD, 'rate', '--host', side.host, '--port', String(side.ports.h1), '--rate', String(FIXED_RATE), '--conns', String(FIXED_RATE_CONNS),
      '--seconds', String(d.latencyS), '--warmup-seconds', String(d.latencyWarmupS), '--timeout', String((d.latencyS + d.latencyWarmupS + 60) * 1000),
    ],
    { uid: APP_UID },
  );
  proc.waitForLine(/"measuring":true/, 120_000).then(() => (meter = new CpuMeter(pids)), () => {});
  try {
    await closed(proc, (d.latencyS + d.latencyWarmupS + 90) * 1000);
  } finally {
    rss?.stop();
  }
  const used = meter.read();
  const { stdout, stderr } = proc.output();
  const line = stdout.trim().split('\n').at(-1) ?? '';
  let out: LatencyFigures & { ok: boolean; error?: string; elapsedNs: number; cpu: { userUs: number; systemUs: number; machineBusy: number; machineIrq: number } };
  try {
    out = JSON.parse(line) as typeof out;
  } catch {
    throw new Error(`${side.mode} latency client printed no result (exit ${proc.child.exitCode ?? proc.child.signalCode}): ${stderr.trim() || stdout.trim()}`);
  }
  if (!out.ok || proc.child.exitCode !== 0) throw new Error(`${side.mode} latency client failed: ${out.error ?? `exit ${proc.child.exitCode}`}`);
  const elapsedS = out.elapsedNs / 1e9;
  const cpu: CpuShare = { client: { user: out.cpu.userUs / 1e6 / elapsedS, system: out.cpu.systemUs / 1e6 / elapsedS } };
  for (const [name, t] of used) cpu[name] = { user: t.user / elapsedS, system: t.system / elapsedS };
  const { requests, us, serviceUs, latenessUs, maxQueue, reconnects, achievedRate } = out;
  return {
    value: us.p99,
    requests,
    elapsedS,
    cpu,
    machineBusy: out.cpu.machineBusy,
    machineIrq: out.cpu.machineIrq,
    latency: { requests, us, serviceUs, latenessUs, maxQueue, reconnects, achievedRate },
  };
}

/**
 * The whole path works for each protocol before anything is measured: one HTTP/1.1 and
 * one HTTP/2 request with curl (status, body size, protocol), one gRPC call with a real
 * gRPC client (status OK in the trailers, the message). Retried while the proxies start.
 */
export async function preflight(side: Side, baselineProcesses: SpawnedProcess[]): Promise<void> {
  const pod = side.topology.client;
  const checks: Array<{ what: string; kind: RateKind; argv: string[]; expect: (stdout: string) => boolean }> = [
    {
      what: 'HTTP/1.1',
      kind: 'h1',
      argv: ['curl', '-sS', '-g', '--max-time', '5', '-o', '/dev/null', '-w', '%{http_code} %{size_download} %{http_version}', url(side, 'h1')],
      expect: (s) => s.trim() === `200 ${BODY_BYTES} 1.1`,
    },
    {
      what: 'HTTP/2',
      kind: 'h2',
      argv: ['curl', '-sS', '-g', '--http2-prior-knowledge', '--max-time', '5', '-o', '/dev/null', '-w', '%{http_code} %{size_download} %{http_version}', url(side, 'h2')],
      expect: (s) => s.trim() === `200 ${BODY_BYTES} 2`,
    },
    {
      what: 'gRPC',
      kind: 'grpc',
      argv: [process.execPath, APP, 'grpc-check', '--host', side.host, '--port', String(side.ports.grpc), '--body', String(BODY_BYTES), '--timeout', '5000'],
      expect: (s) => s.includes('"ok":true'),
    },
  ];
  for (const check of checks.filter((c) => measures(side.mode, c.kind))) {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const r = await pod.run(check.argv, { uid: APP_UID, timeoutMs: 20_000 });
      if (r.code === 0 && check.expect(r.stdout)) break;
      const dead = baselineProcesses.find((p) => p.child.exitCode !== null || p.child.signalCode !== null);
      if (dead || Date.now() > deadline) {
        const why = dead ? `; a proxy exited: ${dead.output().stderr.trim()}` : '';
        throw new Error(`${LABEL[side.mode]}: ${check.what} check against ${url(side, check.kind)} failed: ${(r.stdout + r.stderr).trim()}${why}`);
      }
      await sleep(200);
    }
  }
}

/** The versions of nginx, haproxy and h2load; fails when one is missing. */
async function toolVersions(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const probes: Record<string, string[]> = { nginx: ['-v'], haproxy: ['-v'], h2load: ['--version'] };
  for (const [tool, args] of Object.entries(probes)) {
    const file = ['/usr/sbin', '/usr/bin', '/usr/local/sbin', '/usr/local/bin'].map((dir) => path.join(dir, tool)).find((f) => existsSync(f));
    if (!file) throw new Error(`the l7 scenario needs ${tool}: run \`bash bench/setup.sh\` (npm run bench does) or apt-get install nginx haproxy nghttp2-client`);
    const r = await runCommand([file, ...args], { timeoutMs: 10_000 });
    const text = `${r.stdout}${r.stderr}`;
    out[tool] = /(?:nginx\/|HAProxy version |nghttp2\/)([\w.+~-]+)/.exec(text)?.[1] ?? 'unknown';
  }
  return out;
}

/** The modes in round `round` (0-based): the list rotated by the round number. */
function roundOrder(round: number): Mode[] {
  const k = round % MODES.length;
  return [...MODES.slice(k), ...MODES.slice(0, k)];
}

/** Samples of a metric, by label set, from a Prometheus exposition. */
function samples(exposition: string, name: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of exposition.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (m && m[1] === name) out[m[2] ?? '{}'] = (out[m[2] ?? '{}'] ?? 0) + Number(m[3]);
  }
  return out;
}

/** Counters about requests (any meshlet_*request*_total), summed per metric name. */
function requestCounters(exposition: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of exposition.split('\n')) {
    const m = /^(meshlet_[a-zA-Z0-9_]*request[a-zA-Z0-9_]*_total)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (m) out[m[1]!] = (out[m[1]!] ?? 0) + Number(m[3]);
  }
  return out;
}

const mib = (bytes: number | undefined) => (bytes === undefined || !Number.isFinite(bytes) ? 'n/a' : sig(bytes / MiB, 3));
const pct = (share: number | undefined) => (share === undefined || !Number.isFinite(share) ? '–' : `${Math.round(share * 100)} %`);
const times = (ratio: number) => (Number.isFinite(ratio) ? `×${ratio.toFixed(2)}` : 'n/a');
const metOrNot = (ok: boolean) => (ok ? 'met' : 'not met');

/**
 * The report of a run of some modes only (--l7-modes): each mode's figures and, for each
 * pair of them, the ratios and differences; the targets and the comparisons with modes
 * that did not run are left out.
 */
function subsetResult(scenario: Scenario, modes: readonly Mode[], runs: Record<Kind, Record<Mode, Run[]>>, n: number, pinned: boolean): ScenarioResult {
  const fig = (k: Kind, m: Mode) => spread(runs[k][m].map((r) => (k === 'latency' ? r.latency!.us.p50 : r.value)));
  const p99 = (m: Mode) => spread(runs.latency[m].map((r) => r.latency!.us.p99));
  const cpu = (k: Kind, m: Mode) =>
    median(runs[k][m].map((r) => (Object.entries(r.cpu).filter(([name]) => name.startsWith('proxy-')).reduce((sum, [, c]) => sum + (c.user + c.system) * r.elapsedS, 0) / r.requests) * 1e6));
  const range = (sp: Spread) => (sp.runs.length === 0 ? '–' : `${sig(sp.median)} (${sig(sp.min)}–${sig(sp.max)})`);
  const pairs = modes.flatMap((a, i) => modes.slice(i + 1).map((b) => [a, b] as const));
  const summary: Record<string, number> = {};
  for (const m of modes) {
    for (const k of RATE_KINDS) summary[`${k}ReqPerS_${m}`] = fig(k, m).median;
    summary[`latencyP50Us_${m}`] = fig('latency', m).median;
    summary[`latencyP99Us_${m}`] = p99(m).median;
    for (const k of KINDS) summary[`proxyCpuUsPerRequest_${k}_${m}`] = cpu(k, m);
  }
  return {
    name: scenario.name,
    title: `${scenario.title} (modes ${modes.join(', ')} only)`,
    summary,
    tables: [
      {
        title: `Median of ${n} run${n === 1 ? '' : 's'} (min–max); ${BODY_BYTES}-byte responses`,
        headers: ['figure', ...modes.map((m) => LABEL[m])],
        rows: [
          ['HTTP/1.1 requests/s', ...modes.map((m) => range(fig('h1', m)))],
          [`HTTP/1.1 latency p50 at ${FIXED_RATE} requests/s (µs)`, ...modes.map((m) => range(fig('latency', m)))],
          [`HTTP/1.1 latency p99 at ${FIXED_RATE} requests/s (µs)`, ...modes.map((m) => range(p99(m)))],
          ['HTTP/2 requests/s', ...modes.map((m) => range(fig('h2', m)))],
          ['gRPC requests/s', ...modes.map((m) => range(fig('grpc', m)))],
          ...KINDS.map((k) => [`proxy CPU µs per request, ${KIND_LABEL[k]}`, ...modes.map((m) => (m === 'direct' ? '–' : sig(cpu(k, m))))]),
        ],
      },
      {
        title: 'Each pair: requests/s ratio; latency difference',
        headers: ['figure', ...pairs.map(([a, b]) => `${SHORT[a]} vs ${SHORT[b]}`)],
        rows: [
          ...RATE_KINDS.map((k) => [`${KIND_LABEL[k]} requests/s`, ...pairs.map(([a, b]) => times(fig(k, a).median / fig(k, b).median))]),
          [`latency p50 at ${FIXED_RATE}/s`, ...pairs.map(([a, b]) => signed(fig('latency', a).median - fig('latency', b).median, 'µs'))],
          [`latency p99 at ${FIXED_RATE}/s`, ...pairs.map(([a, b]) => signed(p99(a).median - p99(b).median, 'µs'))],
        ],
      },
    ],
    notes: [`A run of some modes only (--l7-modes): no targets, no comparison with the modes that did not run. The method is the full run's (see a full report); CPU placement: ${pinned ? 'load generator and pods on separate cores' : 'none (--unpinned)'}.`],
    data: { modes, runs },
  };
}

export const l7Scenario: Scenario = {
  name: 'l7',
  title: 'L7: HTTP/1.1, HTTP/2 and gRPC, direct vs the meshlet pair (plaintext, mTLS) vs nginx and haproxy pairs and Node.js floor and ceiling pairs',

  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const o = ctx.options;
    const { run: d, warmup: dWarm } = DURATIONS[o.quick ? 'quick' : 'full'];
    const versions = await toolVersions();
    const sides = new Map<Mode, Side>();
    const built: Topology[] = [];
    // h2load and the latency client on one core, each mode's pods on the other (bench/lib/pinning.ts).
    const pin = o.pinned ? pinning() : undefined;
    if (pin) pinLoadGenerator(pin);
    const baselineProcesses: SpawnedProcess[] = [];
    const store = new IdentityStore();
    // Generated configs, the gRPC request file and the baselines' certificates: a
    // temporary directory, never the repository; removed at the end (or at exit).
    const work = mkdtempSync(path.join(os.tmpdir(), 'meshlet-bench-l7-'));
    chmodSync(work, 0o755);
    const removeWork = () => rmSync(work, { recursive: true, force: true });
    process.once('exit', removeWork);
    try {
      const grpcFrame = path.join(work, 'grpc-request.bin');
      const frame = Buffer.alloc(5 + GRPC_REQUEST_BYTES, 0x61);
      frame.writeUInt8(0, 0); // not compressed
      frame.writeUInt32BE(GRPC_REQUEST_BYTES, 1);
      writeFileSync(grpcFrame, frame, { mode: 0o644 });

      ctx.log('l7: issuing identities with `meshlet ca` (ECDSA P-256)');
      const ids = await issueIdentities(store);
      const baselineTls = await issueBaselineCerts(ids.caDir, path.join(work, 'certs'), { client: ids.client.spiffeId, server: ids.server.spiffeId });

      // --l7-modes: only some modes, for a short comparison (a reduced report, no targets).
      const selected = o.l7Modes === undefined ? MODES : MODES.filter((m) => o.l7Modes!.includes(m));
      const unknown = (o.l7Modes ?? []).filter((m) => !(MODES as readonly string[]).includes(m));
      if (unknown.length > 0) throw new Error(`--l7-modes: no mode ${unknown.join(', ')} (have: ${MODES.join(', ')})`);
      for (const mode of selected) {
        ctx.log(`l7: building the ${mode} pods`);
        const sinkPids: number[] = [];
        const subnet = SUBNET[mode];
        const plaintextVariant = mode === 'plaintext-off' || mode === 'telemetry-on' || mode === 'telemetry-off';
        const meshlet = mode === 'plaintext' || mode === 'mtls' || plaintextVariant;
        const proxyEnv = mode === 'mtls' ? mtlsEnv(ids, subnet) : VARIANT_ENV[mode];
        const topology = await createTopology(plaintextVariant ? 'plaintext' : meshlet ? mode : 'direct', { subnet, proxyEnv });
        built.push(topology);
        if (mode === 'telemetry-on') {
          // The collector each sidecar exports to, on its pod's loopback (the proxy's own
          // connections are not intercepted), answering every export and keeping nothing.
          for (const pod of [topology.client, topology.server]) {
            const sink = await startAppServer(pod, [SINK, '--port', String(SINK_PORT)]);
            baselineProcesses.push(sink.process);
            sinkPids.push(sink.pid);
          }
        }
        const server = await startL7App(topology.server);
        const serverHost = o.family === 4 ? topology.server.ipv4 : topology.server.ipv6;
        let side: Side;
        if (mode === 'nginx' || mode === 'nginx-tls' || mode === 'haproxy' || mode === 'node' || mode === 'node-raw') {
          const loopback = o.family === 4 ? '127.0.0.1' : '::1';
          const pods = { a: topology.client, b: topology.server };
          const at = { loopback, server: serverHost };
          const proxies: BaselineProxy[] =
            mode === 'node'
              ? await startNodePair(pods, at, baselineTls)
              : mode === 'node-raw'
                ? await startNodeRawPair(pods, at)
                : await startBaselinePair(mode === 'haproxy' ? 'haproxy' : 'nginx', pods, at, work, mode === 'nginx-tls' ? baselineTls : undefined);
          baselineProcesses.push(...proxies.map((p) => p.process));
          side = { mode, topology, appPid: server.pid, proxies: proxies.map((p) => ({ pod: p.pod, pid: p.pid })), host: loopback, ports: FRONT_PORTS };
        } else {
          side = { mode, topology, appPid: server.pid, proxies: topology.proxies.map((p) => ({ pod: p.pod, pid: p.pid })), host: serverHost, ports: APP_PORTS };
        }
        if (pin) pinToPods(pin, [side.appPid, ...side.proxies.map((p) => p.pid), ...sinkPids]);
        await preflight(side, baselineProcesses);
        sides.set(mode, side);
      }
      const side = (mode: Mode) => sides.get(mode)!;
      // Let start-up allocation settle before calling the proxies idle.
      await sleep(1000);
      const rssIdle = Object.fromEntries(PROXIED.filter((m) => selected.includes(m)).map((m) => [m, Object.fromEntries(side(m).proxies.map((p) => [p.pod, rssBytes(p.pid) ?? Number.NaN]))])) as Record<Mode, Record<string, number>>;

      const runOnce = (kind: Kind, mode: Mode, rss?: RssSampler, durations = d) =>
        kind === 'latency' ? latencyRun(side(mode), durations, rss) : h2loadRun(side(mode), kind, durations.rateS, grpcFrame, rss);
      const describe = (kind: Kind, r: Run) =>
        kind === 'latency' ? `p50 ${sig(r.latency!.us.p50)} µs, p99 ${sig(r.latency!.us.p99)} µs` : `${sig(r.value)} req/s`;

      const runs = Object.fromEntries(KINDS.map((k) => [k, Object.fromEntries(MODES.map((m) => [m, [] as Run[]]))])) as Record<Kind, Record<Mode, Run[]>>;
      // A meshlet pair is still being optimised by V8 after the first warm-up run (its runs
      // rose from about 5 500 to 8 500 requests/s over a report's nine rounds): each mode
      // gets more unrecorded runs until it stops getting faster, so that the medians are
      // of the steady state a sidecar lives in. The same rule for every mode.
      const warmRuns = Object.fromEntries(KINDS.map((k) => [k, {} as Record<Mode, number>])) as Record<Kind, Record<Mode, number>>;
      const untilSteady = async (kind: Kind, mode: Mode, firstValue: number): Promise<number> => {
        let best = firstValue;
        let flat = 0;
        let extra = 0;
        while (flat < WARM_FLAT_RUNS && extra < WARM_MAX_RUNS) {
          const value = (await runOnce(kind, mode)).value;
          extra++;
          if (value > best * (1 + WARM_GAIN)) flat = 0;
          else flat++;
          best = Math.max(best, value);
        }
        ctx.log(`l7: ${kind} warm-up ${mode}: ${extra} more runs, best ${sig(best)} req/s`);
        return extra;
      };
      const rssMax = Object.fromEntries(KINDS.map((k) => [k, Object.fromEntries(PROXIED.map((m) => [m, {} as Record<string, number>]))])) as Record<Kind, Record<Mode, Record<string, number>>>;
      for (const kind of KINDS) {
        // Each kind's warm-up just before its runs, in the order of KINDS: a proxy's memory
        // under HTTP/1.1 load is then measured before any HTTP/2 or gRPC load (under which V8
        // lets the old generation grow to about four times what is live, and keeps the pages).
        ctx.log(`l7: ${kind} warm-up (not recorded)`);
        for (const mode of selected.filter((m) => measures(m, kind))) {
          const first = await runOnce(kind, mode, undefined, dWarm);
          if (kind !== 'latency' && !o.quick) warmRuns[kind][mode] = await untilSteady(kind, mode, first.value);
        }
        for (let round = 0; round < o.runs; round++) {
          await ctx.settle();
          for (const mode of roundOrder(round).filter((m) => measures(m, kind) && selected.includes(m))) {
            const sampler = mode === 'direct' ? undefined : new RssSampler(proxyPids(side(mode)));
            const run = await runOnce(kind, mode, sampler);
            if (sampler) for (const [pod, v] of sampler.stop()) rssMax[kind][mode][pod] = Math.max(rssMax[kind][mode][pod] ?? 0, v);
            runs[kind][mode].push(run);
            ctx.log(`l7: ${kind} run ${round + 1}/${o.runs} ${mode}: ${describe(kind, run)} (machine ${pct(run.machineBusy)} busy)`);
          }
        }
      }
      const rssAfter = Object.fromEntries(PROXIED.filter((m) => selected.includes(m)).map((m) => [m, Object.fromEntries(side(m).proxies.map((p) => [p.pod, rssBytes(p.pid) ?? Number.NaN]))])) as Record<Mode, Record<string, number>>;
      if (selected.length < MODES.length) return subsetResult(this, selected, runs, o.runs, pin !== undefined);

      // Proof that the meshlet figures went through both sidecars, with the right security,
      // and what the sidecars made of the traffic (protocol detection, request counters).
      const verification = {} as Record<Meshlet, Record<string, unknown>>;
      for (const mode of MESHLET) {
        const a = await scrapeMetrics(side(mode).topology.client);
        const b = await scrapeMetrics(side(mode).topology.server);
        const security = SECURITY[mode];
        const v = {
          securityPolicy: security,
          outboundConnections: counterSum(a, 'meshlet_tcp_connections_opened_total', { reporter: 'source', connection_security_policy: security }),
          inboundConnections: counterSum(b, 'meshlet_tcp_connections_opened_total', { reporter: 'destination', connection_security_policy: security }),
          refusedA: counterSum(a, 'meshlet_proxy_connections_refused_total'),
          refusedB: counterSum(b, 'meshlet_proxy_connections_refused_total'),
          detectionsA: samples(a, 'meshlet_proxy_protocol_detections_total'),
          detectionsB: samples(b, 'meshlet_proxy_protocol_detections_total'),
          requestCountersA: requestCounters(a),
          requestCountersB: requestCounters(b),
        };
        verification[mode] = v;
        if (!(v.outboundConnections > 0 && v.inboundConnections > 0)) {
          throw new Error(`the ${mode} traffic did not go through both sidecars as ${security}: ${JSON.stringify(v)}`);
        }
      }
      /** "http 40, http2 12" from detection counters of one direction, or undefined without any. */
      const detected = (d: Record<string, number>) => {
        const byProtocol: Record<string, number> = {};
        for (const [labels, n] of Object.entries(d)) {
          const p = /protocol="([^"]*)"/.exec(labels)?.[1] ?? '?';
          byProtocol[p] = (byProtocol[p] ?? 0) + n;
        }
        const parts = Object.entries(byProtocol).filter(([, n]) => n > 0).map(([p, n]) => `${p} ${n}`);
        return parts.length > 0 ? parts.join(', ') : undefined;
      };
      const pathNote = (mode: Meshlet) => {
        const v = verification[mode] as { detectionsA: Record<string, number>; detectionsB: Record<string, number>; requestCountersA: Record<string, number>; requestCountersB: Record<string, number>; outboundConnections: number; inboundConnections: number };
        const da = detected(v.detectionsA);
        const db = detected(v.detectionsB);
        const reqs = Object.entries({ ...v.requestCountersA }).map(([n, c]) => `${n} ${c} on a`).concat(Object.entries(v.requestCountersB).map(([n, c]) => `${n} ${c} on b`));
        return (
          `${LABEL[mode]}: ${v.outboundConnections} outbound / ${v.inboundConnections} inbound connections as "${SECURITY[mode]}"; ` +
          (da || db ? `protocol detected per connection (meshlet_proxy_protocol_detections_total): outbound ${da ?? 'none counted'}; inbound ${db ?? 'none counted'}` : 'no protocol-detection counters: the sidecars forwarded opaque TCP (L4), not HTTP') +
          (reqs.length > 0 ? `; request counters: ${reqs.join(', ')}` : '')
        );
      };

      // ---- figures
      const byMode = <T>(f: (m: Mode) => T) => Object.fromEntries(MODES.map((m) => [m, f(m)])) as Record<Mode, T>;
      const rate = Object.fromEntries(RATE_KINDS.map((k) => [k, byMode((m) => spread(runs[k][m].map((r) => r.value)))])) as Record<RateKind, Record<Mode, Spread>>;
      const p50 = byMode((m) => spread(runs.latency[m].map((r) => r.latency!.us.p50)));
      const p99 = byMode((m) => spread(runs.latency[m].map((r) => r.latency!.us.p99)));
      const svc99 = byMode((m) => spread(runs.latency[m].map((r) => r.latency!.serviceUs.p99)));
      const late99 = byMode((m) => spread(runs.latency[m].map((r) => r.latency!.latenessUs.p99)));
      const ratio = (s: Record<Mode, Spread>, a: Mode, b: Mode) => s[a].median / s[b].median;
      const added = (s: Record<Mode, Spread>, a: Mode, b: Mode) => s[a].median - s[b].median;
      /** A figure a mode does not measure (HTTP1_ONLY) reads "–". */
      const NOT_RUN = '–';
      const range = (s: Spread, digits = 3) => (s.runs.length === 0 ? NOT_RUN : `${sig(s.median, digits)} (${sig(s.min, digits)}–${sig(s.max, digits)})`);
      const rateCell = (k: RateKind, a: Mode, b: Mode) => (measures(a, k) && measures(b, k) ? times(ratio(rate[k], a, b)) : NOT_RUN);

      const cores = ctx.machine.cores;
      const ours = (r: Run) => Object.values(r.cpu).reduce((sum, c) => sum + (Number.isFinite(c.user) ? c.user + c.system : 0), 0);
      const otherOf = (r: Run) => Math.max(0, r.machineBusy * cores - ours(r));
      const disturbed = (r: Run) => otherOf(r) > DISTURBED_CORES;
      const mark = (r: Run) => (disturbed(r) ? '‡' : '');
      const shareMedian = (rs: Run[], name: string) => median(rs.map((r) => (r.cpu[name] ? r.cpu[name].user + r.cpu[name].system : Number.NaN)));
      /** CPU seconds of one process over a run's window, median over runs. */
      const secondsMedian = (rs: Run[], name: string) => median(rs.map((r) => (r.cpu[name] ? (r.cpu[name].user + r.cpu[name].system) * r.elapsedS : Number.NaN)));
      /** CPU µs per request of the named processes, median over runs. */
      const cpuPerRequest = (rs: Run[], names: (n: string) => boolean) =>
        median(rs.map((r) => (Object.entries(r.cpu).filter(([n]) => names(n)).reduce((sum, [, c]) => sum + (c.user + c.system) * r.elapsedS, 0) / r.requests) * 1e6));
      const proxiesOnly = (n: string) => n.startsWith('proxy-');
      const perRequest = Object.fromEntries(KINDS.map((k) => [k, {
        proxies: byMode((m) => (m === 'direct' ? Number.NaN : cpuPerRequest(runs[k][m], proxiesOnly))),
        app: byMode((m) => cpuPerRequest(runs[k][m], (n) => n === 'app')),
        all: byMode((m) => cpuPerRequest(runs[k][m], () => true)),
      }])) as Record<Kind, { proxies: Record<Mode, number>; app: Record<Mode, number>; all: Record<Mode, number> }>;

      const rateRow = (k: RateKind) => {
        const { conns, streams } = LOAD_SHAPE[k];
        return `${KIND_LABEL[k]} requests/s (${conns} conn × ${streams} stream${streams === 1 ? '' : 's'})`;
      };
      const mainTable: Table = {
        title: `Median of ${o.runs} run${o.runs === 1 ? '' : 's'} (min–max); ${BODY_BYTES}-byte responses`,
        headers: ['figure', ...MODES.map((m) => LABEL[m])],
        rows: [
          [rateRow('h1'), ...MODES.map((m) => range(rate.h1[m]))],
          [`HTTP/1.1 latency p50 at ${FIXED_RATE} requests/s (µs)`, ...MODES.map((m) => range(p50[m]))],
          [`HTTP/1.1 latency p99 at ${FIXED_RATE} requests/s (µs)`, ...MODES.map((m) => range(p99[m]))],
          [rateRow('h2'), ...MODES.map((m) => range(rate.h2[m]))],
          [rateRow('grpc'), ...MODES.map((m) => range(rate.grpc[m]))],
        ],
      };
      const latencyCell = (s: Record<Mode, Spread>, a: Mode, b: Mode) => `${signed(added(s, a, b), 'µs')} (${times(ratio(s, a, b))})`;
      const vsDirectTable: Table = {
        title: 'Each pair vs direct: requests/s ratio; latency added (ratio)',
        headers: ['figure', ...PROXIED.map((m) => SHORT[m])],
        rows: [
          [`${KIND_LABEL.h1} requests/s`, ...PROXIED.map((m) => rateCell('h1', m, 'direct'))],
          [`latency p50 at ${FIXED_RATE}/s`, ...PROXIED.map((m) => latencyCell(p50, m, 'direct'))],
          [`latency p99 at ${FIXED_RATE}/s`, ...PROXIED.map((m) => latencyCell(p99, m, 'direct'))],
          [`${KIND_LABEL.h2} requests/s`, ...PROXIED.map((m) => rateCell('h2', m, 'direct'))],
          [`${KIND_LABEL.grpc} requests/s`, ...PROXIED.map((m) => rateCell('grpc', m, 'direct'))],
        ],
      };
      // mTLS vs floor and floor vs nginx TLS split mTLS vs nginx TLS into meshlet's part and
      // the runtime's; the last two set meshlet against what the runtime can do at all.
      const comparisons: Array<[Mode, Mode]> = [
        ['plaintext', 'plaintext-off'], ['telemetry-on', 'telemetry-off'], ['plaintext', 'nginx'], ['plaintext', 'haproxy'], ['mtls', 'nginx-tls'], ['mtls', 'nginx'], ['mtls', 'haproxy'], ['mtls', 'node'], ['node', 'nginx-tls'],
        ['plaintext', 'node-raw'], ['node-raw', 'nginx'],
      ];
      const vsBaselineTable: Table = {
        title:
          'meshlet vs the equivalent L7 proxy pairs and the Node.js floor and ceiling, the floor vs nginx TLS and the ceiling vs nginx: requests/s ratio; latency difference (ratio)',
        headers: ['figure', ...comparisons.map(([a, b]) => `${SHORT[a]} vs ${SHORT[b]}`)],
        rows: [
          [`${KIND_LABEL.h1} requests/s`, ...comparisons.map(([a, b]) => rateCell('h1', a, b))],
          [`latency p50 at ${FIXED_RATE}/s`, ...comparisons.map(([a, b]) => latencyCell(p50, a, b))],
          [`latency p99 at ${FIXED_RATE}/s`, ...comparisons.map(([a, b]) => latencyCell(p99, a, b))],
          [`${KIND_LABEL.h2} requests/s`, ...comparisons.map(([a, b]) => rateCell('h2', a, b))],
          [`${KIND_LABEL.grpc} requests/s`, ...comparisons.map(([a, b]) => rateCell('grpc', a, b))],
        ],
      };
      const cpuCostTable: Table = {
        title: 'CPU µs per request (median over runs): both proxies together, and the app; less sensitive than the rates to other work on the machine',
        headers: ['runs', ...PROXIED.map((m) => `${SHORT[m]}: proxies`), 'app (direct)'],
        rows: KINDS.map((k) => [KIND_LABEL[k], ...PROXIED.map((m) => (measures(m, k) ? sig(perRequest[k].proxies[m]) : NOT_RUN)), sig(perRequest[k].app.direct)]),
      };
      const proxyTable: Table = {
        title: `Proxy processes: VmRSS (MiB) idle and at most during each kind of run; CPU seconds over one run's window (${d.rateS} s for the request-rate runs, ${d.latencyS} s for the fixed-rate ones) and as a share of one core (median over runs)`,
        headers: ['proxy', 'RSS idle', ...KINDS.map((k) => `RSS max, ${KIND_LABEL[k]}`), 'RSS after runs', ...KINDS.map((k) => `CPU s (share), ${KIND_LABEL[k]}`)],
        rows: PROXIED.flatMap((m) =>
          side(m).proxies.map((p) => [
            `${LABEL[m]}: ${p.pod === 'a' ? 'a (client side)' : 'b (server side)'}`,
            mib(rssIdle[m][p.pod]),
            ...KINDS.map((k) => (measures(m, k) ? mib(rssMax[k][m][p.pod]) : NOT_RUN)),
            mib(rssAfter[m][p.pod]),
            ...KINDS.map((k) => (measures(m, k) ? `${sig(secondsMedian(runs[k][m], `proxy-${p.pod}`), 2)} s (${pct(shareMedian(runs[k][m], `proxy-${p.pod}`))})` : NOT_RUN)),
          ]),
        ),
      };
      const cpuTable: Table = {
        title:
          `Where the CPU goes (share of one core, median over runs). Machine busy: share of all ${cores} cores, from /proc/stat's tick samples, which miss much of a light periodic load ` +
          '(the fixed-rate runs): there "anything else" reads low',
        headers: ['runs', 'client', 'proxy a', 'proxy b', 'app', 'irq+softirq (any task)', 'anything else', 'machine busy'],
        rows: KINDS.flatMap((k) =>
          MODES.filter((m) => measures(m, k)).map((m) => {
            const rs = runs[k][m];
            return [
              `${KIND_LABEL[k]}, ${LABEL[m]}`,
              pct(shareMedian(rs, 'client')),
              m === 'direct' ? '–' : pct(shareMedian(rs, 'proxy-a')),
              m === 'direct' ? '–' : pct(shareMedian(rs, 'proxy-b')),
              pct(shareMedian(rs, 'app')),
              pct(median(rs.map((r) => r.machineIrq * cores))),
              pct(median(rs.map(otherOf))),
              pct(median(rs.map((r) => r.machineBusy))),
            ];
          }),
        ),
      };
      const each = (k: Kind, i: number, f: (r: Run) => string) => MODES.map((m) => (measures(m, k) ? f(runs[k][m][i]!) : NOT_RUN)).join(' / ');
      const runsTable: Table = {
        title:
          `Every run (${MODES.map((m) => SHORT[m]).join(' / ')}; in each round the order rotates). ` +
          `‡ other work took over ${DISTURBED_CORES} of a core during the run`,
        headers: ['run', 'HTTP/1.1 req/s', `p50 µs at ${FIXED_RATE}/s`, `p99 µs at ${FIXED_RATE}/s`, 'HTTP/2 req/s', 'gRPC req/s'],
        rows: Array.from({ length: o.runs }, (_, i) => [
          String(i + 1),
          each('h1', i, (r) => `${sig(r.value)}${mark(r)}`),
          each('latency', i, (r) => `${sig(r.latency!.us.p50)}${mark(r)}`),
          each('latency', i, (r) => `${sig(r.latency!.us.p99)}${mark(r)}`),
          each('h2', i, (r) => `${sig(r.value)}${mark(r)}`),
          each('grpc', i, (r) => `${sig(r.value)}${mark(r)}`),
        ]),
      };

      // ---- targets (TARGET): the figures above, each against its limit. Like for like: the
      // mTLS pair against nginx TLS (both encrypt the hop between the proxies), the
      // plaintext pair against nginx and the ceiling (neither does).
      const key = (m: Mode) => ({ direct: 'Direct', plaintext: 'Plaintext', 'plaintext-off': 'PlaintextOff', 'telemetry-on': 'TelemetryOn', 'telemetry-off': 'TelemetryOff', mtls: 'Mtls', nginx: 'Nginx', 'nginx-tls': 'NginxTls', haproxy: 'Haproxy', node: 'Node', 'node-raw': 'NodeRaw' })[m];
      const cpuAtRate = perRequest.latency.proxies;
      interface Target {
        key: string;
        what: string;
        value: number;
        limit: number;
        atMost: boolean;
        /** Shown as µs added, else as a ratio. */
        us?: boolean;
        detail?: string;
      }
      const rpsTarget = (k: RateKind, a: Meshlet, b: Mode, limit: number): Target => ({
        key: `${k === 'h1' ? 'H1' : k === 'h2' ? 'H2' : 'Grpc'}${key(a)}Vs${key(b)}`,
        what: `${LABEL[a]} vs ${LABEL[b]}, ${KIND_LABEL[k]} requests/s`,
        value: ratio(rate[k], a, b),
        limit,
        atMost: false,
      });
      const addedTarget = (which: 'p50' | 'p99', m: Meshlet, limit: number): Target => ({
        key: `Added${which.toUpperCase()}${key(m)}Us`,
        what: `${LABEL[m]}, latency ${which} added over direct at ${FIXED_RATE} requests/s`,
        value: added(which === 'p50' ? p50 : p99, m, 'direct'),
        limit,
        atMost: true,
        us: true,
      });
      const cpuTarget = (a: Meshlet, b: Mode): Target => ({
        key: `Cpu${key(a)}Vs${key(b)}`,
        what: `${LABEL[a]} vs ${LABEL[b]}, CPU of both proxies per request at ${FIXED_RATE} requests/s`,
        value: cpuAtRate[a] / cpuAtRate[b],
        limit: TARGET.cpuVsNginx,
        atMost: true,
        detail: `${sig(cpuAtRate[a])} vs ${sig(cpuAtRate[b])} µs`,
      });
      const targets: Target[] = [
        rpsTarget('h1', 'plaintext', 'nginx', TARGET.h1PlaintextVsNginx),
        rpsTarget('h1', 'mtls', 'nginx-tls', TARGET.h1MtlsVsNginxTls),
        rpsTarget('h1', 'plaintext', 'node-raw', TARGET.h1PlaintextVsCeiling),
        ...MESHLET.map((m) => addedTarget('p50', m, TARGET.addedP50Us)),
        ...MESHLET.map((m) => addedTarget('p99', m, TARGET.addedP99Us)),
        cpuTarget('plaintext', 'nginx'),
        cpuTarget('mtls', 'nginx-tls'),
        rpsTarget('h2', 'mtls', 'nginx-tls', TARGET.h2GrpcMtlsVsNginxTls),
        rpsTarget('grpc', 'mtls', 'nginx-tls', TARGET.h2GrpcMtlsVsNginxTls),
      ];
      const met = (t: Target) => (t.atMost ? t.value <= t.limit : t.value >= t.limit);
      const show = (t: Target, v: number) => (t.us ? signed(v, 'µs') : times(v));
      const targetTable: Table = {
        title:
          `Data-path targets (design.md): ${targets.filter(met).length} of ${targets.length} met. HTTP/1.1 keep-alive, ${BODY_BYTES}-byte responses, unless named; ` +
          'requests/s ratios of the medians above, latency added over direct (medians), CPU as a ratio of µs per request',
        headers: ['target', 'measured', 'limit', 'met or not'],
        rows: targets.map((t) => [t.what, `${show(t, t.value)}${t.detail ? ` (${t.detail})` : ''}`, `${t.atMost ? '≤' : '≥'} ${show(t, t.limit)}`, metOrNot(met(t))]),
      };

      // ---- the Node.js floor: a reference, not a target
      const vsFloor = RATE_KINDS.map((k) => `${KIND_LABEL[k]} ${times(ratio(rate[k], 'mtls', 'node'))}`).join(', ');
      const cpuVsFloor = KINDS.map(
        (k) => `${KIND_LABEL[k]} ${sig(perRequest[k].proxies.mtls)} vs ${sig(perRequest[k].proxies.node)} µs (nginx TLS ${sig(perRequest[k].proxies['nginx-tls'])} µs)`,
      ).join(', ');
      // meshlet mTLS / nginx TLS = (floor / nginx TLS) × (meshlet mTLS / floor): the runtime's factor, then meshlet's.
      const gapSplit = RATE_KINDS.map(
        (k) => `${KIND_LABEL[k]} ${times(ratio(rate[k], 'mtls', 'nginx-tls'))} = ${times(ratio(rate[k], 'node', 'nginx-tls'))} runtime × ${times(ratio(rate[k], 'mtls', 'node'))} meshlet`,
      ).join('; ');

      const warnings: string[] = [];
      const allRuns = KINDS.flatMap((k) => MODES.flatMap((m) => runs[k][m]));
      const disturbedCount = allRuns.filter(disturbed).length;
      if (disturbedCount > 0) {
        warnings.push(
          `${disturbedCount} of ${allRuns.length} runs were disturbed: other work took more than ${DISTURBED_CORES} of a core during them (marked ‡). ` +
            'Their figures are lower than the machine can do; the medians resist a few, not many.',
        );
      }
      for (const m of MESHLET) {
        const v = verification[m] as { refusedA: number; refusedB: number };
        if (v.refusedA + v.refusedB > 0) warnings.push(`The ${LABEL[m]} refused ${v.refusedA + v.refusedB} connection(s) (meshlet_proxy_connections_refused_total).`);
      }
      const reconnects = MODES.reduce((n, m) => n + runs.latency[m].reduce((s, r) => s + r.latency!.reconnects, 0), 0);
      if (reconnects > 0) warnings.push(`The fixed-rate client had to reopen ${reconnects} keep-alive connection(s) that a server or proxy closed.`);

      return {
        name: this.name,
        title: this.title,
        summary: {
          ...Object.fromEntries(MODES.flatMap((m) => [
            [`h1ReqPerS${key(m)}`, rate.h1[m].median],
            [`latencyP50${key(m)}Us`, p50[m].median],
            [`latencyP99${key(m)}Us`, p99[m].median],
            [`h2ReqPerS${key(m)}`, rate.h2[m].median],
            [`grpcReqPerS${key(m)}`, rate.grpc[m].median],
          ])),
          ...Object.fromEntries(PROXIED.flatMap((m) => [
            ...RATE_KINDS.map((k) => [`${k}Ratio${key(m)}VsDirect`, ratio(rate[k], m, 'direct')]),
            [`addedLatencyP50${key(m)}Us`, added(p50, m, 'direct')],
            [`addedLatencyP99${key(m)}Us`, added(p99, m, 'direct')],
            ...KINDS.map((k) => [`proxyCpuUsPerRequest_${k}_${key(m)}`, perRequest[k].proxies[m]]),
            ...side(m).proxies.map((p) => [`proxyRssIdleMiB_${m}_${p.pod}`, (rssIdle[m][p.pod] ?? Number.NaN) / MiB]),
            ...side(m).proxies.map((p) => [`proxyRssLoadMiB_${m}_${p.pod}`, Math.max(...KINDS.map((k) => rssMax[k][m][p.pod] ?? 0)) / MiB]),
          ])),
          ...Object.fromEntries(comparisons.flatMap(([a, b]) => RATE_KINDS.map((k) => [`${k}Ratio${key(a)}Vs${key(b)}`, ratio(rate[k], a, b)]))),
          ...Object.fromEntries(targets.flatMap((t) => [
            [`target${t.key}`, t.value],
            [`target${t.key}Limit`, t.limit],
            [`target${t.key}Met`, met(t)],
          ])),
          targetsMet: targets.filter(met).length,
          targetsTotal: targets.length,
          // Whether the sidecars saw HTTP (protocol detection), rather than forwarding opaque TCP.
          meshletHttpDetected: MESHLET.some((m) => /\b(http1|h2|http|http2|grpc) [1-9]/.test(detected((verification[m] as { detectionsA: Record<string, number> }).detectionsA) ?? '')),
        },
        tables: [mainTable, targetTable, vsDirectTable, vsBaselineTable, cpuCostTable, proxyTable, cpuTable, runsTable],
        notes: [
          `**Targets: ${targets.filter(met).length} of ${targets.length} met** (table above). Judged like for like: the meshlet mTLS pair against the nginx TLS pair (both encrypt the hop between the proxies with client certificates), ` +
            `the plaintext pair against the nginx pair and the Node.js ceiling pair (neither encrypts); CPU per request from the fixed-rate runs (both proxies); the mTLS pair against the plaintext nginx pair: ` +
            `HTTP/1.1 requests/s ${rateCell('h1', 'mtls', 'nginx')}, CPU per request at ${FIXED_RATE}/s ${times(cpuAtRate.mtls / cpuAtRate.nginx)}. ` +
            `Latency added over direct at ${FIXED_RATE} requests/s by the other pairs, p50 / p99: ${PROXIED.filter((m) => m !== 'plaintext' && m !== 'mtls').map((m) => `${SHORT[m]} ${signed(added(p50, m, 'direct'), 'µs')} / ${signed(added(p99, m, 'direct'), 'µs')}`).join(', ')}.`,
          `**meshlet mTLS pair vs the Node.js floor pair** (the same runtime on the same path, with none of meshlet's features; a reference, not a target): requests/s ${vsFloor}; ` +
            `added p99 at ${FIXED_RATE} requests/s over direct ${signed(added(p99, 'mtls', 'direct'), 'µs')} for meshlet mTLS, ${signed(added(p99, 'node', 'direct'), 'µs')} for the floor; ` +
            `proxy CPU per request (both proxies), meshlet mTLS vs the floor: ${cpuVsFloor}. ` +
            `The gap to the nginx TLS pair in requests/s, split into the runtime's factor (floor vs nginx TLS) and meshlet's (meshlet mTLS vs floor): ${gapSplit}.`,
          `What the meshlet pairs carried (their counters): ${pathNote('plaintext')}. ${pathNote('mtls')}.`,
          (pin
            ? `CPU placement: h2load and the latency client on core ${pin.load}; each mode's app, proxies and trace sinks on core ${pin.pods} (every thread), so a pair's rate is one core over what a request costs the app and both proxies together. `
            : 'CPU placement: none (--unpinned): the scheduler places the client, the app and the proxies, differently from one start to the next. ') +
          'Topology: one testbed per mode (a client pod a and a server pod b, network namespaces on a bridge), built once and kept for the whole run. ' +
            `The app (bench/apps/l7-app.ts, one Node process, UID ${APP_UID}) serves HTTP/1.1 (node:http) on ${APP_PORTS.h1}, HTTP/2 cleartext (node:http2) on ${APP_PORTS.h2} and gRPC (@grpc/grpc-js, a unary method with raw-bytes messages) on ${APP_PORTS.grpc}, ` +
            `each answering a fixed ${BODY_BYTES}-byte body allocated once. The meshlet pairs are configured as in the l4 scenario (\`meshlet init\` rules, \`meshlet proxy\` as UID 1337 with its default configuration, identities from \`meshlet ca\` and strict mTLS for the mTLS pair); the client addresses the app, the sidecars intercept. ` +
            `In the nginx, haproxy and Node.js floor and ceiling pairs the client addresses proxy a on a's loopback (${FRONT_PORTS.h1}–${FRONT_PORTS.grpc}), which proxies to proxy b on b's address (${BACK_PORTS.h1}–${BACK_PORTS.grpc}), which proxies to the app.`,
          `nginx ${versions.nginx} and haproxy ${versions.haproxy} as the baselines (h2load ${versions.h2load}): one process, one thread each (nginx \`master_process off; worker_processes 1;\`, haproxy \`nbthread 1\`), as UID 1337, no access logs (meshlet's is off by default), keep-alive pools upstream on both hops ` +
            '(nginx `upstream { keepalive 128; }` with `proxy_http_version 1.1` and an empty Connection header for HTTP/1.1, `grpc_pass` for HTTP/2 and gRPC, which opens one upstream connection per concurrent request; haproxy `mode http`, `http-reuse always`, `proto h2` upstream for HTTP/2 and gRPC), ' +
            'Host preserved, keep-alive request limits lifted. The nginx TLS pair: TLS 1.3 between the proxies, nginx b requires a client certificate signed by the run\'s meshlet CA, nginx a verifies b\'s chain and name (certificates ECDSA P-256 from the same CA with the same SPIFFE IDs plus a DNS name, since nginx cannot verify a SPIFFE ID). Configs are generated in a temporary directory.',
          `The Node.js floor pair (bench/apps/node-pair.ts, Node ${process.versions.node}), what it is: one Node process per pod as UID 1337, addressed like nginx (proxy a on a's loopback, proxy b on b's address), ` +
            'proxy a taking HTTP/1.1 (node:http) and h2c (node:http2) and carrying every request, whatever its protocol, as one stream on one HTTP/2 session per protocol to proxy b, ' +
            'over TLS 1.3 with client certificates (the nginx TLS pair\'s certificates: b requires one from the CA, a verifies b\'s chain and DNS name; ALPN h2), as meshlet multiplexes app connections on one mTLS HTTP/2 connection between the sidecars; ' +
            'proxy b forwarding to the app through a keep-alive http.Agent (HTTP/1.1) or one h2c session per port; meshlet\'s HTTP/2 settings (4 MiB stream windows, 1000 streams). ' +
            'It does only what correctness needs: hop-by-hop headers dropped, Host ⇄ :authority, bodies streamed, response trailers (gRPC\'s status), 502 or RST_STREAM on upstream errors. ' +
            'What it is not: no interception (iptables, SO_ORIGINAL_DST), protocol detection, SPIFFE verification, routing or policy, metrics, logs, request ids, header case, limits or timeouts — what meshlet does beyond it is the gap to the floor; ' +
            'nor a ceiling for Node (no worker threads, no native code, no tuning beyond meshlet\'s own HTTP/2 settings): it is what Node\'s core modules cost on this path, used plainly.',
          `The Node.js ceiling pair (bench/apps/node-raw-pair.ts, Node ${process.versions.node}), what it is: the simplest Node pair that moves HTTP/1.1 on raw sockets, one process per pod as UID 1337, addressed like nginx, ` +
            `on the HTTP/1.1 ports only (${FRONT_PORTS.h1} on a's loopback, ${BACK_PORTS.h1} on b), plaintext on both hops, no node:http: heads split at CRLFCRLF, bodies counted by Content-Length, the bytes forwarded as received, ` +
            'each client connection\'s requests on an upstream keep-alive socket taken from a pool per request and given back once its responses are whole. ' +
            'What it is not: correct beyond the benchmark\'s requests (no chunked bodies, HEAD, 1xx, Upgrade, close-delimited responses or hop-by-hop handling; the list is in its header), nor a proxy with any feature (no TLS, interception, detection, routing, limits, timeouts, backpressure, metrics or logs). ' +
            'It is what the runtime can do on this path at all; meshlet\'s HTTP/1.1 target is a share of it. HTTP/2 and gRPC are not run on it ("–").',
          `Requests/s: h2load (nghttp2) in pod a, one thread, for ${d.rateS} s per run: HTTP/1.1 with --h1, ${LOAD_SHAPE.h1.conns} connections, one request at a time on each; HTTP/2 cleartext with prior knowledge, ${LOAD_SHAPE.h2.conns} connections × ${LOAD_SHAPE.h2.streams} concurrent streams; ` +
            `gRPC: the same shape, each request a POST of one ${GRPC_REQUEST_BYTES}-byte gRPC message (-d, content-type application/grpc, te: trailers) to ${GRPC_PATH}. Any failed, errored or non-2xx request fails the benchmark. ` +
            'A start-up check proves every path for each protocol (curl for HTTP/1.1 and HTTP/2, a @grpc/grpc-js client call for gRPC: status OK in the trailers and the whole message), since h2load checks HTTP statuses only.',
          `Latency at ${FIXED_RATE} requests/s: bench/apps/l7-load.ts in pod a, open loop: request k is due at t0 + k ms whatever happened before, sent on an idle one of ${FIXED_RATE_CONNS} keep-alive connections (round robin) or queued until one is free, ` +
            `and timed from its due time to the end of its response (process.hrtime.bigint()), so stalls count for every request they delay (no coordinated omission). Per run ${d.latencyS * FIXED_RATE} recorded requests after ${d.latencyWarmupS * FIXED_RATE} unrecorded ones; nearest-rank p50/p99 per run, then the median across runs. ` +
            `The generator's own lateness (write − due time) is in every figure alike: its p99 was ${sig(late99.direct.median)} µs in the direct runs (median), the service time alone (write to response) p99 ${sig(svc99.direct.median)} µs direct, ${sig(svc99.mtls.median)} µs through the meshlet mTLS pair. ` +
            'A p99 difference smaller than the generator\'s own lateness p99 is within the noise of the machine (on a VM, scheduling jitter alone reaches milliseconds).',
          `CPU and memory: each process's CPU time over each run's window (/proc/<pid>/stat; h2load's from its shell's \`times\`), as a share of one core and per request answered; proxies' VmRSS sampled every 50 ms during each run, "RSS idle" 1 s after start-up and the start-up checks, before the runs. ` +
            `Rounds of one run per mode, the order rotating each round; unrecorded warm-up first, for each kind and mode: one run of ${dWarm.rateS} s (fixed-rate: ${dWarm.latencyS} s), then, for the request-rate kinds, runs of ${d.rateS} s until ${WARM_FLAT_RUNS} in a row are no more than ${WARM_GAIN * 100} % faster than the fastest before them (at most ${WARM_MAX_RUNS}; how many each mode took is in the JSON report, warmRuns). All HTTP/1.1 rounds run first, then the fixed-rate rounds, then HTTP/2, then gRPC.`,
          ...warnings.map((w) => `**Warning:** ${w}`),
        ],
        data: {
          config: {
            modes: MODES,
            versions,
            durations: d,
            bodyBytes: BODY_BYTES,
            grpcRequestBytes: GRPC_REQUEST_BYTES,
            loadShape: LOAD_SHAPE,
            fixedRate: { rate: FIXED_RATE, conns: FIXED_RATE_CONNS },
            ports: { app: APP_PORTS, front: FRONT_PORTS, back: BACK_PORTS },
            identities: { client: ids.client.spiffeId, server: ids.server.spiffeId },
          },
          runs,
          warmRuns,
          rate,
          latency: { p50Us: p50, p99Us: p99, serviceP99Us: svc99, latenessP99Us: late99 },
          cpuPerRequestUs: perRequest,
          proxies: {
            pids: Object.fromEntries(PROXIED.map((m) => [m, Object.fromEntries(side(m).proxies.map((p) => [p.pod, p.pid]))])),
            rssBytes: { idle: rssIdle, max: rssMax, afterRuns: rssAfter },
          },
          verification,
        },
      };
    } finally {
      if (pin) releaseLoadGenerator();
      for (const topology of built) await topology.testbed.destroy();
      store.remove();
      removeWork();
      process.removeListener('exit', removeWork);
    }
  },
};
