import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { freePort } from './ports.ts';

// For the HTTP tests of the proxy: upstream apps that count what reaches them, a raw
// client that writes exact bytes (nothing normalises a malformed request on its way to
// the proxy) and a parser for the raw HTTP/1.1 responses it gets back.

const listenOn = (server: net.Server, port = 0) =>
  new Promise<number>((resolve) => server.listen(port, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));

export interface SeenRequest {
  readonly method: string;
  readonly url: string;
  readonly rawHeaders: string[];
}

export interface H1App {
  readonly port: number;
  readonly server: http.Server;
  /** Request heads the app's server parsed, in arrival order (checkContinue and upgrades included). */
  readonly requests: SeenRequest[];
  /** TCP connections the app accepted. */
  readonly connections: number;
  /** Bytes read over all the app's connections, open or closed. */
  bytesReceived(): number;
  /** Connections still open. */
  openConnections(): number;
  close(): void;
}

/**
 * A node:http app on loopback. `handle` answers 'request' (and 'checkContinue' when
 * `checkContinue` is given); every request head and every byte is counted first, so a
 * test can say that nothing of a refused request reached the app.
 */
export async function h1App(
  handle: (req: http.IncomingMessage, res: http.ServerResponse) => void,
  options: { checkContinue?: (req: http.IncomingMessage, res: http.ServerResponse) => void; server?: http.ServerOptions; port?: number } = {},
): Promise<H1App> {
  const server = http.createServer({ keepAliveTimeout: 60_000, ...options.server });
  const requests: SeenRequest[] = [];
  const sockets = new Set<net.Socket>();
  let closedBytes = 0;
  let connections = 0;
  const seen = (req: http.IncomingMessage) => requests.push({ method: req.method ?? '', url: req.url ?? '', rawHeaders: req.rawHeaders });
  server.on('connection', (socket: net.Socket) => {
    connections++;
    sockets.add(socket);
    socket.on('error', () => {});
    socket.once('close', () => {
      sockets.delete(socket);
      closedBytes += socket.bytesRead;
    });
  });
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    seen(req);
    handle(req, res);
  });
  if (options.checkContinue) {
    const onContinue = options.checkContinue;
    server.on('checkContinue', (req: http.IncomingMessage, res: http.ServerResponse) => {
      seen(req);
      onContinue(req, res);
    });
  }
  server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket) => {
    seen(req);
    socket.destroy();
  });
  const port = await listenOn(server, options.port);
  return {
    port,
    server,
    requests,
    get connections() {
      return connections;
    },
    bytesReceived: () => closedBytes + [...sockets].reduce((n, s) => n + s.bytesRead, 0),
    openConnections: () => sockets.size,
    close: () => {
      server.close();
      server.closeAllConnections();
    },
  };
}

export interface H2App {
  readonly port: number;
  readonly server: http2.Http2Server;
  /** Streams the app received, in arrival order. */
  readonly streams: number;
  /** Sessions (connections) the app accepted. */
  readonly sessions: number;
  close(): void;
}

/** A node:http2 h2c app; every session is destroyed on close so no pooled session keeps the test alive. */
export async function h2App(onStream: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, session: http2.ServerHttp2Session) => void, options: http2.ServerOptions = {}): Promise<H2App> {
  const server = http2.createServer(options);
  const open = new Set<http2.ServerHttp2Session>();
  let streams = 0;
  let sessions = 0;
  server.on('session', (session) => {
    sessions++;
    open.add(session);
    session.on('error', () => {});
    session.once('close', () => open.delete(session));
  });
  server.on('stream', (stream, headers) => {
    streams++;
    stream.on('error', () => {});
    onStream(stream, headers, stream.session as http2.ServerHttp2Session);
  });
  const port = await listenOn(server);
  return {
    port,
    server,
    get streams() {
      return streams;
    },
    get sessions() {
      return sessions;
    },
    close: () => {
      server.close();
      for (const s of open) s.destroy();
    },
  };
}

/** A raw TCP app: `onSocket` does whatever misbehaviour the test needs. */
export async function tcpApp(onSocket: (socket: net.Socket) => void): Promise<{ port: number; readonly connections: number; close(): void }> {
  const sockets = new Set<net.Socket>();
  let connections = 0;
  const server = net.createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('error', () => {});
    socket.once('close', () => sockets.delete(socket));
    onSocket(socket);
  });
  const port = await listenOn(server);
  return {
    port,
    get connections() {
      return connections;
    },
    close: () => {
      server.close();
      for (const s of sockets) s.destroy();
    },
  };
}

/** A port on loopback where nothing listens (bound, then released). */
export const closedPort = (): Promise<number> => freePort();

// ---- The raw client ----------------------------------------------------------------

export interface RawExchange {
  /** Everything received. */
  readonly data: Buffer;
  /** True when the proxy closed the connection (FIN or reset); false when the safety limit ended the wait. */
  readonly closedByPeer: boolean;
  /** The socket's error code, if it ended with one (ECONNRESET). */
  readonly error?: string;
}

/**
 * Writes `parts` (each written separately, in order) on a new connection and collects
 * everything until the proxy closes it. `limitMs` is only a safety net so a proxy that
 * keeps the connection open fails the closedByPeer check instead of hanging the file.
 */
export function rawExchange(port: number, parts: Array<string | Buffer>, options: { limitMs?: number } = {}): Promise<RawExchange> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const chunks: Buffer[] = [];
    let error: string | undefined;
    let closedByPeer = true;
    const limit = setTimeout(() => {
      closedByPeer = false;
      socket.destroy();
    }, options.limitMs ?? 10_000);
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', (err: NodeJS.ErrnoException) => (error ??= err.code ?? err.message));
    // The proxy's FIN: closing our side too lets 'close' tell us the connection is over.
    socket.on('end', () => socket.end());
    socket.on('close', () => {
      clearTimeout(limit);
      resolve({ data: Buffer.concat(chunks), closedByPeer, ...(error ? { error } : {}) });
    });
    for (const part of parts) socket.write(part);
  });
}

/** A connection kept open for several exchanges: `read(methods)` waits for one whole response per request method. */
export class RawClient {
  readonly socket: net.Socket;
  #buffer = Buffer.alloc(0);
  #waiters: Array<() => void> = [];
  #closed = false;

  constructor(port: number) {
    this.socket = net.connect({ port, host: '127.0.0.1' });
    this.socket.on('data', (d: Buffer) => {
      this.#buffer = Buffer.concat([this.#buffer, d]);
      this.#wake();
    });
    this.socket.on('error', () => {});
    this.socket.on('close', () => {
      this.#closed = true;
      this.#wake();
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** The responses to requests of `methods`, in order (interim 1xx ones included in the list). */
  async read(methods: string[]): Promise<ParsedResponse[]> {
    for (;;) {
      const parsed = parseResponses(this.#buffer, methods);
      if (parsed.complete) {
        this.#buffer = this.#buffer.subarray(parsed.consumed);
        return parsed.responses;
      }
      if (this.#closed) throw new Error(`connection closed after ${parsed.responses.length} of ${methods.length} responses: ${JSON.stringify(this.#buffer.toString('latin1').slice(0, 300))}`);
      await new Promise<void>((r) => this.#waiters.push(r));
    }
  }

  /** The next response, which must be an interim (1xx) one. */
  async readInterim(): Promise<ParsedResponse> {
    for (;;) {
      const end = this.#buffer.indexOf('\r\n\r\n');
      if (end !== -1) {
        const head = parseHead(this.#buffer, 0, end);
        if (head.status >= 200) throw new Error(`expected a 1xx response: ${JSON.stringify(this.#buffer.toString('latin1').slice(0, 200))}`);
        this.#buffer = this.#buffer.subarray(end + 4);
        return { ...head, body: Buffer.alloc(0), chunked: false, trailers: [] };
      }
      if (this.#closed) throw new Error('connection closed before an interim response');
      await new Promise<void>((r) => this.#waiters.push(r));
    }
  }

  close(): void {
    this.socket.destroy();
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }
}

// ---- Parsing raw HTTP/1.1 responses ---------------------------------------------------

export interface ParsedResponse {
  readonly status: number;
  readonly reason: string;
  /** Names as written on the wire, in order. */
  readonly headers: Array<[string, string]>;
  readonly body: Buffer;
  readonly chunked: boolean;
  readonly trailers: Array<[string, string]>;
}

/** The value of `name` (any case), or undefined. */
export function header(r: Pick<ParsedResponse, 'headers'>, name: string): string | undefined {
  return r.headers.find(([n]) => n.toLowerCase() === name.toLowerCase())?.[1];
}

const headerLine = (l: string): [string, string] => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()];

/** The status line and headers between `at` and `headEnd` (where the blank line starts). */
function parseHead(data: Buffer, at: number, headEnd: number): Pick<ParsedResponse, 'status' | 'reason' | 'headers'> {
  const lines = data.subarray(at, headEnd).toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(lines[0]!);
  if (!m) throw new Error(`not an HTTP/1.1 status line: ${JSON.stringify(lines[0])}`);
  return { status: Number(m[1]), reason: m[2] ?? '', headers: lines.slice(1).map(headerLine) };
}

/**
 * Parses as many whole responses as `data` holds, one per method in `methods` (1xx
 * interim responses come extra and are listed too). A response framed by neither
 * Content-Length nor chunked runs to the end of `data`. `complete` says whether every
 * method got its final response.
 */
export function parseResponses(data: Buffer, methods: string[]): { responses: ParsedResponse[]; complete: boolean; consumed: number } {
  const responses: ParsedResponse[] = [];
  let at = 0;
  let answered = 0;
  while (answered < methods.length) {
    const headEnd = data.indexOf('\r\n\r\n', at);
    if (headEnd === -1) break;
    const base = parseHead(data, at, headEnd);
    const status = base.status;
    let pos = headEnd + 4;
    if (status >= 100 && status < 200) {
      responses.push({ ...base, body: Buffer.alloc(0), chunked: false, trailers: [] });
      at = pos;
      continue;
    }
    const method = methods[answered]!;
    const te = header(base, 'transfer-encoding');
    const cl = header(base, 'content-length');
    if (method === 'HEAD' || status === 204 || status === 304) {
      responses.push({ ...base, body: Buffer.alloc(0), chunked: false, trailers: [] });
    } else if (te && /chunked/i.test(te)) {
      const body: Buffer[] = [];
      let trailers: Array<[string, string]> | undefined;
      for (;;) {
        const lineEnd = data.indexOf('\r\n', pos);
        if (lineEnd === -1) break;
        const size = parseInt(data.subarray(pos, lineEnd).toString('latin1'), 16);
        pos = lineEnd + 2;
        if (size === 0) {
          const end = data.indexOf('\r\n\r\n', pos - 2);
          if (end === -1) break;
          const lines = data.subarray(pos, end).toString('latin1').split('\r\n').filter(Boolean);
          trailers = lines.map(headerLine);
          pos = end + 4;
          break;
        }
        if (data.length < pos + size + 2) break;
        body.push(data.subarray(pos, pos + size));
        pos += size + 2;
      }
      if (!trailers) break;
      responses.push({ ...base, body: Buffer.concat(body), chunked: true, trailers });
    } else if (cl !== undefined) {
      if (data.length < pos + Number(cl)) break;
      responses.push({ ...base, body: data.subarray(pos, pos + Number(cl)), chunked: false, trailers: [] });
      pos += Number(cl);
    } else {
      responses.push({ ...base, body: data.subarray(pos), chunked: false, trailers: [] });
      pos = data.length;
    }
    at = pos;
    answered++;
  }
  return { responses, complete: answered === methods.length, consumed: at };
}

/** A normal request through `port` on a new connection (node:http, no pooling): status and body. */
export function get(port: number, path = '/', headers: http.OutgoingHttpHeaders = {}): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

// ---- An HTTP/2 client -------------------------------------------------------------------

export interface H2Result {
  readonly status: number;
  readonly headers: http2.IncomingHttpHeaders;
  readonly body: Buffer;
  readonly trailers: http2.IncomingHttpHeaders;
  /** How the stream ended: 'end' (END_STREAM) or 'reset' with the RST_STREAM code. */
  readonly end: 'end' | 'reset';
  readonly rstCode: number;
}

/** One h2c (prior knowledge) session to `port`, closed when the test ends. */
export function h2Session(t: { teardown(fn: () => void): void }, port: number): http2.ClientHttp2Session {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on('error', () => {});
  t.teardown(() => session.destroy());
  return session;
}

/** Sends one request on `session` and collects the response, however the stream ends. */
export function h2Request(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body?: string | Buffer): Promise<H2Result> {
  return new Promise((resolve) => {
    const stream = session.request({ ':method': body === undefined ? 'GET' : 'POST', ':path': '/', ...headers }, { endStream: body === undefined });
    let status = 0;
    let responseHeaders: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    let ended = false;
    const chunks: Buffer[] = [];
    stream.on('response', (h) => {
      status = Number(h[':status']);
      responseHeaders = h;
    });
    stream.on('trailers', (h) => (trailers = h));
    stream.on('data', (d: Buffer) => chunks.push(d));
    stream.on('end', () => (ended = true));
    stream.on('error', () => {});
    stream.on('close', () =>
      resolve({ status, headers: responseHeaders, body: Buffer.concat(chunks), trailers, end: ended && stream.rstCode === http2.constants.NGHTTP2_NO_ERROR ? 'end' : 'reset', rstCode: stream.rstCode }),
    );
    if (body !== undefined) stream.end(body);
  });
}
