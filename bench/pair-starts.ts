// Two or more variants of the meshlet plaintext pair compared over fresh starts: for each
// start the pods are built, the pair started, warmed up and measured, and everything torn
// down again. The full L7 run (bench/l7.ts) starts each mode's pair once and measures its
// runs on the same processes, so its spread is that of one start; one start can differ
// from the next by more than a few per cent (V8's optimisation is not the same from one
// process to the next, and a VM's speed moves from minute to minute), which is the size
// of the effects the variants are for (what metrics and tracing, or the resilience
// layers, cost). Starts alternate between the variants, rotating their order each round.
//
//   node bench/pair-starts.ts [--modes telemetry-off,telemetry-on] [--starts 6] [--runs 3] [--seconds 4] [--warm SECONDS] [--unpinned] [--interleaved]
//
// --interleaved: each round starts every variant's pair at once (pods of their own), warms
// each, then measures them in turns, one run of each per cycle (--runs cycles), so that
// the runs compared are seconds apart rather than minutes. This VM has spells, a minute or
// more long, in which every process runs up to twice as slowly (perf's cpu-clock samples
// per request grew alike in every function, the kernel's too); one fresh start per mode
// at a time then compares a variant's slow spell with another's normal one. The summary
// adds the median over all cycles of each mode's figure against the first mode's in the
// same cycle.
//
// h2load runs on one core and the pods' processes (app, proxies, trace sinks) on the other
// (bench/lib/pinning.ts); --unpinned leaves them to the scheduler, which places them
// differently at every start.
//
// --warm: how long the unrecorded first run lasts (default: --seconds). V8 takes 10 to 30
// seconds of full load to finish optimising a pair (the longest with tracing at 1 %, whose
// span code runs for one request in a hundred; bench/l7.ts), so short warm-ups compare
// variants partly by how fast they are compiled.
//
// Modes are the l7 scenario's plaintext variants: plaintext (the defaults), plaintext-off
// (resilience off), telemetry-on (metrics and tracing at 1 %, an OTLP sink in each pod),
// telemetry-off (metrics off, no tracing); and tracing-ratio-0 (telemetry-on at a ratio
// of 0: no span, only the tracing layer's reading of each request) and tracing-always
// (every request sampled: a span's cost, made and exported).
// Each start checks the path as the l7 scenario does, then reports the median of its runs
// (h2load --h1, 16 keep-alive connections, 1 KiB responses) in requests/s and in CPU per
// request of the two proxies together; the summary is the median over the starts of each
// mode, each mode against the first, and in how many rounds the mode's CPU per request
// was above the first's. Needs root, nghttp2-client and `npm run dist`, as `npm run bench`.
import { parseArgs } from 'node:util';
import { h2loadRun, preflight, type Side } from './l7.ts';
import { median, sig } from './lib/stats.ts';
import { pinLoadGenerator, pinning, pinToPods } from './lib/pinning.ts';
import { parseVariants, startVariantPair, type Variant } from './lib/variants.ts';

/** Second octet of the pods' addresses: one the l7 and l4 scenarios do not use. */
const SUBNET = 61;

const { values } = parseArgs({
  options: {
    modes: { type: 'string', default: 'telemetry-off,telemetry-on' },
    starts: { type: 'string', default: '6' },
    runs: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '4' },
    warm: { type: 'string' },
    unpinned: { type: 'boolean', default: false },
    interleaved: { type: 'boolean', default: false },
  },
});
const modes = parseVariants(values.modes);
const positive = (name: string, text: string) => {
  const n = Number(text);
  if (!(n > 0)) throw new Error(`--${name} must be a positive number, got ${JSON.stringify(text)}`);
  return n;
};
const starts = positive('starts', values.starts);
const runs = positive('runs', values.runs);
const seconds = positive('seconds', values.seconds);
const warm = values.warm === undefined ? seconds : positive('warm', values.warm);
const pin = values.unpinned ? undefined : pinning();
if (pin) pinLoadGenerator(pin);

interface Start {
  mode: Variant;
  round: number;
  reqPerS: number;
  cpuUsPerReq: number;
}

/** One measured run of `side`: requests/s and the CPU of both proxies per request. */
async function measureRun(side: Side, runSeconds: number): Promise<{ reqPerS: number; cpuUsPerReq: number }> {
  const run = await h2loadRun(side, 'h1', runSeconds, '');
  let proxyCpuS = 0;
  for (const [name, share] of Object.entries(run.cpu)) if (name.startsWith('proxy-')) proxyCpuS += (share.user + share.system) * run.elapsedS;
  return { reqPerS: run.value, cpuUsPerReq: (proxyCpuS * 1e6) / run.requests };
}

async function measureStart(mode: Variant, round: number): Promise<Start> {
  const { topology, side, podPids } = await startVariantPair(mode, SUBNET);
  try {
    if (pin) pinToPods(pin, podPids);
    await preflight(side, []);
    // One unrecorded run first: the proxies' code is optimised under load.
    await h2loadRun(side, 'h1', warm, '');
    const measured: { reqPerS: number; cpuUsPerReq: number }[] = [];
    for (let i = 0; i < runs; i++) measured.push(await measureRun(side, seconds));
    return { mode, round, reqPerS: median(measured.map((m) => m.reqPerS)), cpuUsPerReq: median(measured.map((m) => m.cpuUsPerReq)) };
  } finally {
    await topology.testbed.destroy();
  }
}

/** Each cycle's figures of each mode against the first mode's in the same cycle (--interleaved). */
const cycleRatios = new Map<Variant, { reqPerS: number[]; cpu: number[] }>(modes.map((m) => [m, { reqPerS: [], cpu: [] }]));

/** --interleaved: one round's pairs all started, warmed, then measured in turns. */
async function measureRound(round: number): Promise<Start[]> {
  const pairs: { mode: Variant; side: Side; destroy: () => Promise<void> }[] = [];
  try {
    for (const [i, mode] of modes.entries()) {
      const { topology, side, podPids } = await startVariantPair(mode, SUBNET + 10 + i);
      pairs.push({ mode, side, destroy: () => topology.testbed.destroy() });
      if (pin) pinToPods(pin, podPids);
      await preflight(side, []);
    }
    for (const { side } of pairs) await h2loadRun(side, 'h1', warm, '');
    const byMode = new Map<Variant, { reqPerS: number; cpuUsPerReq: number }[]>(modes.map((m) => [m, []]));
    for (let cycle = 0; cycle < runs; cycle++) {
      // The order turns each cycle, so no mode always runs first (or right after another's load).
      const k = (cycle + round) % pairs.length;
      const cycleFigures = new Map<Variant, { reqPerS: number; cpuUsPerReq: number }>();
      for (const { mode, side } of [...pairs.slice(k), ...pairs.slice(0, k)]) {
        const m = await measureRun(side, seconds);
        byMode.get(mode)!.push(m);
        cycleFigures.set(mode, m);
      }
      const base = cycleFigures.get(modes[0]!)!;
      for (const mode of modes) {
        const m = cycleFigures.get(mode)!;
        cycleRatios.get(mode)!.reqPerS.push(m.reqPerS / base.reqPerS);
        cycleRatios.get(mode)!.cpu.push(m.cpuUsPerReq / base.cpuUsPerReq);
      }
    }
    return modes.map((mode) => {
      const measured = byMode.get(mode)!;
      return { mode, round, reqPerS: median(measured.map((m) => m.reqPerS)), cpuUsPerReq: median(measured.map((m) => m.cpuUsPerReq)) };
    });
  } finally {
    for (const { destroy } of pairs) await destroy();
  }
}

const results: Start[] = [];
for (let round = 0; round < starts; round++) {
  const k = round % modes.length;
  const measured = values.interleaved ? await measureRound(round) : [];
  for (const mode of [...modes.slice(k), ...modes.slice(0, k)]) {
    const s = values.interleaved ? measured.find((m) => m.mode === mode)! : await measureStart(mode, round);
    results.push(s);
    console.log(`start ${round + 1}/${starts} ${mode}: ${Math.round(s.reqPerS)} requests/s, ${sig(s.cpuUsPerReq)} µs of CPU per request (both proxies)`);
  }
}

const of = (mode: Variant) => results.filter((s) => s.mode === mode);
const first = modes[0]!;
const base = { reqPerS: median(of(first).map((s) => s.reqPerS)), cpu: median(of(first).map((s) => s.cpuUsPerReq)) };
console.log(`\n| mode | requests/s, median of ${starts} starts (min–max) | CPU µs per request, both proxies (min–max) | vs ${first}: requests/s, CPU | rounds with more CPU per request than ${first} |`);
console.log('| --- | ---: | ---: | ---: | ---: |');
for (const mode of modes) {
  const starts = of(mode);
  const rates = starts.map((s) => s.reqPerS);
  const cpus = starts.map((s) => s.cpuUsPerReq);
  const rate = median(rates);
  const cpu = median(cpus);
  const above = mode === first ? '–' : `${starts.filter((s) => s.cpuUsPerReq > of(first).find((f) => f.round === s.round)!.cpuUsPerReq).length} of ${starts.length}`;
  const vs = mode === first ? '–' : `×${(rate / base.reqPerS).toFixed(2)}, ${cpu >= base.cpu ? '+' : '−'}${Math.abs((cpu / base.cpu - 1) * 100).toFixed(0)} %`;
  console.log(`| ${mode} | ${Math.round(rate)} (${Math.round(Math.min(...rates))}–${Math.round(Math.max(...rates))}) | ${sig(cpu)} (${sig(Math.min(...cpus))}–${sig(Math.max(...cpus))}) | ${vs} | ${above} |`);
}
if (values.interleaved) {
  console.log(`\nAgainst ${first} in the same cycle (median over ${starts} × ${runs} cycles, min–max):`);
  for (const mode of modes.slice(1)) {
    const { reqPerS, cpu } = cycleRatios.get(mode)!;
    const range = (xs: number[]) => `${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)}`;
    console.log(`  ${mode}: requests/s ×${median(reqPerS).toFixed(3)} (${range(reqPerS)}), CPU per request ×${median(cpu).toFixed(3)} (${range(cpu)})`);
  }
}
process.exit(0);
