// Open-loop HTTP/1.1 load at a fixed rate, for latency figures without coordinated
// omission (the L7 scenario's "latency at 1000 requests/s").
//
//   rate --host H --port P [--path /] [--rate 1000] [--seconds 5] [--warmup-seconds 1]
//        [--conns 8] [--timeout MS]
//
// Request k is due at t0 + k / rate, whatever happened to the ones before it: a ticker
// thread wakes the event loop at each due time (Atomics.wait sleeps to the microsecond,
// where a timer would only wake to the millisecond), and every request that is due goes
// out on an idle keep-alive connection of a fixed pool (round robin), or waits in a queue
// until one is free. Its latency runs from its DUE time to the end of its response
// (process.hrtime.bigint()), so a stall delays and counts every request due during it,
// instead of delaying the next ones unnoticed (coordinated omission). Also recorded per
// request: the service time (from the actual write) and the generator's own lateness
// (write − due), which is the same noise floor in every mode.
//
// Requests due in the first --warmup-seconds are sent but not recorded. Prints
// {"measuring":true} when the first recorded request is due, then one JSON line with
// nearest-rank percentiles in µs, and exits 0; or {"ok":false,...} and exits 1 (any
// failed request, non-200 answer or lost connection fails the run).
import net from 'node:net';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { busyFraction, irqFraction, systemCpu, type SystemCpu } from '../lib/procfs.ts';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string' },
    path: { type: 'string', default: '/' },
    'host-header': { type: 'string' },
    rate: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '5' },
    'warmup-seconds': { type: 'string', default: '1' },
    conns: { type: 'string', default: '8' },
    timeout: { type: 'string', default: '120000' },
  },
});

function fail(error: string): never {
  console.log(JSON.stringify({ ok: false, error }));
  process.exit(1);
}

if (positionals[0] !== 'rate') {
  console.error('usage: l7-load rate --host H --port P [--rate N] [--seconds S] [--warmup-seconds S] [--conns N]');
  process.exit(2);
}

const rate = Number(values.rate);
const warmupCount = Math.round(Number(values['warmup-seconds']) * rate);
const measuredCount = Math.round(Number(values.seconds) * rate);
const total = warmupCount + measuredCount;
const poolSize = Math.max(1, Number(values.conns));
const intervalNs = 1e9 / rate;
if (!(rate > 0) || measuredCount < 1) fail('--rate and --seconds must give at least one request');
setTimeout(() => fail(`timeout: ${completed} of ${total} requests answered`), Number(values.timeout)).unref();

const host = values.host!;
const hostHeader = values['host-header'] ?? `${host.includes(':') ? `[${host}]` : host}:${values.port}`;
const REQUEST = Buffer.from(`GET ${values.path} HTTP/1.1\r\nHost: ${hostHeader}\r\nUser-Agent: meshlet-bench\r\nAccept: */*\r\n\r\n`, 'latin1');
const CRLFCRLF = Buffer.from('\r\n\r\n');

// Per recorded request, µs.
const latency = new Float64Array(measuredCount);
const service = new Float64Array(measuredCount);
const lateness = new Float64Array(measuredCount);
const statuses: Record<string, number> = {};
let completed = 0;
let recorded = 0;
let maxQueue = 0;
let reconnects = 0;

let t0 = 0n;
const due = (k: number) => t0 + BigInt(Math.round(k * intervalNs));

interface Conn {
  socket: net.Socket;
  /** Index of the request in flight, or -1. */
  k: number;
  sentAt: bigint;
  /** Unparsed bytes of the response being read. */
  pending: Buffer | undefined;
  /** Body bytes still to come (content-length), or -1 while reading the head, -2 for chunked. */
  bodyLeft: number;
  status: number;
  closeAfter: boolean;
}

const idle: Conn[] = [];
let idleHead = 0;
const queue: number[] = [];
let queueHead = 0;

function takeIdle(): Conn | undefined {
  if (idleHead >= idle.length) return undefined;
  const c = idle[idleHead++]!;
  if (idleHead > 1024 && idleHead * 2 > idle.length) {
    idle.splice(0, idleHead);
    idleHead = 0;
  }
  return c;
}

function takeQueued(): number | undefined {
  if (queueHead >= queue.length) return undefined;
  const k = queue[queueHead++]!;
  if (queueHead > 1024 && queueHead * 2 > queue.length) {
    queue.splice(0, queueHead);
    queueHead = 0;
  }
  return k;
}

function send(c: Conn, k: number): void {
  c.k = k;
  c.sentAt = process.hrtime.bigint();
  c.bodyLeft = -1;
  c.status = 0;
  c.closeAfter = false;
  c.socket.write(REQUEST);
}

function dispatch(k: number): void {
  const c = takeIdle();
  if (c) return send(c, k);
  queue.push(k);
  maxQueue = Math.max(maxQueue, queue.length - queueHead);
}

/** One complete response on `c`: record it, then give the connection the next request. */
function answered(c: Conn): void {
  const now = process.hrtime.bigint();
  const k = c.k;
  c.k = -1;
  completed++;
  statuses[c.status] = (statuses[c.status] ?? 0) + 1;
  if (c.status !== 200) fail(`request ${k} answered ${c.status}`);
  if (k >= warmupCount) {
    const d = due(k);
    latency[recorded] = Number(now - d) / 1000;
    service[recorded] = Number(now - c.sentAt) / 1000;
    lateness[recorded] = Number(c.sentAt - d) / 1000;
    recorded++;
  }
  if (completed === total) return finish();
  if (c.closeAfter) return; // replaced on close
  const next = takeQueued();
  if (next !== undefined) send(c, next);
  else idle.push(c);
}

/** Parses what arrived; returns when it needs more bytes. Handles Content-Length and chunked bodies. */
function onData(c: Conn, data: Buffer): void {
  let buf = c.pending ? Buffer.concat([c.pending, data]) : data;
  c.pending = undefined;
  while (buf.length > 0) {
    if (c.k < 0) fail(`${buf.length} unexpected bytes from the server`);
    if (c.bodyLeft === -1) {
      const end = buf.indexOf(CRLFCRLF);
      if (end < 0) {
        if (buf.length > 64 * 1024) fail('response head over 64 KiB');
        c.pending = buf;
        return;
      }
      const head = buf.toString('latin1', 0, end).toLowerCase();
      c.status = Number(head.slice(9, 12));
      const cl = /\r\ncontent-length:\s*(\d+)/.exec(head);
      c.closeAfter = /\r\nconnection:\s*close/.test(head);
      if (/\r\ntransfer-encoding:[^\r]*chunked/.test(head)) c.bodyLeft = -2;
      else if (cl) c.bodyLeft = Number(cl[1]);
      else if (c.status === 204 || c.status === 304) c.bodyLeft = 0;
      else fail(`response without length: ${JSON.stringify(head.slice(0, 300))}`);
      buf = buf.subarray(end + 4);
      if (c.bodyLeft === 0) answered(c);
      continue;
    }
    if (c.bodyLeft >= 0) {
      const n = Math.min(c.bodyLeft, buf.length);
      c.bodyLeft -= n;
      buf = buf.subarray(n);
      if (c.bodyLeft === 0) answered(c);
      continue;
    }
    // Chunked: "<hex>[;ext]\r\n<data>\r\n" ..., then "0\r\n" [trailers] "\r\n".
    const lineEnd = buf.indexOf('\r\n');
    if (lineEnd < 0) {
      c.pending = buf;
      return;
    }
    const size = parseInt(buf.toString('latin1', 0, lineEnd), 16);
    if (!Number.isFinite(size)) fail('bad chunk size');
    if (size === 0) {
      const end = buf.indexOf(CRLFCRLF, lineEnd - 2);
      if (end < 0) {
        c.pending = buf;
        return;
      }
      buf = buf.subarray(end + 4);
      answered(c);
      continue;
    }
    if (buf.length < lineEnd + 2 + size + 2) {
      c.pending = buf;
      return;
    }
    buf = buf.subarray(lineEnd + 2 + size + 2);
  }
}

function connect(): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port: Number(values.port), noDelay: true });
    const c: Conn = { socket, k: -1, sentAt: 0n, pending: undefined, bodyLeft: -1, status: 0, closeAfter: false };
    socket.once('connect', () => resolve(c));
    socket.on('error', (err: NodeJS.ErrnoException) => reject(new Error(err.code ?? err.message)));
    socket.on('data', (d: Buffer) => onData(c, d));
    socket.on('close', () => {
      if (completed === total) return;
      // A connection the server closed after answering (Connection: close) is replaced;
      // one lost with a request in flight fails the run.
      if (c.k >= 0) fail(`connection closed with request ${c.k} unanswered`);
      reconnects++;
      connect().then((fresh) => {
        const next = takeQueued();
        if (next !== undefined) send(fresh, next);
        else idle.push(fresh);
      }, (err: Error) => fail(`reconnect: ${err.message}`));
    });
  });
}

interface Window {
  self: NodeJS.CpuUsage;
  machine: SystemCpu;
}
let window: Window | undefined;
let measuringFrom = 0n;

function pct(values: Float64Array, p: number): number {
  return values[Math.max(0, Math.ceil((p / 100) * values.length) - 1)]!;
}

function finish(): void {
  const end = process.hrtime.bigint();
  ticker.terminate().catch(() => {});
  const d = process.cpuUsage(window!.self);
  const now = systemCpu();
  const lat = latency.sort();
  const svc = service.sort();
  const late = lateness.sort();
  let sum = 0;
  for (const v of lat) sum += v;
  const elapsedNs = Number(end - measuringFrom);
  console.log(
    JSON.stringify({
      ok: true,
      rate,
      requests: measuredCount,
      warmupRequests: warmupCount,
      conns: poolSize,
      statuses,
      // µs, nearest rank, from each request's due time to the end of its response.
      us: { min: lat[0], p50: pct(lat, 50), p90: pct(lat, 90), p99: pct(lat, 99), p999: pct(lat, 99.9), max: lat[measuredCount - 1], mean: sum / measuredCount },
      serviceUs: { p50: pct(svc, 50), p99: pct(svc, 99), max: svc[measuredCount - 1] },
      latenessUs: { p50: pct(late, 50), p99: pct(late, 99), max: late[measuredCount - 1] },
      maxQueue,
      reconnects,
      achievedRate: measuredCount / (elapsedNs / 1e9),
      elapsedNs,
      cpu: { userUs: d.user, systemUs: d.system, machineBusy: busyFraction(window!.machine, now), machineIrq: irqFraction(window!.machine, now) },
    }),
  );
  process.exit(0);
}

// A thread that sleeps until each due time and wakes the event loop (uv_async); its
// messages carry nothing: on each, every request now due is dispatched.
const TICKER = `
const { parentPort, workerData } = require('node:worker_threads');
const cell = new Int32Array(new SharedArrayBuffer(4));
const t0 = BigInt(workerData.t0);
for (let k = 0; k < workerData.total; k++) {
  const wait = Number(t0 + BigInt(Math.round(k * workerData.intervalNs)) - process.hrtime.bigint()) / 1e6;
  if (wait > 0) Atomics.wait(cell, 0, 0, wait);
  parentPort.postMessage(0);
}`;

const pool = await Promise.all(Array.from({ length: poolSize }, () => connect())).catch((err: Error) => fail(`connect: ${err.message}`));
idle.push(...pool);
// The schedule starts a little later, so the ticker thread is up by then.
t0 = process.hrtime.bigint() + 100_000_000n;
let next = 0;
const ticker = new Worker(TICKER, { eval: true, workerData: { t0: String(t0), total, intervalNs } });
ticker.on('error', (err) => fail(`ticker: ${err.message}`));
ticker.on('message', () => {
  const now = process.hrtime.bigint();
  while (next < total && due(next) <= now) {
    if (next === warmupCount) {
      console.log(JSON.stringify({ measuring: true }));
      window = { self: process.cpuUsage(), machine: systemCpu() };
      measuringFrom = due(next);
    }
    dispatch(next++);
  }
});
