// L4 scenario: opaque TCP (no mTLS yet) between a client in pod a and a server in pod b,
// direct vs through both sidecars (a's outbound listener, b's inbound listener).
//
//   throughput  one connection, a bulk transfer client→server, MB/s (10^6 bytes/s) seen by
//               the client from 'connect' until the server confirms every byte.
//   latency     one connection, N sequential small request/response exchanges; p50/p99
//               of each run's round trips.
//   proxies     VmRSS of both proxy processes idle (started, before any traffic) and the
//               maximum while under load; CPU each process used during the bulk runs.
//
// Runs interleave direct and meshlet (d, m, d, m, ...) so drift hits both alike; one
// unrecorded warm-up run of each kind comes first (JIT, page cache, conntrack).
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { APP_UID } from '../src/testbed/netns.ts';
import { CpuMeter, rssBytes, RssSampler } from './lib/procfs.ts';
import { median, sig, signed, spread, type Spread } from './lib/stats.ts';
import { counterSum, createTopology, scrapeMetrics, startAppServer, type Mode, type Topology } from './lib/topology.ts';
import type { BenchContext, Scenario, ScenarioResult, Table } from './scenario.ts';

const APP = path.join(path.dirname(fileURLToPath(import.meta.url)), 'apps/l4-app.ts');
const SINK_PORT = 9000;
const ECHO_PORT = 9001;
const MODES: Mode[] = ['direct', 'meshlet'];
const THROUGHPUT_GOAL = 0.8;
const MiB = 2 ** 20;

/** CPU time / wall time of the measured window, per process (1 = one core busy), split user/kernel. */
type CpuShare = Record<string, { user: number; system: number }>;

interface ThroughputRun {
  mbPerS: number;
  elapsedS: number;
  cpu: CpuShare;
  /** Fraction of all the machine's cores busy during the run. */
  machineBusy: number;
  /** Fraction of all the machine's cores in irq/softirq context (network receive work) during the run. */
  machineIrq: number;
}

interface LatencyRun {
  us: { min: number; p50: number; p90: number; p99: number; p999: number; max: number; mean: number };
  elapsedS: number;
  cpu: CpuShare;
  machineBusy: number;
  machineIrq: number;
}

interface ClientOutput {
  ok: boolean;
  error?: string;
  elapsedNs: number;
  cpu: { userUs: number; systemUs: number; machineBusy: number; machineIrq: number };
}

interface Side {
  topology: Topology;
  /** Pid of the app server's node process. */
  serverPid: number;
  host: string;
}

async function runClient<T extends ClientOutput>(side: Side, args: string[]): Promise<T> {
  // Spawned through the testbed, so an interrupted run kills it with the pods.
  const proc = side.topology.client.node([APP, ...args, '--host', side.host], { uid: APP_UID });
  // The client gives up on its own after --timeout (120 s by default).
  await new Promise((resolve) => proc.child.once('close', resolve));
  const { stdout, stderr } = proc.output();
  const code = proc.child.exitCode ?? proc.child.signalCode;
  const line = stdout.trim().split('\n').at(-1) ?? '';
  let out: T;
  try {
    out = JSON.parse(line) as T;
  } catch {
    throw new Error(`${side.topology.mode} client ${args[0]} printed no result (exit ${code}): ${stderr.trim() || stdout.trim()}`);
  }
  if (!out.ok || code !== 0) throw new Error(`${side.topology.mode} client ${args[0]} failed: ${out.error ?? `exit ${code}`}`);
  return out;
}

/** Runs one client with the side's processes metered; CPU shares are over the client's measured window. */
async function measured<T extends ClientOutput>(
  side: Side,
  args: string[],
  rss?: RssSampler,
): Promise<{ out: T; cpu: CpuShare; machineBusy: number; machineIrq: number }> {
  const pids = new Map<string, number>([['server', side.serverPid]]);
  for (const p of side.topology.proxies) pids.set(`proxy-${p.pod}`, p.pid);
  const meter = new CpuMeter(pids);
  rss?.start();
  let out: T;
  try {
    out = await runClient<T>(side, args);
  } finally {
    rss?.stop();
  }
  const windowS = out.elapsedNs / 1e9;
  const cpu: CpuShare = { client: { user: out.cpu.userUs / 1e6 / windowS, system: out.cpu.systemUs / 1e6 / windowS } };
  // The meter spans the client's start-up too, when the proxies and the server are idle,
  // so dividing by the measured window is right for them. The client measures its own
  // CPU and the machine's (/proc/stat) over exactly the window.
  for (const [name, t] of meter.read()) cpu[name] = { user: t.user / windowS, system: t.system / windowS };
  return { out, cpu, machineBusy: out.cpu.machineBusy, machineIrq: out.cpu.machineIrq };
}

function proxyRss(topology: Topology): Record<string, number> {
  return Object.fromEntries(topology.proxies.map((p) => [p.pod, rssBytes(p.pid) ?? Number.NaN]));
}

function maxInto(target: Record<string, number>, sample: Map<string, number>): void {
  for (const [name, value] of sample) target[name] = Math.max(target[name] ?? 0, value);
}

const mib = (bytes: number | undefined) => (bytes === undefined ? 'n/a' : sig(bytes / MiB, 3));
const pct = (share: number | undefined) => (share === undefined || !Number.isFinite(share) ? '–' : `${Math.round(share * 100)} %`);
/** "73 % (41 % sys)" */
const pctSplit = (total: number, system: number) => (Number.isFinite(total) ? `${pct(total)} (${pct(system)} sys)` : '–');

export const l4Scenario: Scenario = {
  name: 'l4',
  title: 'L4: opaque TCP, direct vs through both sidecars (no mTLS)',

  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const o = ctx.options;
    const sides = new Map<Mode, Side>();
    const built: Topology[] = [];
    try {
      for (const [i, mode] of MODES.entries()) {
        ctx.log(`l4: building the ${mode} pods`);
        const topology = await createTopology(mode, { subnet: 44 + i, interception: o.interception });
        built.push(topology);
        const server = await startAppServer(topology.server, [APP, 'server', '--sink-port', String(SINK_PORT), '--echo-port', String(ECHO_PORT)]);
        sides.set(mode, { topology, serverPid: server.pid, host: o.family === 4 ? topology.server.ipv4 : topology.server.ipv6 });
      }
      const meshed = sides.get('meshlet')!;
      // Let start-up allocation settle before calling the proxies idle.
      await new Promise((r) => setTimeout(r, 1000));
      const rssIdle = proxyRss(meshed.topology);

      const throughputArgs = (size: number) => ['throughput', '--port', String(SINK_PORT), '--size', String(size), '--chunk', String(o.chunkBytes)];
      const latencyArgs = (count: number) => ['latency', '--port', String(ECHO_PORT), '--count', String(count), '--msg', String(o.msgBytes), '--warmup', '200'];

      ctx.log('l4: warm-up (not recorded)');
      for (const mode of MODES) {
        await runClient(sides.get(mode)!, throughputArgs(o.sizeBytes));
        await runClient(sides.get(mode)!, latencyArgs(Math.min(o.pings, 1000)));
      }

      const proxyPids = new Map(meshed.topology.proxies.map((p) => [p.pod, p.pid]));
      const rssThroughput: Record<string, number> = {};
      const rssLatency: Record<string, number> = {};
      const throughput: Record<Mode, ThroughputRun[]> = { direct: [], meshlet: [] };
      const latency: Record<Mode, LatencyRun[]> = { direct: [], meshlet: [] };

      for (let run = 1; run <= o.runs; run++) {
        for (const mode of MODES) {
          const sampler = mode === 'meshlet' ? new RssSampler(proxyPids) : undefined;
          const m = await measured<ClientOutput & { mbPerS: number }>(sides.get(mode)!, throughputArgs(o.sizeBytes), sampler);
          if (sampler) maxInto(rssThroughput, sampler.stop());
          throughput[mode].push({ mbPerS: m.out.mbPerS, elapsedS: m.out.elapsedNs / 1e9, cpu: m.cpu, machineBusy: m.machineBusy, machineIrq: m.machineIrq });
          ctx.log(`l4: throughput run ${run}/${o.runs} ${mode}: ${sig(m.out.mbPerS)} MB/s (machine ${pct(m.machineBusy)} busy)`);
        }
      }
      for (let run = 1; run <= o.runs; run++) {
        for (const mode of MODES) {
          const sampler = mode === 'meshlet' ? new RssSampler(proxyPids) : undefined;
          const m = await measured<ClientOutput & { us: LatencyRun['us'] }>(sides.get(mode)!, latencyArgs(o.pings), sampler);
          if (sampler) maxInto(rssLatency, sampler.stop());
          latency[mode].push({ us: m.out.us, elapsedS: m.out.elapsedNs / 1e9, cpu: m.cpu, machineBusy: m.machineBusy, machineIrq: m.machineIrq });
          ctx.log(`l4: latency run ${run}/${o.runs} ${mode}: p50 ${sig(m.out.us.p50)} µs, p99 ${sig(m.out.us.p99)} µs`);
        }
      }
      // Every meshed client made one connection: the runs and one warm-up of each kind.
      const meshedConnections = 2 * (o.runs + 1);
      const rssAfter = proxyRss(meshed.topology);

      // Proof that the meshed figures went through both proxies: their own byte counters.
      const metricsA = await scrapeMetrics(meshed.topology.client);
      const metricsB = await scrapeMetrics(meshed.topology.server);
      const expectedBytes = (o.runs + 1) * o.sizeBytes;
      const verification = {
        outboundConnections: counterSum(metricsA, 'meshlet_tcp_connections_opened_total', { reporter: 'source' }),
        inboundConnections: counterSum(metricsB, 'meshlet_tcp_connections_opened_total', { reporter: 'destination' }),
        outboundReceivedBytes: counterSum(metricsA, 'meshlet_tcp_received_bytes_total', { reporter: 'source' }),
        inboundReceivedBytes: counterSum(metricsB, 'meshlet_tcp_received_bytes_total', { reporter: 'destination' }),
        expectedConnections: meshedConnections,
        expectedBytesAtLeast: expectedBytes,
        ok: false,
      };
      verification.ok =
        verification.outboundConnections >= meshedConnections &&
        verification.inboundConnections >= meshedConnections &&
        verification.outboundReceivedBytes >= expectedBytes &&
        verification.inboundReceivedBytes >= expectedBytes;
      if (!verification.ok) {
        throw new Error(`the meshed traffic did not go through both proxies: ${JSON.stringify(verification)}`);
      }

      // ---- figures
      const tp = Object.fromEntries(MODES.map((m) => [m, spread(throughput[m].map((r) => r.mbPerS))])) as Record<Mode, Spread>;
      const p50 = Object.fromEntries(MODES.map((m) => [m, spread(latency[m].map((r) => r.us.p50))])) as Record<Mode, Spread>;
      const p99 = Object.fromEntries(MODES.map((m) => [m, spread(latency[m].map((r) => r.us.p99))])) as Record<Mode, Spread>;
      const ratio = tp.meshlet.median / tp.direct.median;
      const addedP50 = p50.meshlet.median - p50.direct.median;
      const addedP99 = p99.meshlet.median - p99.direct.median;
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
      const otherMedian = (runs: Array<{ machineBusy: number; cpu: CpuShare }>) =>
        median(runs.map((r) => Math.max(0, r.machineBusy * ctx.machine.cores - Object.values(r.cpu).reduce((sum, c) => sum + c.user + c.system, 0))));
      const range = (s: Spread, digits = 3) => `${sig(s.median, digits)} (${sig(s.min, digits)}–${sig(s.max, digits)})`;

      const mainTable: Table = {
        title: `Median of ${o.runs} run${o.runs === 1 ? '' : 's'} (min–max)`,
        headers: ['figure', 'direct', 'meshlet', 'meshlet vs direct'],
        rows: [
          [`throughput, ${o.sizeBytes / 1e6} MB client→server (MB/s)`, range(tp.direct), range(tp.meshlet), `×${ratio.toFixed(2)} (goal ≥ ${THROUGHPUT_GOAL}: ${ratio >= THROUGHPUT_GOAL ? 'met' : 'not met'})`],
          [`latency p50, ${o.msgBytes} B request/response (µs)`, range(p50.direct), range(p50.meshlet), signed(addedP50, 'µs')],
          [`latency p99, ${o.msgBytes} B request/response (µs)`, range(p99.direct), range(p99.meshlet), signed(addedP99, 'µs')],
        ],
      };
      const proxyRole: Record<string, string> = { a: 'a (client side, outbound 15001)', b: 'b (server side, inbound 15006)' };
      const proxyTable: Table = {
        title: 'Proxy processes (VmRSS in MiB; CPU as a share of one core, median over runs)',
        headers: ['proxy', 'RSS idle', 'RSS max, bulk runs', 'RSS max, latency runs', 'RSS after runs', 'CPU, bulk runs', 'CPU, latency runs'],
        rows: meshed.topology.proxies.map((p) => [
          proxyRole[p.pod] ?? p.pod,
          mib(rssIdle[p.pod]),
          mib(rssThroughput[p.pod]),
          mib(rssLatency[p.pod]),
          mib(rssAfter[p.pod]),
          cpuCell(throughput.meshlet, `proxy-${p.pod}`),
          cpuCell(latency.meshlet, `proxy-${p.pod}`),
        ]),
      };
      const cpuTable: Table = {
        title: `Where the CPU goes (share of one core, of which in the kernel; median over runs). Machine busy: share of all ${ctx.machine.cores} cores`,
        headers: ['runs', 'client', 'proxy a', 'proxy b', 'server', 'irq+softirq (any task)', 'anything else', 'machine busy'],
        rows: (['throughput', 'latency'] as const).flatMap((kind) =>
          MODES.map((m) => {
            const runs = kind === 'throughput' ? throughput[m] : latency[m];
            return [`${kind === 'throughput' ? 'bulk' : 'latency'}, ${m}`, cpuCell(runs, 'client'), cpuCell(runs, 'proxy-a'), cpuCell(runs, 'proxy-b'), cpuCell(runs, 'server'), pct(irqMedian(runs)), pct(otherMedian(runs)), pct(busyMedian(runs))];
          }),
        ),
      };
      const runsTable: Table = {
        title: 'Every run',
        headers: ['run', 'direct MB/s', 'meshlet MB/s', 'direct p50 / p99 µs', 'meshlet p50 / p99 µs'],
        rows: Array.from({ length: o.runs }, (_, i) => [
          String(i + 1),
          sig(throughput.direct[i]!.mbPerS),
          sig(throughput.meshlet[i]!.mbPerS),
          `${sig(latency.direct[i]!.us.p50)} / ${sig(latency.direct[i]!.us.p99)}`,
          `${sig(latency.meshlet[i]!.us.p50)} / ${sig(latency.meshlet[i]!.us.p99)}`,
        ]),
      };

      return {
        name: this.name,
        title: this.title,
        summary: {
          throughputDirectMBps: tp.direct.median,
          throughputMeshletMBps: tp.meshlet.median,
          throughputRatio: ratio,
          throughputGoal: THROUGHPUT_GOAL,
          throughputGoalMet: ratio >= THROUGHPUT_GOAL,
          latencyP50DirectUs: p50.direct.median,
          latencyP50MeshletUs: p50.meshlet.median,
          addedLatencyP50Us: addedP50,
          latencyP99DirectUs: p99.direct.median,
          latencyP99MeshletUs: p99.meshlet.median,
          addedLatencyP99Us: addedP99,
          ...Object.fromEntries(meshed.topology.proxies.flatMap((p) => [
            [`proxyRssIdleMiB_${p.pod}`, (rssIdle[p.pod] ?? Number.NaN) / MiB],
            [`proxyRssLoadMiB_${p.pod}`, Math.max(rssThroughput[p.pod] ?? 0, rssLatency[p.pod] ?? 0) / MiB],
          ])),
        },
        tables: [mainTable, proxyTable, cpuTable, runsTable],
        notes: [
          'Topology: two testbeds built in the same run, each a client pod a and a server pod b (network namespaces, veth pairs on a bridge). ' +
            '"direct" has no rules and no proxies; "meshlet" has the interception rules and `meshlet proxy` (UID 1337) in both pods, ' +
            'so the connection goes a:15001 → b:15006 → server. App client and server run as UID 1000.',
          `Throughput: one connection per run; the client writes ${o.chunkBytes / 1024} KiB buffers (allocated once, never hashed), half-closes, and stops the clock when the server reports the byte count. MB = 10^6 bytes.`,
          `Latency: one connection per run, ${o.pings} sequential ${o.msgBytes}-byte exchanges after 200 unrecorded ones, each timed with process.hrtime.bigint(); p50/p99 are nearest-rank per run, then the median across runs. TCP_NODELAY everywhere.`,
          'Runs alternate direct and meshlet (d, m, d, m, …) after one unrecorded warm-up of each. RSS is sampled every 50 ms during each meshed run. ' +
            '"RSS idle" is read 1 s after both proxies reported ready, before any traffic.',
          `Verified through the proxies' own counters: ${verification.outboundConnections} outbound and ${verification.inboundConnections} inbound connections, ` +
            `${sig(verification.outboundReceivedBytes / 1e6, 4)} MB / ${sig(verification.inboundReceivedBytes / 1e6, 4)} MB received.`,
        ],
        data: {
          config: { sinkPort: SINK_PORT, echoPort: ECHO_PORT, warmup: { throughputBytes: o.sizeBytes, pings: Math.min(o.pings, 1000), inRunWarmupPings: 200 } },
          throughput: { runs: throughput, mbPerS: tp, ratio },
          latency: { runs: latency, p50Us: p50, p99Us: p99, addedP50Us: addedP50, addedP99Us: addedP99 },
          proxies: {
            pids: Object.fromEntries(proxyPids),
            rssBytes: { idle: rssIdle, maxDuringThroughput: rssThroughput, maxDuringLatency: rssLatency, afterRuns: rssAfter },
          },
          verification,
        },
      };
    } finally {
      for (const topology of built) await topology.testbed.destroy();
    }
  },
};
