// The L7 scenario's Node.js floor pair (mode `node`): the least a pair of Node.js proxies
// on meshlet's path can do, so that one run tells how much of meshlet's distance to nginx
// is the runtime (node:http, node:http2, node:tls and one JavaScript thread) and how much
// is meshlet. It has meshlet's shape and none of its features:
//
//   client → a (a's loopback, one listener per protocol) ⇒ b (b's address) → app
//
//   a  HTTP/1.1 (node:http) and h2c (node:http2) listeners. Every request, whatever its
//      protocol, becomes one stream on ONE HTTP/2 session per protocol to b, over TLS 1.3
//      with client certificates: many app connections multiplexed on one mTLS connection
//      between the sidecars, as meshlet carries them.
//   b  HTTP/2 over TLS listeners that require a client certificate from the CA; HTTP/1.1
//      goes on to the app through a keep-alive http.Agent, HTTP/2 and gRPC on one h2c
//      session per app port.
//
// Deliberately missing: interception (the client addresses a, as with nginx), protocol
// detection, SPIFFE checks, routing, retries, metrics, logs, request ids, header case.
// Kept, because a proxy is wrong without them: hop-by-hop headers dropped, Host ⇄
// :authority, bodies streamed, response trailers (gRPC's status lives there), 502 or
// RST_STREAM on upstream errors, cancellation passed upstream.
//
//   node-pair a|b --listen HOST --ports H1,H2,GRPC --upstream HOST --upstream-ports H1,H2,GRPC
//                 --ca FILE --cert FILE --key FILE [--server-name NAME]
//
// Prints {"ready":true} once every listener is up.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { parseArgs } from 'node:util';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    listen: { type: 'string' },
    ports: { type: 'string' },
    upstream: { type: 'string' },
    'upstream-ports': { type: 'string' },
    ca: { type: 'string' },
    cert: { type: 'string' },
    key: { type: 'string' },
    'server-name': { type: 'string', default: 'server.bench.local' },
  },
});

const PROTOCOLS = ['h1', 'h2', 'grpc'] as const;
type Protocol = (typeof PROTOCOLS)[number];
type Headers = Readonly<Record<string, string | string[] | number | undefined>>;
const { NGHTTP2_NO_ERROR, NGHTTP2_CANCEL, NGHTTP2_INTERNAL_ERROR, NGHTTP2_FLAG_END_STREAM } = http2.constants;
// meshlet's session settings (src/proxy/http/session-factories.ts, h2-downstream.ts), so
// flow control and stream limits are not where the two differ.
const SETTINGS: http2.Settings = { initialWindowSize: 4 * 1024 * 1024, enablePush: false };
const SERVER_SETTINGS: http2.Settings = { ...SETTINGS, maxConcurrentStreams: 1000 };
// Connection-scoped in HTTP/1.1, forbidden in HTTP/2 (node:http2 throws on them). Host
// travels as :authority; te survives only as `te: trailers` (re-added below).
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings', 'te', 'host']);

function usage(why: string): never {
  console.error(`node-pair: ${why}\nusage: node-pair a|b --listen HOST --ports H1,H2,GRPC --upstream HOST --upstream-ports H1,H2,GRPC --ca F --cert F --key F`);
  process.exit(2);
}

function portsFlag(name: 'ports' | 'upstream-ports'): Record<Protocol, number> {
  const n = (values[name] ?? '').split(',').map(Number);
  if (n.length !== 3 || !n.every((p) => Number.isInteger(p) && p > 0)) usage(`--${name} takes three ports (HTTP/1.1, HTTP/2, gRPC)`);
  return { h1: n[0]!, h2: n[1]!, grpc: n[2]! };
}

const hostPort = (host: string, port: number) => `${host.includes(':') ? `[${host}]` : host}:${port}`;

/** The end-to-end headers of a message; pseudo-headers too when both hops are HTTP/2. */
function endToEnd(headers: Headers, pseudo: boolean): http2.OutgoingHttpHeaders {
  const out: http2.OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name) && (pseudo || !name.startsWith(':'))) out[name] = value;
  }
  // gRPC clients send it, and HTTP/2 allows this one value.
  if (headers.te === 'trailers') out.te = 'trailers';
  return out;
}

/** One HTTP/2 session to one upstream, opened on first use and replaced once it has closed (GOAWAY, error, peer gone). */
function pooled(connect: () => http2.ClientHttp2Session): () => http2.ClientHttp2Session {
  let session: http2.ClientHttp2Session | undefined;
  return () => {
    if (session && !session.closed && !session.destroyed) return session;
    session = connect();
    // Each stream reports its own failure; a dead session is only replaced.
    session.on('error', () => {});
    return session;
  };
}

/** a → b: TLS 1.3 with a client certificate, b's chain and name verified, ALPN h2. */
function mtlsSession(host: string, port: number, creds: tls.SecureContextOptions): http2.ClientHttp2Session {
  const socket = () =>
    tls.connect({ ...creds, host, port, servername: values['server-name'], minVersion: 'TLSv1.3', ALPNProtocols: ['h2'] }).setNoDelay(true);
  return http2.connect(`https://${hostPort(host, port)}`, { settings: SETTINGS, createConnection: socket });
}

/** b → app: h2c with prior knowledge. */
function h2cSession(host: string, port: number): http2.ClientHttp2Session {
  return http2.connect(`http://${hostPort(host, port)}`, { settings: SETTINGS, createConnection: () => net.connect({ host, port, noDelay: true }) });
}

/** An upstream HTTP/2 stream, or undefined when the session refuses one (it is closing). */
function openStream(session: () => http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, endStream: boolean): http2.ClientHttp2Stream | undefined {
  try {
    return session().request(headers, { endStream });
  } catch {
    return undefined;
  }
}

/** An HTTP/2 response's failure: 502 before its headers, RST_STREAM after. */
function failH2(down: http2.ServerHttp2Stream): void {
  if (down.destroyed || down.closed) return;
  if (down.headersSent) down.close(NGHTTP2_INTERNAL_ERROR);
  else down.respond({ ':status': 502 }, { endStream: true });
}

/** a's HTTP/1.1 listener: the request as a stream on the pooled mTLS session to b. */
function h1ToH2(req: http.IncomingMessage, res: http.ServerResponse, session: () => http2.ClientHttp2Session): void {
  // HTTP/1.1's rule: without Content-Length or Transfer-Encoding there is no body, so the
  // stream ends with its headers (no empty DATA frame).
  const bodyless = req.headers['content-length'] === undefined && req.headers['transfer-encoding'] === undefined;
  const head = { ...endToEnd(req.headers, false), ':method': req.method, ':path': req.url, ':scheme': 'http', ...(req.headers.host ? { ':authority': req.headers.host } : {}) };
  const up = openStream(session, head, bodyless);
  const fail = () => {
    if (res.headersSent) res.destroy();
    else res.writeHead(502, { 'content-length': '0' }).end();
  };
  if (!up) return fail();
  up.on('response', (h) => {
    res.writeHead(Number(h[':status']), endToEnd(h, false));
    up.pipe(res);
  });
  up.on('error', () => {});
  // Refused, failed or reset: a reset stream still ends its readable side, which would
  // pass a cut body off as whole.
  up.on('close', () => {
    if (!res.writableEnded || (up.rstCode !== NGHTTP2_NO_ERROR && !res.writableFinished)) fail();
  });
  res.on('close', () => res.writableFinished || up.closed || up.close(NGHTTP2_CANCEL));
  if (!bodyless) req.pipe(up);
}

/** HTTP/2 on both hops (a's h2c listeners to b, b's TLS listeners to the app): stream to stream, trailers included. */
function h2ToH2(down: http2.ServerHttp2Stream, headers: Headers, session: () => http2.ClientHttp2Session): void {
  down.on('error', () => {});
  const up = openStream(session, endToEnd(headers, true), down.endAfterHeaders);
  if (!up) return failH2(down);
  up.on('response', (h, flags) => {
    // A response that ends with its headers (gRPC's trailers-only errors) ends here too.
    if (flags & NGHTTP2_FLAG_END_STREAM) return down.respond(endToEnd(h, true), { endStream: true });
    let trailers: http2.OutgoingHttpHeaders = {};
    up.once('trailers', (t) => (trailers = endToEnd(t, false)));
    // The upstream's trailers arrive before its end, hence before our last DATA frame;
    // none (plain HTTP/2) sends an empty END_STREAM instead.
    down.respond(endToEnd(h, true), { waitForTrailers: true });
    down.once('wantTrailers', () => down.sendTrailers(trailers));
    up.pipe(down);
  });
  up.on('error', () => {});
  // As in h1ToH2: a reset upstream resets the client's stream, even after its last DATA.
  up.on('close', () => {
    if (!down.writableEnded || up.rstCode !== NGHTTP2_NO_ERROR) failH2(down);
  });
  down.on('close', () => down.rstCode === NGHTTP2_NO_ERROR || up.closed || up.close(NGHTTP2_CANCEL));
  if (!down.endAfterHeaders) down.pipe(up);
}

/** b's HTTP/1.1 back port: the stream from a as an HTTP/1.1 request on the app's keep-alive pool. */
function h2ToH1(down: http2.ServerHttp2Stream, headers: Headers, target: { host: string; port: number; agent: http.Agent }): void {
  down.on('error', () => {});
  const head = endToEnd(headers, false);
  if (typeof headers[':authority'] === 'string') head.host = headers[':authority'];
  const up = http.request({ ...target, method: String(headers[':method']), path: String(headers[':path']), headers: head });
  up.on('response', (res) => {
    down.respond({ ':status': res.statusCode ?? 502, ...endToEnd(res.headers, false) });
    res.on('error', () => {});
    res.on('close', () => res.complete || failH2(down));
    res.pipe(down);
  });
  up.on('error', () => failH2(down));
  down.on('close', () => down.rstCode === NGHTTP2_NO_ERROR || up.destroy());
  if (down.endAfterHeaders) up.end();
  else down.pipe(up);
}

function listen(server: net.Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port }, resolve);
  });
}

async function main(): Promise<void> {
  const role = positionals[0];
  if (role !== 'a' && role !== 'b') usage('the role is a or b');
  const { listen: host, upstream } = values;
  if (!host || !upstream || !values.ca || !values.cert || !values.key) usage('--listen, --upstream, --ca, --cert and --key are required');
  const ports = portsFlag('ports');
  const upstreamPorts = portsFlag('upstream-ports');
  // Read once, as the proxy UID: an unreadable key fails here, before "ready".
  const creds = { ca: readFileSync(values.ca), cert: readFileSync(values.cert), key: readFileSync(values.key) };
  const servers: Array<[net.Server, number]> = [];
  for (const p of PROTOCOLS) {
    if (role === 'a') {
      const session = pooled(() => mtlsSession(upstream, upstreamPorts[p], creds));
      const server =
        p === 'h1'
          ? http.createServer({ keepAliveTimeout: 600_000, requestTimeout: 0 }, (req, res) => h1ToH2(req, res, session))
          : http2.createServer({ settings: SERVER_SETTINGS }).on('stream', (s, h) => h2ToH2(s, h, session));
      servers.push([server, ports[p]]);
    } else {
      const server = http2.createSecureServer({ ...creds, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3', settings: SERVER_SETTINGS });
      if (p === 'h1') {
        const target = { host: upstream, port: upstreamPorts.h1, agent: new http.Agent({ keepAlive: true }) };
        server.on('stream', (s, h) => h2ToH1(s, h, target));
      } else {
        const session = pooled(() => h2cSession(upstream, upstreamPorts[p]));
        server.on('stream', (s, h) => h2ToH2(s, h, session));
      }
      servers.push([server, ports[p]]);
    }
  }
  for (const [server, port] of servers) {
    // node:http sets it itself; node:http2 does not, and Nagle would hold back small frames.
    server.on('connection', (socket: net.Socket) => socket.setNoDelay(true));
    server.on('sessionError', () => {});
    await listen(server, host, port);
  }
  console.log(JSON.stringify({ ready: true, role, listening: ports }));
}

await main();
