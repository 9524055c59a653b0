// The benchmark's L4 application: a server and two clients built to measure the path,
// not themselves. Payload buffers are allocated once and reused; nothing is hashed or
// copied, so the CPU the app spends is the bare minimum of its syscalls (on 2 cores the
// app competes with both proxies, and any work here would lower both figures).
//
//   server     --sink-port P --echo-port Q --once-port R [--host H]
//       sink: counts what it receives; when the client half-closes, answers
//             {"bytes":N} and closes.
//       echo: writes back every byte it receives.
//       once: reads one request of --msg bytes, answers with as many bytes and closes
//             (the server closes first, so TIME_WAIT stays on the server's side and
//             the client's ephemeral ports are not used up).
//   throughput --host H --port P --size BYTES [--chunk BYTES]
//       connects to a sink, writes BYTES, half-closes, waits for the sink's count.
//       Time runs from 'connect' to the count's arrival, so it covers every byte
//       reaching the server, and excludes connection set-up (which with a proxy only
//       reaches the local outbound listener).
//   latency    --host H --port P --count N [--msg BYTES] [--warmup N]
//       one connection, N sequential request/response exchanges of BYTES each;
//       each round trip timed with process.hrtime.bigint().
//   connrate   --host H --port P --count N [--concurrency C] [--msg BYTES] [--warmup N]
//              [--max-seconds S]
//       new connections against a `once` server: C at a time, each connects, sends
//       one request, reads the response until the server closes, and is replaced by
//       the next, until N have completed (after N' unrecorded ones). Stops starting
//       new ones after S seconds. Reports connections/s over the measured window.
//
// Each client prints {"measuring":true} when its measured window opens, then one JSON
// line with its result and exits 0, or prints {"ok":false,...} and exits 1.
import net from 'node:net';
import { parseArgs } from 'node:util';
import { busyFraction, irqFraction, systemCpu, type SystemCpu } from '../lib/procfs.ts';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    host: { type: 'string', default: '::' },
    port: { type: 'string' },
    'sink-port': { type: 'string' },
    'echo-port': { type: 'string' },
    'once-port': { type: 'string' },
    concurrency: { type: 'string', default: '16' },
    'max-seconds': { type: 'string', default: '30' },
    'conn-timeout': { type: 'string', default: '10000' },
    size: { type: 'string', default: String(200e6) },
    chunk: { type: 'string', default: String(128 * 1024) },
    count: { type: 'string', default: '10000' },
    msg: { type: 'string', default: '64' },
    warmup: { type: 'string', default: '500' },
    timeout: { type: 'string', default: '120000' },
  },
});

function fail(error: string): never {
  console.log(JSON.stringify({ ok: false, error }));
  process.exit(1);
}

/** CPU use over the measured window: this process's own, and the whole machine's (/proc/stat is not namespaced). */
interface Window {
  self: NodeJS.CpuUsage;
  machine: SystemCpu;
}

/**
 * Opens the measured window. Also tells the orchestrator, which meters the other
 * processes (proxies, server) from this line on rather than from the client's start.
 */
function openWindow(): Window {
  console.log(JSON.stringify({ measuring: true }));
  return { self: process.cpuUsage(), machine: systemCpu() };
}

function closeWindow(w: Window): { userUs: number; systemUs: number; machineBusy: number; machineIrq: number } {
  const d = process.cpuUsage(w.self);
  const now = systemCpu();
  return { userUs: d.user, systemUs: d.system, machineBusy: busyFraction(w.machine, now), machineIrq: irqFraction(w.machine, now) };
}

function connect(): net.Socket {
  const socket = net.connect({ host: values.host, port: Number(values.port), allowHalfOpen: true, noDelay: true });
  socket.on('error', (err: NodeJS.ErrnoException) => fail(err.code ?? err.message));
  setTimeout(() => fail('timeout'), Number(values.timeout)).unref();
  return socket;
}

function listen(server: net.Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: values.host, port, ipv6Only: false }, () => resolve((server.address() as net.AddressInfo).port));
  });
}

async function serve(): Promise<void> {
  const sink = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
    let bytes = 0;
    socket.on('data', (d: Buffer) => (bytes += d.length));
    socket.on('end', () => socket.end(`${JSON.stringify({ bytes })}\n`));
    socket.on('error', () => socket.destroy());
  });
  const echo = net.createServer({ noDelay: true }, (socket) => {
    socket.on('data', (d: Buffer) => socket.write(d));
    socket.on('error', () => socket.destroy());
  });
  const msgSize = Number(values.msg);
  const answer = Buffer.alloc(msgSize, 0x62);
  const once = net.createServer({ noDelay: true }, (socket) => {
    let got = 0;
    socket.on('data', (d: Buffer) => {
      got += d.length;
      if (got >= msgSize && socket.writable) socket.end(answer);
    });
    socket.on('error', () => socket.destroy());
  });
  const sinkPort = await listen(sink, Number(values['sink-port'] ?? 0));
  const echoPort = await listen(echo, Number(values['echo-port'] ?? 0));
  const oncePort = await listen(once, Number(values['once-port'] ?? 0));
  console.log(JSON.stringify({ listening: { sink: sinkPort, echo: echoPort, once: oncePort } }));
}

function throughput(): void {
  const size = Number(values.size);
  const chunkSize = Math.min(Number(values.chunk), size);
  const chunk = Buffer.alloc(chunkSize, 0xa5);
  const socket = connect();
  let start = 0n;
  let cpu: Window;
  let left = size;
  const pump = () => {
    while (left > 0) {
      const n = Math.min(chunkSize, left);
      left -= n;
      if (!socket.write(n === chunkSize ? chunk : chunk.subarray(0, n))) {
        socket.once('drain', pump);
        return;
      }
    }
    socket.end();
  };
  socket.once('connect', () => {
    cpu = openWindow();
    start = process.hrtime.bigint();
    pump();
  });
  let reply = '';
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => (reply += d));
  socket.on('end', () => {
    const elapsedNs = Number(process.hrtime.bigint() - start);
    const used = closeWindow(cpu);
    let received: number;
    try {
      received = (JSON.parse(reply) as { bytes: number }).bytes;
    } catch {
      fail(`bad reply from sink: ${JSON.stringify(reply.slice(0, 200))}`);
    }
    if (received !== size) fail(`sink received ${received} of ${size} bytes`);
    console.log(JSON.stringify({ ok: true, bytes: size, elapsedNs, mbPerS: size / 1e6 / (elapsedNs / 1e9), cpu: used }));
    socket.destroy();
  });
}

function latency(): void {
  const count = Number(values.count);
  const warmup = Number(values.warmup);
  const msgSize = Number(values.msg);
  const msg = Buffer.alloc(msgSize, 0x61);
  const rtts = new Float64Array(count);
  const socket = connect();
  let i = -warmup;
  let got = 0;
  let sentAt = 0n;
  let started = 0n;
  let cpu: Window;
  const send = () => {
    got = 0;
    sentAt = process.hrtime.bigint();
    socket.write(msg);
  };
  socket.once('connect', send);
  socket.on('data', (d: Buffer) => {
    got += d.length;
    if (got < msgSize) return;
    const now = process.hrtime.bigint();
    if (got > msgSize) fail(`echo sent ${got} bytes for a ${msgSize}-byte request`);
    if (i >= 0) rtts[i] = Number(now - sentAt) / 1000;
    i++;
    if (i === 0) {
      cpu = openWindow();
      started = now;
    }
    if (i < count) return send();
    const elapsedNs = Number(process.hrtime.bigint() - started);
    const used = closeWindow(cpu);
    socket.destroy();
    const sorted = rtts.sort();
    const pct = (p: number) => sorted[Math.max(0, Math.ceil((p / 100) * count) - 1)]!;
    let sum = 0;
    for (const v of sorted) sum += v;
    console.log(
      JSON.stringify({
        ok: true,
        count,
        msgBytes: msgSize,
        // Microseconds; nearest-rank percentiles.
        us: { min: sorted[0], p50: pct(50), p90: pct(90), p99: pct(99), p999: pct(99.9), max: sorted[count - 1], mean: sum / count },
        elapsedNs,
        cpu: used,
      }),
    );
  });
  socket.on('end', () => {
    if (i < count) fail(`echo closed the connection after ${Math.max(i, 0)} of ${count} exchanges`);
  });
}

/**
 * Connections per second: `concurrency` slots, each opening a connection, sending one
 * request, reading the answer until the server closes, then opening the next. The
 * first `warmup` connections (JIT, proxies' first TLS handshakes) are not recorded.
 */
function connrate(): void {
  const count = Number(values.count);
  const warmup = Number(values.warmup);
  const concurrency = Math.max(1, Number(values.concurrency));
  const msgSize = Number(values.msg);
  const maxMs = Number(values['max-seconds']) * 1000;
  const connTimeoutMs = Number(values['conn-timeout']);
  const msg = Buffer.alloc(msgSize, 0x61);
  setTimeout(() => fail('timeout'), Number(values.timeout)).unref();

  // Time from connect() to the whole answer, per measured connection (µs).
  const times = new Float64Array(count);
  const errors: Record<string, number> = {};
  let started = 0; // connections started, warm-up included
  let completed = 0; // measured connections completed
  let warmDone = 0;
  let inFlight = 0;
  let phase: 'warmup' | 'measured' | 'draining' = warmup > 0 ? 'warmup' : 'measured';
  let t0 = 0n;
  let cpu: Window;
  let deadline = Number.POSITIVE_INFINITY;
  let truncated = false;

  const one = (measured: boolean, done: () => void) => {
    started++;
    inFlight++;
    const t = process.hrtime.bigint();
    let got = 0;
    let answeredAt = 0n;
    let finished = false;
    const finish = (error?: string) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      inFlight--;
      if (error !== undefined) errors[error] = (errors[error] ?? 0) + 1;
      else if (measured) times[completed++] = Number(answeredAt - t) / 1000;
      else warmDone++;
      done();
    };
    const socket = net.connect({ host: values.host, port: Number(values.port), noDelay: true });
    const timer = setTimeout(() => {
      socket.destroy();
      finish('conn-timeout');
    }, connTimeoutMs);
    socket.once('connect', () => socket.write(msg));
    socket.on('data', (d: Buffer) => {
      got += d.length;
      if (got >= msgSize && answeredAt === 0n) answeredAt = process.hrtime.bigint();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => finish(err.code ?? err.message));
    // The server closes after its answer; allowHalfOpen is off, so the socket ends too.
    socket.on('close', () => finish(got === msgSize ? undefined : got > msgSize ? 'long-answer' : 'short-answer'));
  };

  const errorCount = () => Object.values(errors).reduce((a, b) => a + b, 0);
  const report = () => {
    const elapsedNs = Number(process.hrtime.bigint() - t0);
    const used = closeWindow(cpu);
    const sorted = times.subarray(0, completed).sort();
    const pct = (p: number) => (completed === 0 ? Number.NaN : sorted[Math.max(0, Math.ceil((p / 100) * completed) - 1)]!);
    const failed = errorCount();
    // A handful of failed connections (≤ 1 %) is reported, not fatal; more is a broken run.
    const ok = completed > 0 && failed <= 0.01 * (completed + failed);
    const result = {
      ok,
      ...(ok ? {} : { error: `${completed} connections completed, ${failed} failed: ${JSON.stringify(errors)}` }),
      count,
      completed,
      failed,
      errors,
      truncated,
      concurrency,
      msgBytes: msgSize,
      warmup: warmDone,
      connPerS: completed / (elapsedNs / 1e9),
      // Connect to the whole answer, per connection (µs), at this concurrency: with every
      // slot busy it is mostly waiting for CPU (about concurrency / rate).
      us: { min: sorted[0] ?? Number.NaN, p50: pct(50), p90: pct(90), p99: pct(99), max: sorted[completed - 1] ?? Number.NaN },
      elapsedNs,
      cpu: used,
    };
    console.log(JSON.stringify(result));
    process.exit(result.ok ? 0 : 1);
  };

  const next = () => {
    if (phase === 'warmup') {
      if (started < warmup) return one(false, next);
      if (inFlight > 0) return; // the last warm-up connections are still open
      phase = 'measured';
      cpu = openWindow();
      t0 = process.hrtime.bigint();
      deadline = Date.now() + maxMs;
      for (let i = 0; i < concurrency; i++) next();
      return;
    }
    if (phase === 'measured') {
      const launched = started - warmup;
      if (launched < count && Date.now() < deadline) return one(true, next);
      if (launched < count) truncated = true;
      phase = 'draining';
    }
    if (inFlight === 0) report();
  };

  if (phase === 'measured') {
    cpu = openWindow();
    t0 = process.hrtime.bigint();
    deadline = Date.now() + maxMs;
  }
  for (let i = 0; i < concurrency; i++) next();
}

switch (positionals[0]) {
  case 'server':
    await serve();
    break;
  case 'throughput':
    throughput();
    break;
  case 'latency':
    latency();
    break;
  case 'connrate':
    connrate();
    break;
  default:
    console.error('usage: l4-app server|throughput|latency|connrate [options]');
    process.exit(2);
}
