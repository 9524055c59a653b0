// meshlet benchmarks: `npm run bench` (full run) or `npm run bench -- --quick` (smoke check).
// Runs each scenario, prints the markdown report on stdout, and writes JSON + markdown to
// bench/results/. Needs root, iproute2 and iptables (it builds pods as network namespaces).
// See docs/bench.md.
import { parseArgs } from 'node:util';
import { testbedUnavailable } from '../src/testbed/netns.ts';
import { l4Scenario } from './l4.ts';
import { l7Scenario } from './l7.ts';
import { machineInfo } from './lib/machine.ts';
import { busyFraction, systemCpu } from './lib/procfs.ts';
import { renderMarkdown, writeReport, type BenchReport } from './report.ts';
import type { BenchOptions, Scenario } from './scenario.ts';

const SCENARIOS: Scenario[] = [l4Scenario, l7Scenario];

const USAGE = `usage: node bench/run.ts [options]

  --quick              smoke check: 3 runs, 100 MB, 2000 exchanges, 300 connections;
                       l7: 1 s per h2load run, 1000 requests per fixed-rate run
                       (not written to latest.*)
  --runs N             measured runs per mode; the median is reported (default 9)
  --size SIZE          bulk transfer size: 200 (MB), 200MB, 1GB, 512MiB (default 1GB)
  --chunk SIZE         write size of the bulk client (default 128KiB)
  --pings N            request/response exchanges per latency run (default 10000)
  --msg BYTES          size of each request and response (default 64)
  --conns N            new connections per connection-rate run (default 1000)
  --concurrency N      connections open at once in those runs (default 16)
  --conn-seconds S     time limit of one connection-rate run; no new connection starts
                       after it and the rate is over what completed (default 20)
  --ipv6               client reaches the server over IPv6 (default IPv4)
  --only NAME[,NAME]   scenarios to run (${SCENARIOS.map((s) => s.name).join(', ')})
  --l7-modes M[,M]     the l7 scenario's modes to run (e.g. telemetry-on,telemetry-off):
                       a short comparison with a reduced report, no targets
  --wait-quiet SECONDS on a shared machine: first wait up to this long for the CPUs to be
                       idle (under 15 % busy for 3 s in a row), then before each round of
                       runs up to 10 s (120 s in all) for a quiet 0.3 s (under 20 % busy);
                       default 0, don't wait
  --unpinned           l7: leave every process to the scheduler instead of h2load and the
                       latency client on one core and each mode's pods (app, proxies) on
                       another; the same pair then moves more from start to start
  -h, --help`;

/** "200" (MB), "200MB", "1.5GB", "128KiB", "64KB", "1000B". Decimal units are 10^3 multiples. */
export function parseSize(text: string, bareUnit: number): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmg]i?b?|b)?$/i.exec(text.trim());
  if (!m) throw new Error(`not a size: ${JSON.stringify(text)} (try 200MB, 1GB, 128KiB)`);
  const value = Number(m[1]);
  const unit = (m[2] ?? '').toLowerCase().replace(/b$/, '');
  const scale: Record<string, number> = { '': bareUnit, k: 1e3, m: 1e6, g: 1e9, ki: 2 ** 10, mi: 2 ** 20, gi: 2 ** 30 };
  if (m[2]?.toLowerCase() === 'b') return Math.round(value);
  return Math.round(value * scale[unit]!);
}

function positiveInt(name: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got ${JSON.stringify(text)}`);
  return n;
}

function parseOptions(argv: string[]): { options: BenchOptions; only: string[] | undefined; waitQuietS: number } | undefined {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      quick: { type: 'boolean', default: false },
      runs: { type: 'string' },
      size: { type: 'string' },
      chunk: { type: 'string' },
      pings: { type: 'string' },
      msg: { type: 'string' },
      conns: { type: 'string' },
      concurrency: { type: 'string' },
      'conn-seconds': { type: 'string' },
      ipv6: { type: 'boolean', default: false },
      only: { type: 'string' },
      'l7-modes': { type: 'string' },
      'wait-quiet': { type: 'string' },
      unpinned: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return undefined;
  }
  const quick = values.quick;
  const options: BenchOptions = {
    quick,
    runs: values.runs ? positiveInt('runs', values.runs) : quick ? 3 : 9,
    sizeBytes: values.size ? parseSize(values.size, 1e6) : quick ? 100e6 : 1e9,
    chunkBytes: values.chunk ? parseSize(values.chunk, 1) : 128 * 1024,
    pings: values.pings ? positiveInt('pings', values.pings) : quick ? 2000 : 10_000,
    msgBytes: values.msg ? positiveInt('msg', values.msg) : 64,
    conns: values.conns ? positiveInt('conns', values.conns) : quick ? 300 : 1000,
    concurrency: values.concurrency ? positiveInt('concurrency', values.concurrency) : 16,
    connSeconds: values['conn-seconds'] ? positiveInt('conn-seconds', values['conn-seconds']) : 20,
    family: values.ipv6 ? 6 : 4,
    pinned: !values.unpinned,
    ...(values['l7-modes'] ? { l7Modes: values['l7-modes'].split(',').map((s) => s.trim()).filter(Boolean) } : {}),
  };
  if (options.sizeBytes < 1 || options.chunkBytes < 1) throw new Error('--size and --chunk must be at least 1 byte');
  const only = values.only?.split(',').map((s) => s.trim()).filter(Boolean);
  for (const name of only ?? []) {
    if (!SCENARIOS.some((s) => s.name === name)) throw new Error(`unknown scenario ${JSON.stringify(name)} (have: ${SCENARIOS.map((s) => s.name).join(', ')})`);
  }
  const waitQuietS = values['wait-quiet'] === undefined ? 0 : Number(values['wait-quiet']);
  if (!Number.isFinite(waitQuietS) || waitQuietS < 0) throw new Error(`--wait-quiet must be a number of seconds, got ${JSON.stringify(values['wait-quiet'])}`);
  return { options, only, waitQuietS };
}

/** With --wait-quiet, each round of runs waits for the machine to be under this share busy... */
const ROUND_QUIET = 0.2;
/** ...for at most this long, */
const ROUND_MAX_WAIT_S = 10;
/** ...and this long over all rounds. */
const ROUNDS_MAX_WAIT_S = 120;

/** Share of all cores busy over `ms`. */
async function machineBusy(ms: number): Promise<number> {
  const from = systemCpu();
  await new Promise((r) => setTimeout(r, ms));
  return busyFraction(from, systemCpu());
}

async function main(): Promise<number> {
  let parsed;
  try {
    parsed = parseOptions(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (!parsed) return 0;
  const why = testbedUnavailable();
  if (why) {
    process.stderr.write(`bench: cannot build pods here: ${why}\n`);
    return 1;
  }
  const { options, only, waitQuietS } = parsed;
  const started = new Date();
  const machine = machineInfo();
  const log = (message: string) => process.stderr.write(`[${((Date.now() - started.getTime()) / 1000).toFixed(1).padStart(6)} s] ${message}\n`);
  if (waitQuietS > 0) {
    const deadline = Date.now() + waitQuietS * 1000;
    let quietFor = 0;
    log(`waiting up to ${waitQuietS} s for the machine to be quiet`);
    while (quietFor < 3 && Date.now() < deadline) quietFor = (await machineBusy(1000)) < 0.15 ? quietFor + 1 : 0;
    if (quietFor < 3) log('the machine did not get quiet; measuring anyway');
  }
  // Before each round of runs (--wait-quiet): wait for a quiet 0.3 s, a few seconds at most.
  const rounds = { count: 0, waitedS: 0, notQuiet: 0, quietThreshold: ROUND_QUIET, maxWaitS: ROUND_MAX_WAIT_S, maxTotalWaitS: ROUNDS_MAX_WAIT_S };
  const settle = async () => {
    if (waitQuietS === 0) return;
    const start = Date.now();
    const limitMs = Math.min(ROUND_MAX_WAIT_S, ROUNDS_MAX_WAIT_S - rounds.waitedS) * 1000;
    let busy = await machineBusy(300);
    while (busy > ROUND_QUIET && Date.now() - start < limitMs) busy = await machineBusy(300);
    rounds.count++;
    rounds.waitedS += (Date.now() - start) / 1000;
    if (busy > ROUND_QUIET) rounds.notQuiet++;
  };
  const busyBefore = await machineBusy(1000);
  if (busyBefore > 0.1) log(`warning: the machine is already ${Math.round(busyBefore * 100)} % busy; figures will be skewed`);
  const scenarios = SCENARIOS.filter((s) => !only || only.includes(s.name));
  const results = [];
  for (const scenario of scenarios) {
    log(`scenario ${scenario.name}: ${scenario.title}`);
    results.push(await scenario.run({ options, machine, log, settle }));
  }
  const busyAfter = await machineBusy(1000);
  const finished = new Date();
  const report: BenchReport = {
    schema: 1,
    startedAt: started.toISOString(),
    finishedAt: finished.toISOString(),
    durationS: (finished.getTime() - started.getTime()) / 1000,
    command: ['node', 'bench/run.ts', ...process.argv.slice(2)].join(' '),
    options,
    machine,
    background: { busyBefore, busyAfter, ...(waitQuietS > 0 ? { rounds } : {}) },
    scenarios: results,
  };
  const files = writeReport(report);
  process.stdout.write(`${renderMarkdown(report)}\n`);
  log(`wrote ${files.json} and ${files.md}`);
  return 0;
}

// Ctrl-C: exit through process.exit, so each testbed's exit hook deletes its namespaces
// and kills its processes (a signal death would leave them behind).
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    process.stderr.write(`bench: ${signal}, cleaning up\n`);
    process.exit(130);
  });
}

process.exitCode = await main();
