// L4 scenario: opaque TCP between a client in pod a and a server in pod b, in three modes
// measured in the same run:
//
//   direct      no rules, no proxies;
//   plaintext   through both sidecars (a's outbound listener, b's inbound listener),
//               opaque TCP between them;
//   mtls        through both sidecars with mesh-wide strict mutual TLS between them
//               (identities from `meshlet ca`, TLS 1.3, ECDSA P-256 certificates).
//
// Each mode is its own testbed (pods, rules and proxies), built once and kept for the
// whole run, so the proxies of one mode never see another mode's traffic and their
// memory and counters are per mode.
//
//   throughput  one connection, a bulk transfer client→server, MB/s (10^6 bytes/s) seen by
//               the client from 'connect' until the server confirms every byte.
//   latency     one connection, N sequential small request/response exchanges; p50/p99
//               of each run's round trips.
//   connrate    new connections: C at a time, each one small request/response and closed
//               by the server, until N have completed; connections/s. Through the mTLS
//               pair each connection costs a full TLS 1.3 handshake between the sidecars.
//   proxies     VmRSS of the proxy processes idle (started, before any traffic) and the
//               maximum while under load; CPU each process used during the runs.
//
// Runs come in rounds, one run of each mode per round, in an order that rotates from
// round to round (d p m, p m d, m d p, ...) so drift hits every mode alike and no mode
// always runs right after the same one; one unrecorded warm-up run of each kind and mode
// comes first (JIT, page cache, conntrack, the first TLS handshakes).
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { IdentityStore } from '../src/testbed/identities.ts';
import { APP_UID, PROXY_UID } from '../src/testbed/netns.ts';
import { issueIdentities, mtlsEnv } from './lib/mesh.ts';
import { CpuMeter, rssBytes, RssSampler } from './lib/procfs.ts';
import { median, sig, signed, spread, type Spread } from './lib/stats.ts';
import { counterSum, createTopology, scrapeMetrics, startAppServer, type Mode, type Topology } from './lib/topology.ts';
import type { BenchContext, Scenario, ScenarioResult, Table } from './scenario.ts';

const APPS = path.join(path.dirname(fileURLToPath(import.meta.url)), 'apps');
const APP = path.join(APPS, 'l4-app.ts');
const TLS_PROBE = path.join(APPS, 'tls-probe.ts');
const SINK_PORT = 9000;
const ECHO_PORT = 9001;
const ONCE_PORT = 9002;
const MODES: Mode[] = ['direct', 'plaintext', 'mtls'];
const MESHED = ['plaintext', 'mtls'] as const;
type Meshed = (typeof MESHED)[number];
const LABEL: Record<Mode, string> = { direct: 'direct', plaintext: 'plaintext pair', mtls: 'mTLS pair' };
const SECURITY: Record<Meshed, string> = { plaintext: 'none', mtls: 'mutual_tls' };
const KINDS = ['throughput', 'latency', 'connrate'] as const;
type Kind = (typeof KINDS)[number];
const KIND_LABEL: Record<Kind, string> = { throughput: 'bulk', latency: 'latency', connrate: 'new connections' };
const THROUGHPUT_GOAL = 0.8;
/** Unrecorded connections at the start of each connection-rate run (the client is a fresh process). */
const CONNRATE_WARMUP = 100;
/** Size of the unrecorded bulk transfer before the runs. */
const WARMUP_BYTES = 300e6;
/** "Anything else" (machine busy − our processes) above this many cores marks a run as disturbed. */
const DISTURBED_CORES = 0.5;
const MiB = 2 ** 20;

/** CPU time / wall time of the measured window, per process (1 = one core busy), split user/kernel. */
type CpuShare = Record<string, { user: number; system: number }>;

interface ClientOutput {
  ok: boolean;
  error?: string;
  elapsedNs: number;
  cpu: { userUs: number; systemUs: number; machineBusy: number; machineIrq: number };
}

interface ThroughputOutput extends ClientOutput {
  mbPerS: number;
}

interface LatencyOutput extends ClientOutput {
  us: { min: number; p50: number; p90: number; p99: number; p999: number; max: number; mean: number };
}

interface ConnrateOutput extends ClientOutput {
  connPerS: number;
  completed: number;
  failed: number;
  errors: Record<string, number>;
  truncated: boolean;
  warmup: number;
  us: { min: number; p50: number; p90: number; p99: number; max: number };
}

/** One measured run: the client's figures, and the CPU of every process over its window. */
interface Run<T extends ClientOutput> {
  out: Omit<T, 'ok' | 'cpu' | 'elapsedNs'>;
  elapsedS: number;
  cpu: CpuShare;
  /** Fraction of all the machine's cores busy during the run. */
  machineBusy: number;
  /** Fraction of all the machine's cores in irq/softirq context (network receive work) during the run. */
  machineIrq: number;
}

interface Side {
  mode: Mode;
  topology: Topology;
  /** Pid of the app server's node process. */
  serverPid: number;
  host: string;
  /** Connections the clients completed through this testbed (for the counters' check). */
  connections: number;
}

async function runClient<T extends ClientOutput>(
  side: Side,
  args: string[],
  options: { script?: string; uid?: number; onMeasuring?: () => void } = {},
): Promise<T> {
  // Spawned through the testbed, so an interrupted run kills it with the pods.
  const proc = side.topology.client.node([options.script ?? APP, ...args, '--host', side.host], { uid: options.uid ?? APP_UID });
  const { onMeasuring } = options;
  // A client that dies first is reported below from its output.
  if (onMeasuring) proc.waitForLine(/"measuring":true/, 120_000).then(onMeasuring, () => {});
  // The clients give up on their own (--timeout, 120 s by default).
  await new Promise((resolve) => proc.child.once('close', resolve));
  const { stdout, stderr } = proc.output();
  const code = proc.child.exitCode ?? proc.child.signalCode;
  const line = stdout.trim().split('\n').at(-1) ?? '';
  const what = `${side.mode} client ${args[0]?.startsWith('--') ? path.basename(options.script ?? APP) : args[0]}`;
  let out: T;
  try {
    out = JSON.parse(line) as T;
  } catch {
    throw new Error(`${what} printed no result (exit ${code}): ${stderr.trim() || stdout.trim()}`);
  }
  if (!out.ok || code !== 0) throw new Error(`${what} failed: ${out.error ?? `exit ${code}`}`);
  return out;
}

/**
 * Runs one client with the side's processes metered over the client's measured window:
 * the client announces the window's start on stdout (after its start-up and any
 * warm-up), and the meter is restarted then; the client measures its own CPU and the
 * machine's (/proc/stat) over exactly the window.
 */
async function measured<T extends ClientOutput>(side: Side, args: string[], rss?: RssSampler): Promise<Run<T>> {
  const pids = new Map<string, number>([['server', side.serverPid]]);
  for (const p of side.topology.proxies) pids.set(`proxy-${p.pod}`, p.pid);
  let meter = new CpuMeter(pids);
  rss?.start();
  let out: T;
  try {
    out = await runClient<T>(side, args, { onMeasuring: () => (meter = new CpuMeter(pids)) });
  } finally {
    rss?.stop();
  }
  const windowS = out.elapsedNs / 1e9;
  const cpu: CpuShare = { client: { user: out.cpu.userUs / 1e6 / windowS, system: out.cpu.systemUs / 1e6 / windowS } };
  // The meter stops a few ms after the window closes (the client's exit), when the
  // other processes are idle again.
  for (const [name, t] of meter.read()) cpu[name] = { user: t.user / windowS, system: t.system / windowS };
  const { ok: _ok, cpu: _cpu, elapsedNs: _elapsed, ...figures } = out;
  return { out: figures, elapsedS: windowS, cpu, machineBusy: out.cpu.machineBusy, machineIrq: out.cpu.machineIrq };
}

function proxyRss(topology: Topology): Record<string, number> {
  return Object.fromEntries(topology.proxies.map((p) => [p.pod, rssBytes(p.pid) ?? Number.NaN]));
}

function maxInto(target: Record<string, number>, sample: Map<string, number>): void {
  for (const [name, value] of sample) target[name] = Math.max(target[name] ?? 0, value);
}

/** The modes in round `round` (0-based): the list rotated by the round number. */
function roundOrder(round: number): Mode[] {
  const k = round % MODES.length;
  return [...MODES.slice(k), ...MODES.slice(0, k)];
}

const mib = (bytes: number | undefined) => (bytes === undefined ? 'n/a' : sig(bytes / MiB, 3));
const pct = (share: number | undefined) => (share === undefined || !Number.isFinite(share) ? '–' : `${Math.round(share * 100)} %`);
/** "73 % (41 % sys)" */
const pctSplit = (total: number, system: number) => (Number.isFinite(total) ? `${pct(total)} (${pct(system)} sys)` : '–');
const times = (ratio: number) => (Number.isFinite(ratio) ? `×${ratio.toFixed(2)}` : 'n/a');

export const l4Scenario: Scenario = {
  name: 'l4',
  title: 'L4: opaque TCP, direct vs through both sidecars, plaintext and mTLS',

  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const o = ctx.options;
    const sides = new Map<Mode, Side>();
    const built: Topology[] = [];
    // Keys and certificates in a temporary directory, removed at the end (or at exit).
    const store = new IdentityStore();
    try {
      ctx.log('l4: issuing identities with `meshlet ca` (ECDSA P-256)');
      const ids = await issueIdentities(store);
      for (const [i, mode] of MODES.entries()) {
        ctx.log(`l4: building the ${mode} pods`);
        const subnet = 44 + i;
        const topology = await createTopology(mode, { subnet, proxyEnv: mode === 'mtls' ? mtlsEnv(ids, subnet) : undefined });
        built.push(topology);
        const server = await startAppServer(topology.server, [
          APP, 'server', '--sink-port', String(SINK_PORT), '--echo-port', String(ECHO_PORT), '--once-port', String(ONCE_PORT), '--msg', String(o.msgBytes),
        ]);
        sides.set(mode, { mode, topology, serverPid: server.pid, host: o.family === 4 ? topology.server.ipv4 : topology.server.ipv6, connections: 0 });
      }
      const side = (mode: Mode) => sides.get(mode)!;
      // Let start-up allocation settle before calling the proxies idle.
      await new Promise((r) => setTimeout(r, 1000));
      const rssIdle = Object.fromEntries(MESHED.map((m) => [m, proxyRss(side(m).topology)])) as Record<Meshed, Record<string, number>>;

      const argsFor: Record<Kind, (warmup: boolean) => string[]> = {
        // The warm-up needs no full-size transfer: a few hundred MB warm the JIT and the page cache.
        throughput: (warmup) => ['throughput', '--port', String(SINK_PORT), '--size', String(warmup ? Math.min(o.sizeBytes, WARMUP_BYTES) : o.sizeBytes), '--chunk', String(o.chunkBytes)],
        latency: (warmup) => ['latency', '--port', String(ECHO_PORT), '--count', String(warmup ? Math.min(o.pings, 1000) : o.pings), '--msg', String(o.msgBytes), '--warmup', '200'],
        connrate: (warmup) => [
          'connrate', '--port', String(ONCE_PORT), '--count', String(warmup ? Math.min(o.conns, 300) : o.conns), '--concurrency', String(o.concurrency),
          '--msg', String(o.msgBytes), '--warmup', String(CONNRATE_WARMUP), '--max-seconds', String(o.connSeconds),
          // The client's own deadline: the run's limit plus its start-up, warm-up and the last connections.
          '--timeout', String((o.connSeconds + 60) * 1000),
        ],
      };
      /** Connections a finished client made through the testbed. */
      const connectionsOf = (kind: Kind, out: Omit<ClientOutput, 'ok'> & Partial<ConnrateOutput>) => (kind === 'connrate' ? (out.completed ?? 0) + (out.warmup ?? 0) : 1);

      ctx.log('l4: warm-up (not recorded)');
      for (const kind of KINDS) {
        for (const mode of MODES) {
          const out = await runClient<ClientOutput & Partial<ConnrateOutput>>(side(mode), argsFor[kind](true));
          side(mode).connections += connectionsOf(kind, out);
        }
      }

      const proxyPids = Object.fromEntries(MESHED.map((m) => [m, new Map(side(m).topology.proxies.map((p) => [p.pod, p.pid]))])) as Record<Meshed, Map<string, number>>;
      const rssMax = Object.fromEntries(KINDS.map((k) => [k, { plaintext: {}, mtls: {} }])) as Record<Kind, Record<Meshed, Record<string, number>>>;
      const empty = () => ({ direct: [], plaintext: [], mtls: [] });
      const throughput: Record<Mode, Array<Run<ThroughputOutput>>> = empty();
      const latency: Record<Mode, Array<Run<LatencyOutput>>> = empty();
      const connrate: Record<Mode, Array<Run<ConnrateOutput>>> = empty();
      const runsOf = { throughput, latency, connrate } as Record<Kind, Record<Mode, Array<Run<ClientOutput>>>>;
      const describe: Record<Kind, (run: Run<ClientOutput>) => string> = {
        throughput: (r) => `${sig((r.out as ThroughputOutput).mbPerS)} MB/s`,
        latency: (r) => `p50 ${sig((r.out as LatencyOutput).us.p50)} µs, p99 ${sig((r.out as LatencyOutput).us.p99)} µs`,
        connrate: (r) => {
          const c = r.out as ConnrateOutput;
          return `${sig(c.connPerS)} conn/s${c.failed > 0 ? `, ${c.failed} failed` : ''}${c.truncated ? `, stopped at ${o.connSeconds} s after ${c.completed}` : ''}`;
        },
      };

      for (const kind of KINDS) {
        for (let round = 0; round < o.runs; round++) {
          await ctx.settle();
          for (const mode of roundOrder(round)) {
            const sampler = mode === 'direct' ? undefined : new RssSampler(proxyPids[mode]);
            const run = await measured<ClientOutput>(side(mode), argsFor[kind](false), sampler);
            if (sampler && mode !== 'direct') maxInto(rssMax[kind][mode], sampler.stop());
            runsOf[kind][mode].push(run);
            side(mode).connections += connectionsOf(kind, run.out as ConnrateOutput);
            ctx.log(`l4: ${kind} run ${round + 1}/${o.runs} ${mode}: ${describe[kind](run)} (machine ${pct(run.machineBusy)} busy)`);
          }
        }
      }
      const rssAfter = Object.fromEntries(MESHED.map((m) => [m, proxyRss(side(m).topology)])) as Record<Meshed, Record<string, number>>;

      // What the mTLS pair negotiates, with the outbound proxy's own connector and the client's identity.
      const probe = await runClient<ClientOutput & Record<string, unknown>>(
        side('mtls'),
        ['--identity', ids.client.dir, '--expect', ids.server.spiffeId, '--port', String(ONCE_PORT), '--msg', String(o.msgBytes), '--count', '20'],
        { script: TLS_PROBE, uid: PROXY_UID },
      );
      side('mtls').connections += 20;

      // Proof that the meshed figures went through both proxies, encrypted or not as the
      // mode says: their own counters, labelled by connection_security_policy.
      const expectedBytes = o.runs * o.sizeBytes + Math.min(o.sizeBytes, WARMUP_BYTES);
      const verification = {} as Record<Meshed, Record<string, number | string | boolean>>;
      for (const mode of MESHED) {
        const metricsA = await scrapeMetrics(side(mode).topology.client);
        const metricsB = await scrapeMetrics(side(mode).topology.server);
        const security = SECURITY[mode];
        // The probe goes straight to b's inbound listener, so a's proxy never sees it.
        const expectedOutbound = side(mode).connections - (mode === 'mtls' ? 20 : 0);
        const v = {
          securityPolicy: security,
          outboundConnections: counterSum(metricsA, 'meshlet_tcp_connections_opened_total', { reporter: 'source', connection_security_policy: security }),
          inboundConnections: counterSum(metricsB, 'meshlet_tcp_connections_opened_total', { reporter: 'destination', connection_security_policy: security }),
          outboundReceivedBytes: counterSum(metricsA, 'meshlet_tcp_received_bytes_total', { reporter: 'source', connection_security_policy: security }),
          inboundReceivedBytes: counterSum(metricsB, 'meshlet_tcp_received_bytes_total', { reporter: 'destination', connection_security_policy: security }),
          refusedA: counterSum(metricsA, 'meshlet_proxy_connections_refused_total'),
          refusedB: counterSum(metricsB, 'meshlet_proxy_connections_refused_total'),
          expectedOutboundConnections: expectedOutbound,
          expectedInboundConnections: side(mode).connections,
          expectedBytesAtLeast: expectedBytes,
          ok: false,
        };
        v.ok =
          v.outboundConnections >= expectedOutbound &&
          v.inboundConnections >= side(mode).connections &&
          v.outboundReceivedBytes >= expectedBytes &&
          v.inboundReceivedBytes >= expectedBytes;
        verification[mode] = v;
        if (!v.ok) throw new Error(`the ${mode} traffic did not go through both proxies as ${security}: ${JSON.stringify(v)}`);
      }

      // ---- figures
      const byMode = <T>(f: (m: Mode) => T) => Object.fromEntries(MODES.map((m) => [m, f(m)])) as Record<Mode, T>;
      const tp = byMode((m) => spread(throughput[m].map((r) => r.out.mbPerS)));
      const p50 = byMode((m) => spread(latency[m].map((r) => r.out.us.p50)));
      const p99 = byMode((m) => spread(latency[m].map((r) => r.out.us.p99)));
      const cps = byMode((m) => spread(connrate[m].map((r) => r.out.connPerS)));
      const failedConns = byMode((m) => connrate[m].reduce((sum, r) => sum + r.out.failed, 0));
      const truncatedRuns = byMode((m) => connrate[m].filter((r) => r.out.truncated).length);
      const pairs = [['plaintext', 'direct'], ['mtls', 'plaintext'], ['mtls', 'direct']] as const;
      const ratio = (s: Record<Mode, Spread>, a: Mode, b: Mode) => s[a].median / s[b].median;
      const added = (s: Record<Mode, Spread>, a: Mode, b: Mode) => s[a].median - s[b].median;

      const cpuMedian = (runs: Array<{ cpu: CpuShare }>, name: string) => median(runs.map((r) => (r.cpu[name] ? r.cpu[name].user + r.cpu[name].system : Number.NaN)));
      const sysMedian = (runs: Array<{ cpu: CpuShare }>, name: string) => median(runs.map((r) => r.cpu[name]?.system ?? Number.NaN));
      const cpuCell = (runs: Array<{ cpu: CpuShare }>, name: string) => pctSplit(cpuMedian(runs, name), sysMedian(runs, name));
      const busyMedian = (runs: Array<{ machineBusy: number }>) => median(runs.map((r) => r.machineBusy));
      // Interrupt/softirq time: mostly the network stack's receive work for the veths,
      // bridge and loopback. The kernel charges it to whatever task it interrupted, so it is
      // partly inside the processes' "sys" figures already.
      const irqMedian = (runs: Array<{ machineIrq: number }>) => median(runs.map((r) => r.machineIrq * ctx.machine.cores));
      // CPU the machine spent on anything but our processes: softirq work done while none
      // of them was running, the orchestrator, and whatever else runs on the machine.
      const otherOf = (r: { machineBusy: number; cpu: CpuShare }) => Math.max(0, r.machineBusy * ctx.machine.cores - Object.values(r.cpu).reduce((sum, c) => sum + c.user + c.system, 0));
      const otherMedian = (runs: Array<{ machineBusy: number; cpu: CpuShare }>) => median(runs.map(otherOf));
      /** A run during which other work took more than half a core. */
      const disturbed = (r: { machineBusy: number; cpu: CpuShare }) => otherOf(r) > DISTURBED_CORES;
      const disturbedRuns = Object.fromEntries(KINDS.map((k) => [k, byMode((m) => runsOf[k][m].filter(disturbed).length)])) as Record<Kind, Record<Mode, number>>;
      const mark = (r: Run<ClientOutput>) => (disturbed(r) ? '‡' : '');
      const range = (s: Spread, digits = 3) => `${sig(s.median, digits)} (${sig(s.min, digits)}–${sig(s.max, digits)})`;
      const latencyCell = (s: Record<Mode, Spread>, a: Mode, b: Mode) => `${signed(added(s, a, b), 'µs')} (${times(ratio(s, a, b))})`;
      const goal = (r: number) => (r >= THROUGHPUT_GOAL ? 'met' : 'not met');

      const mainTable: Table = {
        title: `Median of ${o.runs} run${o.runs === 1 ? '' : 's'} (min–max)`,
        headers: ['figure', ...MODES.map((m) => LABEL[m]), ...pairs.map(([a, b]) => `${LABEL[a].replace(' pair', '')} vs ${LABEL[b].replace(' pair', '')}`)],
        rows: [
          [`throughput, ${o.sizeBytes / 1e6} MB client→server (MB/s)`, ...MODES.map((m) => range(tp[m])), ...pairs.map(([a, b]) => times(ratio(tp, a, b)))],
          [`latency p50, ${o.msgBytes} B request/response (µs)`, ...MODES.map((m) => range(p50[m])), ...pairs.map(([a, b]) => latencyCell(p50, a, b))],
          [`latency p99, ${o.msgBytes} B request/response (µs)`, ...MODES.map((m) => range(p99[m])), ...pairs.map(([a, b]) => latencyCell(p99, a, b))],
          [`new connections/s, ${o.concurrency} at a time, one ${o.msgBytes} B request/response each`, ...MODES.map((m) => range(cps[m])), ...pairs.map(([a, b]) => times(ratio(cps, a, b)))],
        ],
      };
      // CPU time per unit of work: CPU share × window / units. Other work on the machine
      // lowers the rates but much less what each byte, exchange or connection costs.
      const unitsOf: Record<Kind, (r: Run<ClientOutput>) => number> = {
        throughput: () => o.sizeBytes / 1e9,
        latency: () => o.pings,
        connrate: (r) => (r.out as ConnrateOutput).completed,
      };
      const unitScale: Record<Kind, number> = { throughput: 1, latency: 1e6, connrate: 1e3 };
      const cpuSecondsOf = (r: Run<ClientOutput>, names: (n: string) => boolean) =>
        Object.entries(r.cpu).filter(([n]) => names(n)).reduce((sum, [, c]) => sum + (c.user + c.system) * r.elapsedS, 0);
      const cpuPerUnit = (kind: Kind, m: Mode, names: (n: string) => boolean) =>
        median(runsOf[kind][m].map((r) => (cpuSecondsOf(r, names) / unitsOf[kind](r)) * unitScale[kind]));
      const allProcesses = () => true;
      const proxiesOnly = (n: string) => n.startsWith('proxy-');
      const perUnit = Object.fromEntries(KINDS.map((k) => [k, {
        all: byMode((m) => cpuPerUnit(k, m, allProcesses)),
        proxies: byMode((m) => (m === 'direct' ? Number.NaN : cpuPerUnit(k, m, proxiesOnly))),
      }])) as Record<Kind, { all: Record<Mode, number>; proxies: Record<Mode, number> }>;
      const unitLabel: Record<Kind, string> = {
        throughput: 'bulk: CPU s per GB',
        latency: 'latency: CPU µs per exchange',
        connrate: 'new connections: CPU ms per connection',
      };
      const cpuCostTable: Table = {
        title: 'CPU per unit of work (median over runs): less sensitive than the rates to other work on the machine',
        headers: ['figure', ...MODES.map((m) => LABEL[m]), 'mTLS vs plaintext', 'mTLS vs direct'],
        rows: KINDS.flatMap((k) => [
          [`${unitLabel[k]}, all processes (client, proxies, server)`, ...MODES.map((m) => sig(perUnit[k].all[m])), times(perUnit[k].all.mtls / perUnit[k].all.plaintext), times(perUnit[k].all.mtls / perUnit[k].all.direct)],
          [`${unitLabel[k]}, the two proxies`, ...MODES.map((m) => (m === 'direct' ? '–' : sig(perUnit[k].proxies[m]))), times(perUnit[k].proxies.mtls / perUnit[k].proxies.plaintext), '–'],
        ]),
      };
      const proxyRole: Record<string, string> = { a: 'a (client side, outbound 15001)', b: 'b (server side, inbound 15006)' };
      const proxyTable: Table = {
        title: 'Proxy processes (VmRSS in MiB; CPU as a share of one core, of which in the kernel; median over runs)',
        headers: ['proxy', 'RSS idle', 'RSS max, bulk', 'RSS max, latency', 'RSS max, new conns', 'RSS after runs', 'CPU, bulk', 'CPU, latency', 'CPU, new conns'],
        rows: MESHED.flatMap((mode) =>
          side(mode).topology.proxies.map((p) => [
            `${LABEL[mode]}: ${proxyRole[p.pod] ?? p.pod}`,
            mib(rssIdle[mode][p.pod]),
            mib(rssMax.throughput[mode][p.pod]),
            mib(rssMax.latency[mode][p.pod]),
            mib(rssMax.connrate[mode][p.pod]),
            mib(rssAfter[mode][p.pod]),
            cpuCell(throughput[mode], `proxy-${p.pod}`),
            cpuCell(latency[mode], `proxy-${p.pod}`),
            cpuCell(connrate[mode], `proxy-${p.pod}`),
          ]),
        ),
      };
      const cpuTable: Table = {
        title: `Where the CPU goes (share of one core, of which in the kernel; median over runs). Machine busy: share of all ${ctx.machine.cores} cores`,
        headers: ['runs', 'client', 'proxy a', 'proxy b', 'server', 'irq+softirq (any task)', 'anything else', 'machine busy'],
        rows: KINDS.flatMap((kind) =>
          MODES.map((m) => {
            const runs = runsOf[kind][m];
            return [`${KIND_LABEL[kind]}, ${LABEL[m]}`, cpuCell(runs, 'client'), cpuCell(runs, 'proxy-a'), cpuCell(runs, 'proxy-b'), cpuCell(runs, 'server'), pct(irqMedian(runs)), pct(otherMedian(runs)), pct(busyMedian(runs))];
          }),
        ),
      };
      const each = <T extends ClientOutput>(runs: Record<Mode, Array<Run<T>>>, i: number, f: (r: Run<T>) => string) => MODES.map((m) => f(runs[m][i]!)).join(' / ');
      const runsTable: Table = {
        title:
          'Every run (direct / plaintext / mTLS; in each round the order rotates: d p m, p m d, m d p, …). ' +
          `‡ other work took over ${DISTURBED_CORES} of a core during the run; * stopped at the time limit; †N failed connections`,
        headers: ['run', 'MB/s', 'p50 µs', 'p99 µs', 'conn/s'],
        rows: Array.from({ length: o.runs }, (_, i) => [
          String(i + 1),
          each(throughput, i, (r) => `${sig(r.out.mbPerS)}${mark(r)}`),
          each(latency, i, (r) => `${sig(r.out.us.p50)}${mark(r)}`),
          each(latency, i, (r) => `${sig(r.out.us.p99)}${mark(r)}`),
          each(connrate, i, (r) => `${sig(r.out.connPerS)}${mark(r)}${r.out.truncated ? '*' : ''}${r.out.failed > 0 ? `†${r.out.failed}` : ''}`),
        ]),
      };

      const warnings: string[] = [];
      for (const m of MODES) {
        if (truncatedRuns[m] > 0) warnings.push(`${truncatedRuns[m]} ${LABEL[m]} connection-rate run(s) hit the ${o.connSeconds} s limit before ${o.conns} connections (marked * above); their rate is over the connections that completed.`);
        if (failedConns[m] > 0) warnings.push(`${failedConns[m]} ${LABEL[m]} connection(s) failed in the connection-rate runs (marked † above; at most 1 % of a run is tolerated): ${JSON.stringify(connrate[m].map((r) => r.out.errors).filter((e) => Object.keys(e).length > 0))}.`);
      }
      const disturbedTotal = KINDS.reduce((sum, k) => sum + MODES.reduce((n, m) => n + disturbedRuns[k][m], 0), 0);
      if (disturbedTotal > 0) {
        warnings.push(
          `${disturbedTotal} of ${KINDS.length * MODES.length * o.runs} runs were disturbed: other work took more than ${DISTURBED_CORES} of a core during them (marked ‡ above; ` +
            KINDS.map((k) => `${KIND_LABEL[k]} ${MODES.map((m) => disturbedRuns[k][m]).join('/')}`).join(', ') +
            ' for direct/plaintext/mTLS). Their figures are lower than the machine can do; the medians resist a few, not many.',
        );
      }
      for (const m of MESHED) {
        const v = verification[m];
        if (Number(v.refusedA) + Number(v.refusedB) > 0) warnings.push(`The ${LABEL[m]} proxies refused ${Number(v.refusedA) + Number(v.refusedB)} connection(s) (meshlet_proxy_connections_refused_total).`);
      }
      const vA = verification.plaintext;
      const vM = verification.mtls;
      const ratioKey = (a: Mode, b: Mode) => `${a === 'mtls' ? 'Mtls' : 'Plaintext'}Vs${b === 'direct' ? 'Direct' : 'Plaintext'}`;
      const modeKey = (m: Mode) => m[0]!.toUpperCase() + m.slice(1);

      return {
        name: this.name,
        title: this.title,
        summary: {
          ...Object.fromEntries(MODES.map((m) => [`throughput${modeKey(m)}MBps`, tp[m].median])),
          ...Object.fromEntries(pairs.map(([a, b]) => [`throughputRatio${ratioKey(a, b)}`, ratio(tp, a, b)])),
          throughputGoal: THROUGHPUT_GOAL,
          throughputGoalMetPlaintext: ratio(tp, 'plaintext', 'direct') >= THROUGHPUT_GOAL,
          throughputGoalMetMtls: ratio(tp, 'mtls', 'direct') >= THROUGHPUT_GOAL,
          ...Object.fromEntries(MODES.flatMap((m) => [[`latencyP50${modeKey(m)}Us`, p50[m].median], [`latencyP99${modeKey(m)}Us`, p99[m].median]])),
          ...Object.fromEntries(pairs.flatMap(([a, b]) => [
            [`addedLatencyP50${ratioKey(a, b)}Us`, added(p50, a, b)],
            [`addedLatencyP99${ratioKey(a, b)}Us`, added(p99, a, b)],
            [`latencyP50Ratio${ratioKey(a, b)}`, ratio(p50, a, b)],
            [`latencyP99Ratio${ratioKey(a, b)}`, ratio(p99, a, b)],
          ])),
          ...Object.fromEntries(MODES.map((m) => [`connPerS${modeKey(m)}`, cps[m].median])),
          ...Object.fromEntries(pairs.map(([a, b]) => [`connRateRatio${ratioKey(a, b)}`, ratio(cps, a, b)])),
          ...Object.fromEntries(MESHED.flatMap((mode) => side(mode).topology.proxies.flatMap((p) => [
            [`proxyRssIdleMiB_${mode}_${p.pod}`, (rssIdle[mode][p.pod] ?? Number.NaN) / MiB],
            [`proxyRssLoadMiB_${mode}_${p.pod}`, Math.max(...KINDS.map((k) => rssMax[k][mode][p.pod] ?? 0)) / MiB],
          ]))),
          ...Object.fromEntries(MODES.flatMap((m) => [
            [`cpuSecondsPerGB${modeKey(m)}`, perUnit.throughput.all[m]],
            [`cpuUsPerExchange${modeKey(m)}`, perUnit.latency.all[m]],
            [`cpuMsPerConnection${modeKey(m)}`, perUnit.connrate.all[m]],
          ])),
          ...Object.fromEntries(MESHED.flatMap((m) => [
            [`proxyCpuSecondsPerGB${modeKey(m)}`, perUnit.throughput.proxies[m]],
            [`proxyCpuUsPerExchange${modeKey(m)}`, perUnit.latency.proxies[m]],
            [`proxyCpuMsPerConnection${modeKey(m)}`, perUnit.connrate.proxies[m]],
          ])),
          tlsProtocol: String(probe.protocol),
          tlsCipher: String(probe.cipher),
          tlsGroup: String(probe.group),
        },
        tables: [mainTable, cpuCostTable, proxyTable, cpuTable, runsTable],
        notes: [
          'Topology: three testbeds built in the same run and kept for all of it, each a client pod a and a server pod b (network namespaces, veth pairs on a bridge). ' +
            '"direct" has no rules and no proxies; the two meshed ones have the interception rules and `meshlet proxy` (UID 1337) in both pods, ' +
            'so the connection goes a:15001 → b:15006 → server. "plaintext" has no identities (opaque TCP between the sidecars); ' +
            '"mTLS" has identities from `meshlet ca` (ECDSA P-256, one root, no intermediate), each proxy sends traffic for the other pod over mTLS expecting its exact SPIFFE ID, and inbound is strict. App client and server run as UID 1000.',
          `mTLS as negotiated between the sidecars (a probe in pod a using the outbound proxy's own connector and identity, ${String(probe.count)} connections): ` +
            `${String(probe.protocol)}, ${String(probe.cipher)}, key exchange ${String(probe.group)}, server key ${String(probe.peerKey)}, ALPN ${String(probe.alpn)}, ` +
            `${Number(probe.resumed) === 0 ? 'no session resumed (every connection is a full handshake)' : `${String(probe.resumed)} of ${String(probe.count)} sessions resumed`}, ` +
            `${String(probe.ticketsPerConnection)} session ticket(s) sent by the server per connection; ` +
            `sequential handshake (TCP connect + TLS, cold process) p50 ${sig((probe.handshakeUs as { p50: number }).p50 / 1000)} ms.`,
          `Throughput: ${o.sizeBytes / 1e6} MB on one connection per run; the client writes ${o.chunkBytes / 1024} KiB buffers (allocated once, never hashed), half-closes, and stops the clock when the server reports the byte count. MB = 10^6 bytes.`,
          `Latency: one connection per run, ${o.pings} sequential ${o.msgBytes}-byte exchanges after 200 unrecorded ones, each timed with process.hrtime.bigint(); p50/p99 are nearest-rank per run, then the median across runs. TCP_NODELAY everywhere. Differences are "+µs (×ratio)".`,
          `New connections: per run ${o.conns} connections after ${CONNRATE_WARMUP} unrecorded ones, ${o.concurrency} open at a time; each connects, sends ${o.msgBytes} bytes, reads ${o.msgBytes} bytes and the server's close; ` +
            `the rate is completed connections / time from the first to the last. No run may take more than ${o.connSeconds} s (it then stops starting connections). ` +
            'The server closes first, so TIME_WAIT stays on its side and no client runs out of ephemeral ports. Through the mTLS pair each connection is a full TLS 1.3 handshake between the sidecars (the outbound connector keeps no session cache).',
          'Rounds of one run per mode, the order rotating each round; one unrecorded warm-up run of each kind and mode first. RSS is sampled every 50 ms during each meshed run. ' +
            '"RSS idle" is read 1 s after all proxies reported ready, before any traffic.',
          `Verified through the proxies' own counters (meshlet_tcp_connections_opened_total and meshlet_tcp_received_bytes_total by connection_security_policy): ` +
            `plaintext ${vA.outboundConnections} outbound / ${vA.inboundConnections} inbound connections as "none", ${sig(Number(vA.outboundReceivedBytes) / 1e6, 4)} MB / ${sig(Number(vA.inboundReceivedBytes) / 1e6, 4)} MB; ` +
            `mTLS ${vM.outboundConnections} outbound / ${vM.inboundConnections} inbound as "mutual_tls", ${sig(Number(vM.outboundReceivedBytes) / 1e6, 4)} MB / ${sig(Number(vM.inboundReceivedBytes) / 1e6, 4)} MB ` +
            `(expected at least ${vM.expectedOutboundConnections} / ${vM.expectedInboundConnections}, the probe's connections reaching b only).`,
          `Throughput goal (meshlet vs direct ≥ ${THROUGHPUT_GOAL}): plaintext ${goal(ratio(tp, 'plaintext', 'direct'))}, mTLS ${goal(ratio(tp, 'mtls', 'direct'))}.`,
          ...warnings.map((w) => `**Warning:** ${w}`),
        ],
        data: {
          config: {
            sinkPort: SINK_PORT,
            echoPort: ECHO_PORT,
            oncePort: ONCE_PORT,
            identities: { client: ids.client.spiffeId, server: ids.server.spiffeId },
            warmup: { throughputBytes: Math.min(o.sizeBytes, WARMUP_BYTES), pings: Math.min(o.pings, 1000), inRunWarmupPings: 200, conns: Math.min(o.conns, 300), inRunWarmupConns: CONNRATE_WARMUP },
          },
          throughput: { runs: throughput, mbPerS: tp, ratios: Object.fromEntries(pairs.map(([a, b]) => [`${a}/${b}`, ratio(tp, a, b)])) },
          latency: {
            runs: latency,
            p50Us: p50,
            p99Us: p99,
            added: Object.fromEntries(pairs.map(([a, b]) => [`${a}-${b}`, { p50Us: added(p50, a, b), p99Us: added(p99, a, b) }])),
            ratios: Object.fromEntries(pairs.map(([a, b]) => [`${a}/${b}`, { p50: ratio(p50, a, b), p99: ratio(p99, a, b) }])),
          },
          connrate: { runs: connrate, connPerS: cps, ratios: Object.fromEntries(pairs.map(([a, b]) => [`${a}/${b}`, ratio(cps, a, b)])), failed: failedConns, truncatedRuns },
          disturbedRuns,
          cpuPerUnit: perUnit,
          tlsProbe: probe,
          proxies: {
            pids: Object.fromEntries(MESHED.map((m) => [m, Object.fromEntries(proxyPids[m])])),
            rssBytes: { idle: rssIdle, max: rssMax, afterRuns: rssAfter },
          },
          verification,
        },
      };
    } finally {
      for (const topology of built) await topology.testbed.destroy();
      store.remove();
    }
  },
};
