import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import t, { type Test } from 'tap';
import { h1App, h2App, h2Session } from '../../helpers/http.ts';
import { through, TOPOLOGIES, type Topology } from '../../helpers/http-sidecars.ts';
import { until } from './mtls-harness.ts';

// Bodies are streamed, never buffered whole: a large upload and download cross a sidecar
// pair (meshlet/h2 over mTLS) intact, and the proxy's memory stays flat while they do;
// a client that stops reading stops the app's writes (backpressure end to end) instead
// of filling the proxy. The proxy runs in this process, so process RSS is its memory
// (plus the client's and the app's, which stream too).

const MiB = 1024 * 1024;
const mib = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`;
/** Bytes per direction (MESHLET_TEST_STREAM_MB to try others); the test prints the rates it saw. */
const SIZE = Number(process.env.MESHLET_TEST_STREAM_MB ?? 1024) * MiB;
/** Every body is this block repeated: random, so nothing on the way can compress it. */
const BLOCK = randomBytes(MiB);

function expectedHash(size: number): string {
  const hash = createHash('sha256');
  for (let sent = 0; sent < size; sent += BLOCK.length) hash.update(BLOCK.subarray(0, Math.min(BLOCK.length, size - sent)));
  return hash.digest('hex');
}

/** Writes `size` bytes of BLOCKs to `out`, waiting for 'drain' whenever write() says so. */
async function writeBlocks(out: NodeJS.WritableStream, size: number): Promise<void> {
  for (let sent = 0; sent < size; sent += BLOCK.length) {
    if (!out.write(BLOCK.subarray(0, Math.min(BLOCK.length, size - sent)))) await new Promise((r) => out.once('drain', r));
  }
}

interface WriterState {
  /** Bytes write() took. */
  accepted: number;
  /** Times write() returned false. */
  drains: number;
  /** Waiting for 'drain' now. */
  waiting: boolean;
}
const newWriter = (): WriterState => ({ accepted: 0, drains: 0, waiting: false });

/** Writes BLOCKs to `out` until `total` or until it is destroyed, waiting for 'drain' when write() says so; keeps `state` up to date. */
function blockWriter(out: NodeJS.WritableStream & { destroyed: boolean }, total: number, state: WriterState): void {
  void (async () => {
    for (let sent = 0; sent < total && !out.destroyed; sent += BLOCK.length) {
      state.accepted += BLOCK.length;
      if (!out.write(BLOCK)) {
        state.drains++;
        state.waiting = true;
        await new Promise((r) => out.once('drain', r).once('close', r));
        state.waiting = false;
      }
    }
    out.end();
  })();
}

/** Waits until `writer` is stuck: waiting for 'drain' with nothing accepted for half a second. */
async function stalled(writer: WriterState): Promise<void> {
  for (let last = -1, deadline = Date.now() + 30_000; !(writer.waiting && writer.accepted === last); ) {
    if (Date.now() > deadline) throw new Error('the writer never stalled on backpressure');
    last = writer.accepted;
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Samples RSS while `work` runs; resolves with its result and the peak RSS seen. */
async function withPeakRss<T>(work: Promise<T>): Promise<{ result: T; peak: number }> {
  let peak = process.memoryUsage().rss;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
  try {
    const result = await work;
    return { result, peak: Math.max(peak, process.memoryUsage().rss) };
  } finally {
    clearInterval(timer);
  }
}

const expected = expectedHash(SIZE);
/**
 * RSS may grow this much at most while SIZE crosses twice. What legitimately lives in
 * user space: each hop's stream buffers (16 KiB high-water marks), the HTTP/2 stream
 * windows (4 MiB per stream on each meshlet/h2 and h2c session), TLS records, the 1 MiB
 * BLOCK, and V8's young generation churning through Buffers. Well under 200 MiB; a proxy
 * that buffered a body would grow by SIZE.
 */
const RSS_GROWTH_LIMIT = 200 * MiB;

t.test(`${SIZE / MiB} MiB up and ${SIZE / MiB} MiB down through a sidecar pair over meshlet/h2 (mTLS): intact, memory flat`, async (t) => {
  const app = await h1App((req, res) => {
    if (req.method === 'POST') {
      // Upload: hash what arrives.
      const hash = createHash('sha256');
      let n = 0;
      req.on('data', (d: Buffer) => {
        hash.update(d);
        n += d.length;
      });
      req.on('end', () => res.end(JSON.stringify({ bytes: n, sha256: hash.digest('hex') })));
      return;
    }
    // Download: stream the same bytes back.
    res.writeHead(200, { 'Content-Length': String(SIZE) });
    void writeBlocks(res, SIZE).then(() => res.end());
  });
  t.teardown(() => app.close());
  const { port } = await through(t, 'mesh', () => app.port);
  global.gc?.();
  const before = process.memoryUsage().rss;

  const started = Date.now();
  const upload = await withPeakRss(
    new Promise<{ bytes: number; sha256: string }>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/upload', agent: false, headers: { 'Content-Length': String(SIZE) } }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve(JSON.parse(body) as { bytes: number; sha256: string }));
      });
      req.on('error', reject);
      void writeBlocks(req, SIZE).then(() => req.end());
    }),
  );
  const uploadSeconds = (Date.now() - started) / 1000;
  t.same(upload.result, { bytes: SIZE, sha256: expected }, 'the app received every byte, in order (sha256)');

  const downStarted = Date.now();
  const download = await withPeakRss(
    new Promise<{ bytes: number; sha256: string }>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port, path: '/download', agent: false }, (res) => {
          const hash = createHash('sha256');
          let n = 0;
          res.on('data', (d: Buffer) => {
            hash.update(d);
            n += d.length;
          });
          res.on('end', () => resolve({ bytes: n, sha256: hash.digest('hex') }));
        })
        .on('error', reject);
    }),
  );
  const downloadSeconds = (Date.now() - downStarted) / 1000;
  t.same(download.result, { bytes: SIZE, sha256: expected }, 'the client received every byte, in order (sha256)');

  const peak = Math.max(upload.peak, download.peak);
  const after = process.memoryUsage().rss;
  t.comment(
    `upload ${uploadSeconds.toFixed(1)} s (${(SIZE / MiB / uploadSeconds).toFixed(0)} MiB/s), download ${downloadSeconds.toFixed(1)} s (${(SIZE / MiB / downloadSeconds).toFixed(0)} MiB/s); ` +
      `RSS before ${(before / MiB).toFixed(0)} MiB, peak ${(peak / MiB).toFixed(0)} MiB, after ${(after / MiB).toFixed(0)} MiB`,
  );
  t.ok(peak - before < RSS_GROWTH_LIMIT, `RSS grew by ${((peak - before) / MiB).toFixed(0)} MiB at most (limit ${RSS_GROWTH_LIMIT / MiB} MiB)`);
});

/** TCP buffers the kernel may hold per connection (send and receive, both at their autotuning maximum). */
function kernelBufferMax(): number {
  const max = (file: string) => Number(readFileSync(file, 'utf8').trim().split(/\s+/).at(-1));
  return max('/proc/sys/net/ipv4/tcp_wmem') + max('/proc/sys/net/ipv4/tcp_rmem');
}

/**
 * How much may sit between a stalled writer and a reader that stopped: every TCP
 * connection's kernel buffers (two between app and client through one sidecar, four
 * through the pair with the relay between the sidecars), the HTTP/2 stream windows (4
 * MiB on each session the proxy opens), and a few 16 KiB stream buffers. A proxy that
 * buffered would let the writer put the whole GiB in.
 */
const inFlightBound = (topology: Topology) => (topology === 'one' ? 2 : 4) * kernelBufferMax() + 3 * 4 * MiB;
const name = (topology: Topology) => (topology === 'one' ? 'one sidecar' : 'sidecar pair over meshlet/h2');
const TOTAL = 1024 * MiB;
/** Process RSS may grow this much while a writer is stalled: the bytes in flight are in the kernel, not in the proxy. */
const STALLED_RSS_LIMIT = 64 * MiB;

/**
 * Waits for `writer` (`from`) to stall on backpressure while `to` does not read, then
 * checks that it stalled early: it could not write the whole body, and what it wrote
 * beyond what `to` read fits in the kernel buffers and stream windows between them.
 * Resolves with how much the process's RSS grew meanwhile.
 */
async function stalledEarly(t: Test, topology: Topology, writer: WriterState, readSoFar: () => number, from: string, to: string): Promise<{ rssGrowth: number }> {
  const rssBefore = process.memoryUsage().rss;
  await stalled(writer);
  const read = readSoFar();
  const inFlight = writer.accepted - read;
  const rssGrowth = process.memoryUsage().rss - rssBefore;
  const bound = inFlightBound(topology);
  t.comment(`stalled: ${mib(writer.accepted)} accepted from ${from}, ${mib(read)} read by ${to}, ${mib(inFlight)} in flight (bound ${mib(bound)}); RSS ${mib(rssGrowth)} more`);
  t.ok(writer.accepted < TOTAL, `${from} could not write the whole body while ${to} was not reading`);
  t.ok(inFlight < bound, `in flight between ${from} and ${to}: ${mib(inFlight)} < ${mib(bound)}`);
  return { rssGrowth };
}

interface FitfulRead {
  bytes: number;
  sha256: string;
  pauses: number;
}

/** Reads `from` to its end, stopping for 2 ms after every 512 KiB; `done` gets what was read. */
function readFitfully(from: NodeJS.ReadableStream, done: (read: FitfulRead) => void): void {
  const hash = createHash('sha256');
  let bytes = 0;
  let pauses = 0;
  let sincePause = 0;
  from.on('data', (d: Buffer) => {
    hash.update(d);
    bytes += d.length;
    sincePause += d.length;
    if (sincePause >= 512 * 1024) {
      sincePause = 0;
      pauses++;
      from.pause();
      setTimeout(() => from.resume(), 2);
    }
  });
  from.on('end', () => done({ bytes, sha256: hash.digest('hex'), pauses }));
}

/** Bytes of the HTTP/1.1 download and upload read in fits and starts. */
const FITFUL = 64 * MiB;
const fitfulHash = expectedHash(FITFUL);

for (const topology of TOPOLOGIES) {
  // The proxy reads every upstream connection into one buffer it reuses (node:net's
  // onread), so a byte of a response body it still held when the next read came would be
  // overwritten: a client that keeps stopping makes the proxy hold body bytes often.
  t.test(`HTTP/1.1: a download read in fits and starts arrives intact (${name(topology)})`, async (t) => {
    const app = await h1App((req, res) => {
      req.resume();
      res.writeHead(200, { 'Content-Length': String(FITFUL) });
      void writeBlocks(res, FITFUL).then(() => res.end());
    });
    t.teardown(() => app.close());
    const { port } = await through(t, topology, () => app.port);
    const got = await new Promise<FitfulRead & { status: number }>((resolve, reject) => {
      http
        .get({ port, host: '127.0.0.1', path: '/fitful', headers: { host: 'app' }, agent: false }, (res) => {
          readFitfully(res, (read) => resolve({ status: res.statusCode ?? 0, ...read }));
          res.on('error', reject);
        })
        .on('error', reject);
    });
    t.equal(got.status, 200);
    t.ok(got.pauses > 50, `the client stopped ${got.pauses} times`);
    t.same({ bytes: got.bytes, sha256: got.sha256 }, { bytes: FITFUL, sha256: fitfulHash }, 'every byte arrived, in order (sha256)');
  });

  // Client connections read into one buffer too (net/read-into.ts): the same for uploads.
  t.test(`HTTP/1.1: an upload the app reads in fits and starts arrives intact (${name(topology)})`, async (t) => {
    const app = await h1App((req, res) => readFitfully(req, (read) => res.end(JSON.stringify(read))));
    t.teardown(() => app.close());
    const { port } = await through(t, topology, () => app.port);
    const got = await new Promise<FitfulRead>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/fitful', agent: false, headers: { host: 'app', 'Content-Length': String(FITFUL) } }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve(JSON.parse(body) as FitfulRead));
        res.on('error', reject);
      });
      req.on('error', reject);
      void writeBlocks(req, FITFUL).then(() => req.end());
    });
    t.ok(got.pauses > 50, `the app stopped ${got.pauses} times`);
    t.same({ bytes: got.bytes, sha256: got.sha256 }, { bytes: FITFUL, sha256: fitfulHash }, 'every byte arrived, in order (sha256)');
  });

  t.test(`HTTP/1.1: a client that stops reading stops the app's writes (${name(topology)})`, async (t) => {
    const writer = newWriter();
    let appClosed: 'finished' | 'aborted' | undefined;
    const app = await h1App((req, res) => {
      req.resume();
      res.writeHead(200, { 'Content-Length': String(TOTAL) });
      res.once('close', () => (appClosed = res.writableFinished ? 'finished' : 'aborted'));
      blockWriter(res, TOTAL, writer);
    });
    t.teardown(() => app.close());
    const { port } = await through(t, topology, () => app.port);

    const client = net.connect({ port, host: '127.0.0.1' });
    t.teardown(() => client.destroy());
    let read = 0;
    const reading = (d: Buffer) => {
      read += d.length;
      if (read > 4 * MiB) client.pause(); // a few MiB, then nothing
    };
    client.on('data', reading);
    client.write('GET /slow HTTP/1.1\r\nHost: app\r\n\r\n');
    const { rssGrowth } = await stalledEarly(t, topology, writer, () => read, 'the app', 'the client');
    t.ok(writer.drains > 0, "the app's res.write() returned false and it waited for 'drain'");
    t.ok(rssGrowth < STALLED_RSS_LIMIT, `and not in the proxy's memory: RSS ${mib(rssGrowth)} more (< ${mib(STALLED_RSS_LIMIT)})`);

    // Reading again lets the app go on; a client that then goes away stops it.
    const resumedAt = writer.accepted;
    client.off('data', reading).on('data', (d: Buffer) => (read += d.length)).resume();
    await until(() => writer.accepted > resumedAt + 64 * MiB, 'the app to write again once the client reads');
    client.destroy();
    await until(() => appClosed !== undefined, "the app's response to close");
    t.equal(appClosed, 'aborted', "the client went away: the app's response was cut off, not written to the end into a buffer");
  });

  t.test(`HTTP/1.1: an app that stops reading an upload stops the client's writes (${name(topology)})`, async (t) => {
    let received = 0;
    let appReq: http.IncomingMessage | undefined;
    const reading = (d: Buffer) => {
      received += d.length;
      if (received > 4 * MiB) appReq!.pause(); // a few MiB, then nothing
    };
    const app = await h1App((req) => {
      appReq = req;
      req.on('data', reading);
    });
    t.teardown(() => app.close());
    const { port } = await through(t, topology, () => app.port);

    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/upload', agent: false, headers: { 'Content-Length': String(TOTAL) } });
    req.on('error', () => {});
    t.teardown(() => req.destroy());
    const writer = newWriter();
    blockWriter(req, TOTAL, writer);
    const { rssGrowth } = await stalledEarly(t, topology, writer, () => received, 'the client', 'the app');
    t.ok(writer.drains > 0, "the client's req.write() returned false and it waited for 'drain'");
    t.ok(rssGrowth < STALLED_RSS_LIMIT, `RSS ${mib(rssGrowth)} more (< ${mib(STALLED_RSS_LIMIT)})`);

    const resumedAt = writer.accepted;
    appReq!.off('data', reading).on('data', (d: Buffer) => (received += d.length)).resume();
    await until(() => writer.accepted > resumedAt + 64 * MiB, 'the client to write again once the app reads');
    t.pass('the client writes again once the app reads');
  });

  t.test(`HTTP/2: a client stream that stops reading stops the app's stream, flow control end to end (${name(topology)})`, async (t) => {
    const writer = newWriter();
    const app = await h2App((stream) => {
      stream.respond({ ':status': 200 });
      blockWriter(stream, TOTAL, writer);
    });
    t.teardown(() => app.close());
    const { port } = await through(t, topology, () => app.port);
    const stream = h2Session(t, port).request({ ':path': '/slow' });
    stream.on('error', () => {});
    let read = 0;
    const reading = (d: Buffer) => {
      read += d.length;
      if (read > 4 * MiB) stream.pause();
    };
    stream.on('data', reading);
    await stalledEarly(t, topology, writer, () => read, 'the app', 'the client');
    const resumedAt = writer.accepted;
    stream.off('data', reading).on('data', (d: Buffer) => (read += d.length)).resume();
    await until(() => writer.accepted > resumedAt + 64 * MiB, 'the app to write again once the client reads');
    t.pass('the app writes again once the client reads');
  });
}
