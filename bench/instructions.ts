// Instructions per request of the sidecars, counted rather than timed: the plaintext pair
// of bench/pair-starts.ts with both proxies (the client pod's outbound, the server pod's
// inbound) run under valgrind's callgrind. After a warm-up long enough for V8 to optimise the request path, the counts
// are zeroed, a fixed number of HTTP/1.1 requests goes through the pair (h2load --h1, 16
// keep-alive connections unless --connections says otherwise), and the counts are dumped:
// user-space instructions of every thread of each proxy, divided by the requests. Unlike requests/s or CPU seconds on a
// shared 2-core VM, which move by ±10 % from one start to the next, the count moves by a
// few per cent at most (what V8 decides to optimise), so a variant that costs 3 % shows.
// It says nothing of the kernel's share (the socket calls) or of how fast the instructions
// run (cache misses, preemption); requests/s and CPU time stay bench/pair-starts.ts's.
//
//   node bench/instructions.ts [--modes telemetry-off,telemetry-on] [--starts 2] [--warm 20000] [--requests 5000] [--connections 16] [--profile] [--keep DIR]
//
// --profile: the proxies run with node's --perf-basic-prof, and for the first start of each
// mode the tool prints where each sidecar's instructions go, by function (V8's generated
// code named from the perf map) and by group (each meshlet module, Node's JavaScript, V8's
// builtins, runtime, compilers and garbage collector, libc). --keep DIR: each sidecar's
// dump (and perf map) is copied to DIR, for callgrind_annotate or bench/lib/callgrind.ts.
//
// Modes are bench/lib/variants.ts's. Needs root, valgrind, nghttp2-client and `npm run dist`.
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { APP_UID, PROXY_UID, type Pod } from '../src/testbed/netns.ts';
import { parseH2load, preflight, type Side } from './l7.ts';
import { hostPort } from './lib/baselines.ts';
import { median, sig } from './lib/stats.ts';
import { grouped, largest, readCosts, readPerfMap } from './lib/callgrind.ts';
import { parseVariants, startVariantPair, type Variant } from './lib/variants.ts';

/** Second octet of the pods' addresses: one no other scenario or tool uses. */
const SUBNET = 62;

const { values } = parseArgs({
  options: {
    modes: { type: 'string', default: 'telemetry-off,telemetry-on' },
    starts: { type: 'string', default: '2' },
    warm: { type: 'string', default: '20000' },
    requests: { type: 'string', default: '5000' },
    connections: { type: 'string', default: '16' },
    profile: { type: 'boolean', default: false },
    keep: { type: 'string' },
  },
});
// One mode is enough for a profile.
const modes = parseVariants(values.modes, 1);
const positive = (name: string, text: string) => {
  const n = Number(text);
  if (!(Number.isInteger(n) && n > 0)) throw new Error(`--${name} must be a positive whole number, got ${JSON.stringify(text)}`);
  return n;
};
const starts = positive('starts', values.starts);
const warm = positive('warm', values.warm);
const requests = positive('requests', values.requests);
const connections = positive('connections', values.connections);

/** h2load in pod a as the app, `n` requests; fails unless every one was answered 2xx. */
async function load(side: Side, n: number): Promise<void> {
  const target = hostPort(side.host, side.ports.h1);
  const result = await side.topology.client.run(['h2load', '--h1', '-t', '1', '-c', String(connections), '-n', String(n), `http://${target}/`], { uid: APP_UID, timeoutMs: 3_600_000 });
  const figures = parseH2load(result.stdout);
  if (result.code !== 0 || !figures || figures.status['2xx'] !== n) throw new Error(`h2load -n ${n}: ${result.stdout.trim() || result.stderr.trim()}`);
}

/** callgrind_control on the proxy, as the proxy's own user (valgrind answers no other). */
async function control(pod: Pod, pid: number, option: string): Promise<void> {
  const result = await pod.run(['callgrind_control', option, String(pid)], { uid: PROXY_UID, timeoutMs: 600_000 });
  if (result.code !== 0) throw new Error(`callgrind_control ${option} ${pid}: ${result.stderr.trim() || result.stdout.trim()}`);
}

/** The newest dump in `dir`, and its instruction total. */
function newestDump(dir: string): { text: string; total: number; path: string } {
  const newest = readdirSync(dir).filter((f) => f.startsWith('callgrind.out')).sort((a, b) => dumpNumber(b) - dumpNumber(a))[0];
  if (newest === undefined) throw new Error(`no callgrind dump in ${dir}`);
  const text = readFileSync(path.join(dir, newest), 'utf8');
  const m = /^(?:summary|totals): (\d+)/m.exec(text);
  if (!m) throw new Error(`${newest}: no instruction total`);
  return { text, total: Number(m[1]), path: path.join(dir, newest) };
}

/** --keep: each sidecar's dump (and perf map) stays, for callgrind_annotate or a second look. */
function keepDumps(dir: string, mode: Variant, dumps: [string, number][]): void {
  mkdirSync(dir, { recursive: true });
  for (const [i, [dump, pid]] of dumps.entries()) {
    const side = i === 0 ? 'outbound' : 'inbound';
    copyFileSync(dump, path.join(dir, `${mode}.${side}.callgrind`));
    if (existsSync(`/tmp/perf-${pid}.map`)) copyFileSync(`/tmp/perf-${pid}.map`, path.join(dir, `${mode}.${side}.perf.map`));
  }
  console.log(`kept the dumps of ${mode} in ${dir}`);
}

const dumpNumber = (name: string) => Number(/\.(\d+)$/.exec(name)?.[1] ?? 0);

/** Where one sidecar's instructions went, per request: the largest functions, the callers of the largest runtime ones, then the groups. */
function printProfile(label: string, dumpText: string, perfMap: string): void {
  const { self, callers } = readCosts(dumpText, perfMap);
  const perRequest = (ir: number) => String(Math.round(ir / requests)).padStart(8);
  const top = largest(self, 40);
  console.log(`\n${label}: instructions per request by function (self), largest first`);
  for (const [name, ir] of top) console.log(`${perRequest(ir)}  ${name.slice(0, 150)}`);
  // Builtins (megamorphic property loads, string concatenation) and V8's C++ are spent on behalf of some JavaScript: whose.
  console.log(`\n${label}: who calls the largest builtins and runtime functions (inclusive, per request)`);
  for (const [name] of top.filter(([n]) => !n.startsWith('JS:')).slice(0, 10)) {
    console.log(`  ${name.slice(0, 100)}`);
    for (const [caller, ir] of largest(callers.get(name) ?? new Map(), 6)) console.log(`  ${perRequest(ir)}  ${caller.slice(0, 140)}`);
  }
  console.log(`\n${label}: by group`);
  for (const [name, ir] of largest(grouped(self), 60)) console.log(`${perRequest(ir)}  ${name}`);
}

/** Instructions per request of each sidecar: outbound (pod a), inbound (pod b). */
interface Counts {
  outbound: number;
  inbound: number;
}

async function measureStart(mode: Variant, profile: boolean): Promise<Counts> {
  const root = mkdtempSync(path.join(os.tmpdir(), 'meshlet-instructions-'));
  // The proxies run as their own user, which writes the counts.
  chmodSync(root, 0o755);
  const dirs = new Map<string, string>();
  for (const pod of ['a', 'b']) {
    const dir = path.join(root, pod);
    mkdirSync(dir);
    chmodSync(dir, 0o777);
    dirs.set(pod, dir);
  }
  const prefix = (dir: string) => ['valgrind', '--tool=callgrind', '--trace-children=yes', `--callgrind-out-file=${path.join(dir, 'callgrind.out')}`, '--dump-line=no'];
  const { topology, side } = await startVariantPair(mode, SUBNET, (pod) => ({ prefix: prefix(dirs.get(pod.name)!), nodeArgs: profile ? ['--perf-basic-prof'] : [], readyTimeoutMs: 300_000 }));
  try {
    await preflight(side, []);
    await load(side, warm);
    const pods = topology.proxies.map((p) => ({ pod: p.pod === 'a' ? topology.client : topology.server, pid: p.pid }));
    for (const { pod, pid } of pods) await control(pod, pid, '-z');
    await load(side, requests);
    for (const { pod, pid } of pods) await control(pod, pid, '-d');
    const outbound = newestDump(dirs.get('a')!);
    const inbound = newestDump(dirs.get('b')!);
    if (values.keep !== undefined) keepDumps(values.keep, mode, [
      [outbound.path, pods[0]!.pid],
      [inbound.path, pods[1]!.pid],
    ]);
    if (profile) {
      printProfile(`${mode}, outbound sidecar`, outbound.text, readPerfMap(pods[0]!.pid));
      printProfile(`${mode}, inbound sidecar`, inbound.text, readPerfMap(pods[1]!.pid));
    }
    return { outbound: outbound.total / requests, inbound: inbound.total / requests };
  } finally {
    await topology.testbed.destroy();
    rmSync(root, { recursive: true, force: true });
    for (const p of topology.proxies) rmSync(`/tmp/perf-${p.pid}.map`, { force: true });
  }
}

const results: ({ mode: Variant; round: number } & Counts)[] = [];
for (let round = 0; round < starts; round++) {
  const k = round % modes.length;
  for (const mode of [...modes.slice(k), ...modes.slice(0, k)]) {
    const counts = await measureStart(mode, values.profile && round === 0);
    results.push({ mode, round, ...counts });
    console.log(`start ${round + 1}/${starts} ${mode}: ${Math.round(counts.outbound)} + ${Math.round(counts.inbound)} instructions per request (outbound + inbound sidecar, user space)`);
  }
}

const of = (mode: Variant, pick: (c: Counts) => number) => results.filter((r) => r.mode === mode).map(pick);
const first = modes[0]!;
const PICKS: [string, (c: Counts) => number][] = [
  ['outbound', (c) => c.outbound],
  ['inbound', (c) => c.inbound],
  ['pair', (c) => c.outbound + c.inbound],
];
console.log(`\nUser-space instructions per request, median of ${starts} starts (min–max), ${connections} connections, after ${warm} requests of warm-up:`);
console.log(`\n| mode | ${PICKS.map(([name]) => name).join(' | ')} | pair vs ${first} |`);
console.log(`| --- |${' ---: |'.repeat(PICKS.length + 1)}`);
const basePair = median(of(first, PICKS[2]![1]));
for (const mode of modes) {
  const cells = PICKS.map(([, pick]) => {
    const counts = of(mode, pick);
    return `${Math.round(median(counts))} (${Math.round(Math.min(...counts))}–${Math.round(Math.max(...counts))})`;
  });
  const pair = median(of(mode, PICKS[2]![1]));
  const vs = mode === first ? '–' : `${pair >= basePair ? '+' : '−'}${sig(Math.abs(pair - basePair))} (${pair >= basePair ? '+' : '−'}${Math.abs((pair / basePair - 1) * 100).toFixed(1)} %)`;
  console.log(`| ${mode} | ${cells.join(' | ')} | ${vs} |`);
}
process.exit(0);
