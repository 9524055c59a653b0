// The L7 scenario's Node.js ceiling pair (mode `node-raw`): the simplest pair of Node.js
// processes that moves HTTP/1.1 on raw sockets, with no node:http anywhere. Where the
// Node.js floor pair (node-pair.ts) measures what Node's core HTTP modules cost on
// meshlet's path, this one measures what the runtime itself can do there: heads split
// at CRLFCRLF, bodies counted by Content-Length, the bytes forwarded as they were
// received, pooled keep-alive sockets upstream. meshlet's own HTTP/1.1 codec does more
// than this, so it is a ceiling, not a competitor.
//
//   client → a (a's loopback) → b (b's address) → app          plaintext on both hops
//
// Both sides run the same code; a forwards to b, b to the app. Per client connection,
// requests go to one upstream socket taken from the pool when a request head arrives,
// and that socket goes back to the pool once every response to the requests written on
// it has come back whole (so pipelined requests stay in order on one socket). Request
// and response bytes are forwarded unchanged: no header is read, added or removed but
// Content-Length and Transfer-Encoding, which are only looked at.
//
// Correct for what the benchmark sends: keep-alive GETs without a body (h2load --h1,
// curl, l7-load.ts) answered 200 with a Content-Length body. What it does NOT handle:
//   - Transfer-Encoding (chunked) in either direction: the client's connection is closed;
//   - a response delimited by closing the connection (no Content-Length): taken as empty;
//   - responses without a body whatever their Content-Length: to HEAD, 304, and 1xx
//     interim responses (Expect: 100-continue, 101 Switching Protocols / Upgrade,
//     WebSocket, CONNECT) — their framing is wrong, the exchange hangs or breaks;
//   - hop-by-hop headers (Connection, Keep-Alive, Proxy-*): forwarded, never acted on;
//     `Connection: close` closes nothing on our side;
//   - validation: any head up to 64 KiB that has a CRLFCRLF is forwarded as it is;
//     nothing is rejected: a malformed Content-Length counts as none, of repeated ones
//     the first counts;
//   - errors: an upstream that fails or closes mid-exchange closes the client's
//     connection (no 502); a pooled socket the upstream closed just as it was reused
//     fails the exchange the same way (the keep-alive race);
//   - backpressure: bytes are written as they arrive, whatever the reader's pace;
//   - timeouts, limits on connections or pool size beyond IDLE_MAX idle sockets, TLS,
//     HTTP/2 and gRPC (the scenario runs only its HTTP/1.1 kinds on this pair).
//
//   node-raw-pair a|b --listen HOST --port P --upstream HOST --upstream-port P
//
// Prints {"ready":true} once it listens.
import net from 'node:net';
import { parseArgs } from 'node:util';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    listen: { type: 'string' },
    port: { type: 'string' },
    upstream: { type: 'string' },
    'upstream-port': { type: 'string' },
  },
});

const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');
/** A head that has no CRLFCRLF within this many bytes closes the connection. */
const HEAD_MAX = 64 * 1024;
/** Idle upstream sockets kept for reuse (nginx's `keepalive 128` in the nginx pairs). */
const IDLE_MAX = 128;

/** Where one direction of a connection stands in its HTTP/1.1 messages. */
class Framer {
  /** The start of a head whose CRLFCRLF has not arrived yet (not forwarded until it has). */
  private held: Buffer | undefined;
  /** Body bytes of the current message still to come. */
  private bodyLeft = 0;

  /** Between a message's first forwarded byte and its last. */
  get inBody(): boolean {
    return this.bodyLeft > 0;
  }

  /**
   * The bytes of `chunk` that can be forwarded now (whole heads and the body bytes that
   * follow them), how many heads and whole messages they hold; or a reason to give up.
   */
  feed(chunk: Buffer): { bytes: Buffer; heads: number; ends: number } | string {
    const buf = this.held ? Buffer.concat([this.held, chunk]) : chunk;
    this.held = undefined;
    let pos = 0;
    let heads = 0;
    let ends = 0;
    while (pos < buf.length) {
      if (this.bodyLeft > 0) {
        const n = Math.min(this.bodyLeft, buf.length - pos);
        pos += n;
        this.bodyLeft -= n;
        if (this.bodyLeft === 0) ends++;
        continue;
      }
      const end = buf.indexOf(CRLFCRLF, pos);
      if (end < 0) {
        if (buf.length - pos > HEAD_MAX) return `no end of head within ${HEAD_MAX} bytes`;
        this.held = buf.subarray(pos);
        break;
      }
      const head = buf.toString('latin1', pos, end + 2);
      if (/\r\ntransfer-encoding:/i.test(head)) return 'Transfer-Encoding is not handled';
      this.bodyLeft = Number(/\r\ncontent-length:[ \t]*(\d+)/i.exec(head)?.[1] ?? 0);
      pos = end + 4;
      heads++;
      if (this.bodyLeft === 0) ends++;
    }
    return { bytes: pos === buf.length ? buf : buf.subarray(0, pos), heads, ends };
  }
}

/** A keep-alive socket to the upstream, and the client connection it serves, if any. */
interface Upstream {
  socket: net.Socket;
  owner: Downstream | undefined;
}

/** The upstream's idle sockets (most recently used last) and how to open one. */
class Pool {
  private readonly idle: Upstream[] = [];
  private readonly host: string;
  private readonly port: number;

  constructor(host: string, port: number) {
    this.host = host;
    this.port = port;
  }

  take(owner: Downstream): Upstream {
    const reused = this.idle.pop();
    if (reused) {
      reused.owner = owner;
      return reused;
    }
    const up: Upstream = { socket: net.connect({ host: this.host, port: this.port, noDelay: true }), owner };
    up.socket.on('data', (chunk: Buffer) => (up.owner ? up.owner.fromUpstream(chunk) : up.socket.destroy()));
    up.socket.on('error', () => {});
    up.socket.on('close', () => {
      const i = this.idle.indexOf(up);
      if (i >= 0) this.idle.splice(i, 1);
      up.owner?.close();
    });
    return up;
  }

  give(up: Upstream): void {
    up.owner = undefined;
    if (this.idle.length < IDLE_MAX) this.idle.push(up);
    else up.socket.destroy();
  }
}

/** One client connection: its requests onto a pooled upstream socket, the responses back. */
class Downstream {
  private readonly requests = new Framer();
  private readonly responses = new Framer();
  private up: Upstream | undefined;
  /** Requests written to `up` whose response has not fully come back. */
  private outstanding = 0;
  private readonly socket: net.Socket;
  private readonly pool: Pool;

  constructor(socket: net.Socket, pool: Pool) {
    this.socket = socket;
    this.pool = pool;
    socket.on('data', (chunk: Buffer) => this.fromClient(chunk));
    socket.on('error', () => {});
    socket.on('close', () => this.close());
  }

  private fromClient(chunk: Buffer): void {
    const r = this.requests.feed(chunk);
    if (typeof r === 'string') return this.close();
    if (r.heads > 0 && !this.up) this.up = this.pool.take(this);
    this.outstanding += r.heads;
    if (r.bytes.length > 0) this.up?.socket.write(r.bytes);
    this.release();
  }

  fromUpstream(chunk: Buffer): void {
    const r = this.responses.feed(chunk);
    if (typeof r === 'string') return this.close();
    this.socket.write(r.bytes);
    this.outstanding -= r.ends;
    this.release();
  }

  /** The upstream socket back to the pool once nothing written to it awaits a response. */
  private release(): void {
    if (!this.up || this.outstanding > 0 || this.requests.inBody || this.responses.inBody) return;
    this.pool.give(this.up);
    this.up = undefined;
  }

  /** Both ends closed: the upstream socket is mid-exchange, so it cannot be reused. */
  close(): void {
    const up = this.up;
    this.up = undefined;
    if (up) {
      up.owner = undefined;
      up.socket.destroy();
    }
    this.socket.destroy();
  }
}

function usage(why: string): never {
  console.error(`node-raw-pair: ${why}\nusage: node-raw-pair a|b --listen HOST --port P --upstream HOST --upstream-port P`);
  process.exit(2);
}

const role = positionals[0];
if (role !== 'a' && role !== 'b') usage('the role is a or b');
const port = Number(values.port);
const upstreamPort = Number(values['upstream-port']);
if (!values.listen || !values.upstream || !(port > 0) || !(upstreamPort > 0)) usage('--listen, --port, --upstream and --upstream-port are required');
const pool = new Pool(values.upstream, upstreamPort);
const server = net.createServer({ noDelay: true }, (socket) => new Downstream(socket, pool));
await new Promise<void>((resolve, reject) => {
  server.once('error', reject);
  server.listen({ host: values.listen, port }, resolve);
});
console.log(JSON.stringify({ ready: true, role, listening: port }));
