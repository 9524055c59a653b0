// Instructions per request of the sidecars, counted rather than timed: the plaintext pair
// of bench/pair-starts.ts with both proxies (the client pod's outbound, the server pod's
// inbound) run under valgrind's callgrind. After a warm-up long enough for V8 to optimise the request path, the counts
// are zeroed, a fixed number of HTTP/1.1 requests goes through the pair (h2load --h1, 16
// keep-alive connections unless --connections says otherwise), and the counts are dumped:
// user-space instructions of every thread of each proxy, divided by the requests. Unlike requests/s or CPU seconds on a
// shared 2-core VM, which move by ±10 % from one start to the next, the count moves by a
// few per cent at most (what V8 decides to optimise), so a variant that costs 3 % shows.
// Both proxies run with V8's memory reducer off (COUNTING_FLAGS), which otherwise fires on
// valgrind's slowed clock. It says nothing of the kernel's share (the socket calls) or of how fast the instructions
// run (cache misses, preemption); requests/s and CPU time stay bench/pair-starts.ts's.
//
//   node bench/instructions.ts [--modes telemetry-off,telemetry-on] [--ceiling] [--starts 2] [--warm 20000] [--requests 5000] [--connections 16] [--kind h1|h2] [--node-flag FLAG]... [--profile] [--keep DIR]
//
// --kind h2: the requests are HTTP/2 (h2load, at most 4 connections with 16 streams each, as
// the l7 scenario's HTTP/2 runs) to the app's HTTP/2 port, instead of HTTP/1.1.
// --node-flag: a flag for both proxies' node (e.g. --max-semi-space-size=8, which the
// proxy then takes instead of its own).
//
// --ceiling: each start also counts the Node.js ceiling pair (bench/apps/node-raw-pair.ts,
// the l7 scenario's `node-raw` mode) the same way, and the table gives each mode against
// it: what meshlet's pair spends beyond moving the same bytes on the same sockets.
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
import { APP_UID, PROXY_UID, type Pod, type ProxyUnder } from '../src/testbed/netns.ts';
import { parseH2load, preflight, startL7App, type Side } from './l7.ts';
import { FRONT_PORTS, hostPort, startNodeRawPair } from './lib/baselines.ts';
import { median, sig } from './lib/stats.ts';
import { grouped, largest, perfMapPath, readCosts, readPerfMap } from './lib/callgrind.ts';
import { createTopology } from './lib/topology.ts';
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
    ceiling: { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    keep: { type: 'string' },
    kind: { type: 'string', default: 'h1' },
    'node-flag': { type: 'string', multiple: true },
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
if (values.kind !== 'h1' && values.kind !== 'h2') throw new Error(`--kind must be h1 or h2, got ${JSON.stringify(values.kind)}`);
const kind: 'h1' | 'h2' = values.kind;
/** h2load's load shape: HTTP/2 takes the l7 scenario's, 16 streams in flight on each of at most 4 connections. */
const SHAPE = kind === 'h1' ? ['--h1', '-c', String(connections)] : ['-c', String(Math.min(connections, 4)), '-m', '16'];
const SHAPE_TEXT = kind === 'h1' ? `HTTP/1.1, ${connections} connections` : `HTTP/2, ${Math.min(connections, 4)} connections × 16 streams`;

/** h2load in pod a as the app, `n` requests; fails unless every one was answered 2xx. */
async function load(side: Side, n: number): Promise<void> {
  const target = hostPort(side.host, side.ports[kind]);
  const result = await side.topology.client.run(['h2load', '-t', '1', ...SHAPE, '-n', String(n), `http://${target}/`], { uid: APP_UID, timeoutMs: 3_600_000 });
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

/** --keep: each proxy's dump (and perf map) stays as MODE.a.* (client side) and MODE.b.* (server side), for callgrind_annotate or a second look. */
function keepDumps(dir: string, mode: string, dumps: [string, number][]): void {
  mkdirSync(dir, { recursive: true });
  for (const [i, [dump, pid]] of dumps.entries()) {
    const side = i === 0 ? 'a' : 'b';
    copyFileSync(dump, path.join(dir, `${mode}.${side}.callgrind`));
    if (existsSync(perfMapPath(pid))) copyFileSync(perfMapPath(pid), path.join(dir, `${mode}.${side}.perf.map`));
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

/** Directories the proxies (as their own user) write their counts to, one per pod, and the valgrind command line for each. */
function callgrindDirs(): { root: string; under: (pod: Pod, profile: boolean) => ProxyUnder } {
  const root = mkdtempSync(path.join(os.tmpdir(), 'meshlet-instructions-'));
  // The proxies run as their own user, which writes the counts.
  chmodSync(root, 0o755);
  for (const pod of ['a', 'b']) {
    mkdirSync(path.join(root, pod));
    chmodSync(path.join(root, pod), 0o777);
  }
  const out = (pod: Pod) => path.join(root, pod.name, 'callgrind.out');
  return {
    root,
    under: (pod, profile) => ({
      prefix: ['valgrind', '--tool=callgrind', '--trace-children=yes', `--callgrind-out-file=${out(pod)}`, '--dump-line=no'],
      nodeArgs: [...COUNTING_FLAGS, ...(profile ? ['--perf-basic-prof'] : []), ...(values['node-flag'] ?? [])],
      readyTimeoutMs: 300_000,
    }),
  };
}

/**
 * V8's memory reducer starts major collections when it judges the process idle by its
 * allocation rate per millisecond of wall time. Under valgrind a process runs about fifty
 * times slower, so the reducer took a loaded proxy for an idle one, and how often it did
 * depended on the machine's speed that hour: the same build's plaintext pair counted
 * 92 300 instructions per request with it off and 125 400 with it on (major GC about +7 900
 * and V8's compilers up to +5 300 a sidecar). At full speed under load, `--trace-gc` showed no
 * collection of its in 60 000 requests.
 */
const COUNTING_FLAGS = ['--no-memory-reducer'];

/** Warms the pair of `side` (its proxies under callgrind), zeroes the counts, sends the counted requests and reads the dumps. */
async function count(label: string, side: Side, root: string, profile: boolean): Promise<Counts> {
  const { topology } = side;
  const pods = side.proxies.map((p) => ({ pod: p.pod === 'a' ? topology.client : topology.server, pid: p.pid }));
  try {
    await load(side, warm);
    for (const { pod, pid } of pods) await control(pod, pid, '-z');
    await load(side, requests);
    for (const { pod, pid } of pods) await control(pod, pid, '-d');
    const outbound = newestDump(path.join(root, 'a'));
    const inbound = newestDump(path.join(root, 'b'));
    if (values.keep !== undefined) keepDumps(values.keep, label, [
      [outbound.path, pods[0]!.pid],
      [inbound.path, pods[1]!.pid],
    ]);
    if (profile) {
      printProfile(`${label}, client-side proxy (a)`, outbound.text, readPerfMap(pods[0]!.pid));
      printProfile(`${label}, server-side proxy (b)`, inbound.text, readPerfMap(pods[1]!.pid));
    }
    return { outbound: outbound.total / requests, inbound: inbound.total / requests };
  } finally {
    for (const { pid } of pods) rmSync(perfMapPath(pid), { force: true });
  }
}

async function measureStart(mode: Variant, profile: boolean): Promise<Counts> {
  const { root, under } = callgrindDirs();
  const { topology, side } = await startVariantPair(mode, SUBNET, (pod) => under(pod, profile));
  try {
    await preflight(side, []);
    return await count(mode, side, root, profile);
  } finally {
    await topology.testbed.destroy();
    rmSync(root, { recursive: true, force: true });
  }
}

/** The Node.js ceiling pair under the same counting: a on pod a's loopback, b in front of the app. */
async function measureCeiling(profile: boolean): Promise<Counts> {
  const { root, under } = callgrindDirs();
  const topology = await createTopology('direct', { subnet: SUBNET + 1 });
  try {
    const app = await startL7App(topology.server);
    const pods = { a: topology.client, b: topology.server };
    const loopback = '127.0.0.1';
    const proxies = await startNodeRawPair(pods, { loopback, server: topology.server.ipv4 }, (pod) => under(pod, profile));
    const side: Side = { mode: 'node-raw', topology, appPid: app.pid, proxies: proxies.map((p) => ({ pod: p.pod, pid: p.pid })), host: loopback, ports: FRONT_PORTS };
    await preflight(side, proxies.map((p) => p.process));
    return await count('ceiling', side, root, profile);
  } finally {
    await topology.testbed.destroy();
    rmSync(root, { recursive: true, force: true });
  }
}

type Counted = Variant | 'ceiling';
const counted: Counted[] = values.ceiling ? [...modes, 'ceiling'] : modes;
const results: ({ mode: Counted; round: number } & Counts)[] = [];
for (let round = 0; round < starts; round++) {
  const k = round % counted.length;
  for (const mode of [...counted.slice(k), ...counted.slice(0, k)]) {
    const profile = values.profile && round === 0;
    const counts = mode === 'ceiling' ? await measureCeiling(profile) : await measureStart(mode, profile);
    results.push({ mode, round, ...counts });
    console.log(`start ${round + 1}/${starts} ${mode}: ${Math.round(counts.outbound)} + ${Math.round(counts.inbound)} instructions per request (client side + server side, user space)`);
  }
}

const of = (mode: Counted, pick: (c: Counts) => number) => results.filter((r) => r.mode === mode).map(pick);
const PICKS: [string, (c: Counts) => number][] = [
  ['client side (a: outbound)', (c) => c.outbound],
  ['server side (b: inbound)', (c) => c.inbound],
  ['pair', (c) => c.outbound + c.inbound],
];
const pairOf = (mode: Counted) => median(of(mode, PICKS[2]![1]));
/** `pair` against `base`'s: the difference and the ratio. */
const against = (pair: number, base: number) => `${pair >= base ? '+' : '−'}${sig(Math.abs(pair - base))} (×${(pair / base).toFixed(2)})`;
const first = modes[0]!;
const columns = [`pair vs ${first}`, ...(values.ceiling ? ['pair vs ceiling'] : [])];
console.log(`\nUser-space instructions per request, median of ${starts} starts (min–max), ${SHAPE_TEXT}, after ${warm} requests of warm-up:`);
console.log(`\n| mode | ${[...PICKS.map(([name]) => name), ...columns].join(' | ')} |`);
console.log(`| --- |${' ---: |'.repeat(PICKS.length + columns.length)}`);
for (const mode of counted) {
  const cells = PICKS.map(([, pick]) => {
    const counts = of(mode, pick);
    return `${Math.round(median(counts))} (${Math.round(Math.min(...counts))}–${Math.round(Math.max(...counts))})`;
  });
  const pair = pairOf(mode);
  const vsFirst = mode === first || mode === 'ceiling' ? '–' : against(pair, pairOf(first));
  const vsCeiling = values.ceiling ? [mode === 'ceiling' ? '–' : against(pair, pairOf('ceiling'))] : [];
  console.log(`| ${mode === 'ceiling' ? 'Node.js ceiling pair' : mode} | ${[...cells, vsFirst, ...vsCeiling].join(' | ')} |`);
}
process.exit(0);
