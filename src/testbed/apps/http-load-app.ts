// Constant HTTP load for the drain test: `--concurrency` loops, each sending GETs to
// `--url` one after another over a keep-alive agent (HTTP/1.1), or as streams of one
// HTTP/2 connection with `--h2` (h2c, prior knowledge), until SIGTERM; then it lets the
// requests under way finish, prints {"done": N} and exits. One JSON line per finished
// request: {"r": [start, end, status, cause]}, times in ms since the epoch (the test
// compares them with the moment it signalled the proxy), `cause` the meshlet-error
// header ("" when none), status 0 with `cause` the error code when there was no response.
// With `--stream-url`, one more request reads a long streamed body to its end and
// prints {"stream": {start, end, status, bytes, sha256, trailer, error}}.
import { createHash } from 'node:crypto';
import http from 'node:http';
import http2 from 'node:http2';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    concurrency: { type: 'string', default: '4' },
    'stream-url': { type: 'string' },
    h2: { type: 'boolean', default: false },
  },
});
if (!values.url) throw new Error('--url is required');
const url = values.url;
const agent = new http.Agent({ keepAlive: true, maxSockets: Number(values.concurrency) });
const print = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`);
let stopping = false;
let done = 0;

let session: http2.ClientHttp2Session | undefined;

/** One GET as a stream of the shared HTTP/2 session (a new one when the last has gone). */
function onceH2(): Promise<void> {
  const start = Date.now();
  const target = new URL(url);
  if (!session || session.closed || session.destroyed) {
    session = http2.connect(target.origin);
    session.on('error', () => {});
  }
  return new Promise((resolve) => {
    const stream = session!.request({ ':path': target.pathname });
    let status = 0;
    let cause = '';
    stream.setTimeout(20_000, () => stream.close(http2.constants.NGHTTP2_CANCEL));
    stream.on('response', (headers) => {
      status = Number(headers[':status']);
      cause = String(headers['meshlet-error'] ?? '');
    });
    stream.resume();
    stream.on('error', (err: NodeJS.ErrnoException) => (cause ||= err.code ?? err.message));
    stream.on('close', () => {
      const whole = stream.rstCode === http2.constants.NGHTTP2_NO_ERROR;
      print({ r: [start, Date.now(), whole ? status : 0, whole ? cause : cause || `RST ${stream.rstCode}`] });
      resolve();
    });
  });
}

function once(): Promise<void> {
  if (values.h2) return onceH2();
  const start = Date.now();
  return new Promise((resolve) => {
    const req = http.get(url, { agent, timeout: 20_000 }, (res) => {
      res.resume();
      res.on('end', () => {
        print({ r: [start, Date.now(), res.statusCode, String(res.headers['meshlet-error'] ?? '')] });
        resolve();
      });
      res.on('error', (err: NodeJS.ErrnoException) => {
        print({ r: [start, Date.now(), 0, err.code ?? err.message] });
        resolve();
      });
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
    req.on('error', (err: NodeJS.ErrnoException) => {
      print({ r: [start, Date.now(), 0, err.code ?? err.message] });
      resolve();
    });
  });
}

async function loop(): Promise<void> {
  while (!stopping) {
    await once();
    done++;
  }
}

function stream(target: string): Promise<void> {
  const start = Date.now();
  return new Promise((resolve) => {
    const hash = createHash('sha256');
    let bytes = 0;
    const report = (status: number, error: string, trailer = '') => {
      print({ stream: { start, end: Date.now(), status, bytes, sha256: hash.digest('hex'), trailer, error } });
      resolve();
    };
    const req = http.get(target, { agent: false }, (res) => {
      res.on('data', (d: Buffer) => {
        hash.update(d);
        bytes += d.length;
      });
      res.on('end', () => report(res.statusCode ?? 0, '', String(res.trailers['x-body-sha256'] ?? '')));
      res.on('error', (err: NodeJS.ErrnoException) => report(res.statusCode ?? 0, err.code ?? err.message));
    });
    req.on('error', (err: NodeJS.ErrnoException) => report(0, err.code ?? err.message));
  });
}

const loops = Array.from({ length: Number(values.concurrency) }, () => loop());
const streamed = values['stream-url'] ? stream(values['stream-url']) : Promise.resolve();
process.on('SIGTERM', () => (stopping = true));
print({ started: Number(values.concurrency) });
await Promise.all(loops);
await streamed;
print({ done });
agent.destroy();
session?.close();
