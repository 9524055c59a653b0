// An HTTP/1.1 and h2c (HTTP/2 prior knowledge) server for the L7 end-to-end tests. It
// answers with a JSON report of the request exactly as it arrived (rawHeaders: names in
// their original case, order and duplicates), so a test can tell what a proxy in between
// added, dropped or changed. Each request is also printed on stdout as {"request": report}.
//
//   server --port P [--h2c-port Q] [--pod NAME] [--host ::]
//       prints {"listening": P, "proto": "http/1.1" | "h2c"} per port.
//
// Paths (the same on both ports):
//   /trailers?bytes=N   a streamed body of N random bytes (chunked on HTTP/1.1) followed
//                       by the trailer X-Body-Sha256 (its sha256) and X-Trailer-Case;
//                       with &pace=MS, a pause of MS ms after each 16 KiB (a long response).
//   /nodate             no Date header in the response (Node adds one otherwise).
//   anything else       200 (HTTP/1.1: the status in ?status=N), the JSON report;
//                       headers X-Resp-MiXeD: yes and X-Served-By.
// The report: {proto, httpVersion, method, url, rawHeaders, bodyBytes, bodySha256,
// rawTrailers, remoteAddress, remotePort, pod}.
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    pod: { type: 'string', default: 'unknown' },
    host: { type: 'string', default: '::' },
    port: { type: 'string', default: '8080' },
    'h2c-port': { type: 'string' },
  },
});

const print = (value: unknown) => console.log(JSON.stringify(value));
const unmap = (a: string | undefined) => {
  const s = a ?? '';
  return s.startsWith('::ffff:') && s.includes('.') ? s.slice(7) : s;
};

/** The JSON this app answers with (the tests read it). */
export interface Report {
  proto: 'http/1.1' | 'h2c';
  httpVersion: string;
  method: string;
  url: string;
  rawHeaders: string[];
  bodyBytes: number;
  bodySha256: string;
  rawTrailers: string[];
  remoteAddress: string;
  remotePort: number | undefined;
  pod: string;
}

/** Reads a request body, hashing it. */
function readBody(body: NodeJS.ReadableStream): Promise<{ bytes: number; sha256: string }> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    let bytes = 0;
    body.on('data', (d: Buffer) => {
      hash.update(d);
      bytes += d.length;
    });
    body.on('end', () => resolve({ bytes, sha256: hash.digest('hex') }));
    body.on('error', reject);
  });
}

/** Writes `total` random bytes with backpressure through `write`, `paceMs` apart per 16 KiB; returns their sha256. */
async function streamRandom(total: number, write: (chunk: Buffer) => boolean, drain: () => Promise<void>, paceMs = 0): Promise<string> {
  const hash = createHash('sha256');
  for (let left = total; left > 0; ) {
    const chunk = randomBytes(Math.min(16384, left));
    hash.update(chunk);
    left -= chunk.length;
    if (!write(chunk)) await drain();
    if (paceMs > 0) await new Promise((r) => setTimeout(r, paceMs));
  }
  return hash.digest('hex');
}

const pathOf = (url: string) => new URL(url, 'http://x').pathname;
const bytesParam = (url: string) => Number(new URL(url, 'http://x').searchParams.get('bytes') ?? '1000');
const paceParam = (url: string) => Number(new URL(url, 'http://x').searchParams.get('pace') ?? '0');
/** `?status=404`: the status to answer (HTTP/1.1), for tests that count responses by code. */
const statusParam = (url: string) => Number(new URL(url, 'http://x').searchParams.get('status') ?? '200');

// --- HTTP/1.1 -----------------------------------------------------------------------

const h1 = http.createServer({ keepAliveTimeout: 60_000 }, async (req, res) => {
  const body = await readBody(req);
  const report: Report = {
    proto: 'http/1.1',
    httpVersion: req.httpVersion,
    method: req.method ?? '',
    url: req.url ?? '',
    rawHeaders: req.rawHeaders,
    bodyBytes: body.bytes,
    bodySha256: body.sha256,
    rawTrailers: req.rawTrailers,
    remoteAddress: unmap(req.socket.remoteAddress),
    remotePort: req.socket.remotePort,
    pod: values.pod,
  };
  print({ request: report });
  const path = pathOf(report.url);
  if (path === '/trailers') {
    res.writeHead(200, [
      ['Content-Type', 'application/octet-stream'],
      ['Trailer', 'X-Body-Sha256, X-Trailer-Case'],
    ]);
    const sha = await streamRandom(bytesParam(report.url), (c) => res.write(c), () => new Promise((r) => res.once('drain', r)), paceParam(report.url));
    res.addTrailers([
      ['X-Body-Sha256', sha],
      ['X-Trailer-Case', 'MiXeD'],
    ]);
    res.end();
    return;
  }
  if (path === '/nodate') res.sendDate = false;
  const json = JSON.stringify(report);
  // An array of pairs keeps the names' case on the wire.
  res.writeHead(statusParam(report.url), [
    ['Content-Type', 'application/json'],
    ['Content-Length', String(Buffer.byteLength(json))],
    ['X-Resp-MiXeD', 'yes'],
    ['X-Served-By', values.pod],
  ]);
  res.end(req.method === 'HEAD' ? undefined : json);
});

h1.listen({ host: values.host, port: Number(values.port), ipv6Only: false }, () => {
  print({ listening: (h1.address() as AddressInfo).port, proto: 'http/1.1' });
});

// --- h2c ----------------------------------------------------------------------------

if (values['h2c-port']) {
  const h2 = http2.createServer();
  h2.on('stream', async (stream, headers, _flags, rawHeaders: string[]) => {
    const body = await readBody(stream);
    const url = String(headers[':path'] ?? '');
    const report: Report = {
      proto: 'h2c',
      httpVersion: '2.0',
      method: String(headers[':method'] ?? ''),
      url,
      rawHeaders,
      bodyBytes: body.bytes,
      bodySha256: body.sha256,
      rawTrailers: [],
      remoteAddress: unmap(stream.session?.socket.remoteAddress),
      remotePort: stream.session?.socket.remotePort,
      pod: values.pod,
    };
    print({ request: report });
    if (stream.destroyed) return;
    const path = pathOf(url);
    if (path === '/trailers') {
      stream.respond({ ':status': 200, 'content-type': 'application/octet-stream' }, { waitForTrailers: true });
      const sha = await streamRandom(bytesParam(url), (c) => stream.write(c), () => new Promise((r) => stream.once('drain', r)), paceParam(url));
      stream.once('wantTrailers', () => stream.sendTrailers({ 'x-body-sha256': sha, 'x-trailer-case': 'MiXeD' }));
      stream.end();
      return;
    }
    const json = JSON.stringify(report);
    stream.respond(
      { ':status': 200, 'content-type': 'application/json', 'content-length': Buffer.byteLength(json), 'x-resp-mixed': 'yes', 'x-served-by': values.pod },
      { sendDate: path !== '/nodate' } as http2.ServerStreamResponseOptions,
    );
    stream.end(report.method === 'HEAD' ? undefined : json);
  });
  h2.listen({ host: values.host, port: Number(values['h2c-port']), ipv6Only: false }, () => {
    print({ listening: (h2.address() as AddressInfo).port, proto: 'h2c' });
  });
}
