// Imported rather than read as globals: Node's global Buffer and performance are accessors, each read a call (about 170 instructions in callgrind's count).
import { Buffer } from 'node:buffer';
import { performance } from 'node:perf_hooks';
import type net from 'node:net';
import type { DestinationSnapshot, PoolSnapshotSource } from '../../admin/clusters.ts';
import { MeshletError } from '../../errors.ts';
import { formatHostPort, type OrigDst } from '../../net/addresses.ts';
import { bodyAbort, PushBody, type BodyAbort, type BodyProducer } from '../../pipeline/body.ts';
import type { ProxyRequest, ProxyResponse, WorkloadMetadata } from '../../pipeline/exchange.ts';
import type { RawHeaders } from '../../pipeline/headers.ts';
import { readDirectly, type ReadInto } from '../../net/read-into.ts';
import { plainConnector, type Connector, type Upstream } from '../tcp/connectors.ts';
import { MessageWriter } from './h1/message-writer.ts';
import { IdleSweep } from './idle-sweep.ts';
import { Http1Parser, type Head, type Http1ParseError } from './h1/parser.ts';
import { requestHead } from './h1/serialize.ts';
import { DropNames, endToEndMarked, get, MESH_HEADERS } from './headers.ts';
import { beforeResponse, connectFailure } from './upstream-errors.ts';
import type { ConnectionLimit } from '../../resilience/limits.ts';

export interface Http1UpstreamOptions {
  connectTimeoutMs: number;
  /** Idle keep-alive connections are closed after this (before the server's own timeout, ideally). */
  idleTimeoutMs: number;
  /** How connections are made: plain TCP to an app, or mTLS to a peer sidecar. */
  connector?: Connector;
  /** The request head's extra fields and the response's reading, for the hop between sidecars. */
  framing?: Http1Framing;
}

/** What a sender adds to and takes from an HTTP/1.1 exchange (the mesh hop's own headers). */
export interface Http1Framing {
  /** The hop's own header fields, written after the request's. */
  addedRequestHeaders(req: ProxyRequest): RawHeaders;
  /** The peer's workload, from a received response head before its connection-level fields are removed. */
  responsePeer(head: Head): WorkloadMetadata | undefined;
  /** The same for received trailers. */
  responseTrailers(trailers: RawHeaders): RawHeaders;
}

/** What the parser marks in a response head (Head.marks), by name. */
const dropFromResponse = new DropNames(MESH_HEADERS);

const NO_HEADERS: RawHeaders = [];
const CHUNKED: RawHeaders = ['Transfer-Encoding', 'chunked'];

const plainFraming: Http1Framing = {
  addedRequestHeaders: () => NO_HEADERS,
  responsePeer: () => undefined,
  responseTrailers: (trailers) => trailers,
};

/** A request waiting for a connection to its destination. */
interface Waiter {
  readonly req: ProxyRequest;
  readonly dst: OrigDst;
  readonly connectTimeoutMs: number;
  readonly resolve: (res: ProxyResponse) => void;
  readonly reject: (err: unknown) => void;
  readonly onAbort: () => void;
}

const MAX_IDLE_PER_DESTINATION = 256;
const RESPONSE_LIMITS = { maxHeadBytes: 256 * 1024, maxHeaders: 500 };

/**
 * HTTP/1.1 to an upstream on meshlet's own codec, over a keep-alive pool per destination.
 * The most recently used idle connection is reused first (the least likely to have been
 * closed by the server); idle ones are closed after idleTimeoutMs. Header names keep
 * their case: requests are written from raw header lists.
 */
export class Http1Upstream implements PoolSnapshotSource {
  readonly #options: Required<Http1UpstreamOptions>;
  readonly #idle = new Map<string, UpstreamConnection[]>();
  /** Open connections per destination, busy or idle (for /clusters; counted per connection, not per request). */
  readonly #open = new Map<string, { dst: OrigDst; count: number }>();
  /** Requests waiting for a connection, per destination (only under a ConnectionLimit). */
  readonly #waiting = new Map<string, Waiter[]>();
  /** Closes connections idle longer than idleTimeoutMs. */
  readonly #sweeper: IdleSweep;

  constructor(options: Http1UpstreamOptions) {
    this.#options = { connector: plainConnector, framing: plainFraming, ...options };
    this.#sweeper = new IdleSweep(this.#options.idleTimeoutMs, (oldest) => this.#sweep(oldest));
  }

  /**
   * `connectTimeoutMs`: the destination's, when its policy has one (a new connection is
   * made); `limit`: its connection limit, when its policy has one.
   */
  send(req: ProxyRequest, dst: OrigDst, connectTimeoutMs = this.#options.connectTimeoutMs, limit?: ConnectionLimit): Promise<ProxyResponse> {
    const idle = this.#takeIdle(dst.key);
    if (idle !== undefined) return idle.exchange(req);
    if (limit !== undefined && (this.#open.get(dst.key)?.count ?? 0) >= limit.max) return this.#wait(req, dst, connectTimeoutMs, limit);
    return this.#connect(dst, connectTimeoutMs).exchange(req);
  }

  /** Queues `req` for the next connection of its destination that is released or can be made. */
  #wait(req: ProxyRequest, dst: OrigDst, connectTimeoutMs: number, limit: ConnectionLimit): Promise<ProxyResponse> {
    let list = this.#waiting.get(dst.key);
    if ((list?.length ?? 0) >= limit.maxPending) {
      limit.overflow();
      return Promise.reject(new MeshletError('MESHLET_ERR_OVERFLOW', `max connections (${limit.max}) to ${formatHostPort(dst.address, dst.port)} reached, and ${limit.maxPending} requests wait for one`));
    }
    if (req.abort.aborted) return Promise.reject(new MeshletError('MESHLET_ERR_UPSTREAM_RESET', 'the client went away before a connection was free'));
    if (list === undefined) this.#waiting.set(dst.key, (list = []));
    const waiting = list;
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        req,
        dst,
        connectTimeoutMs,
        resolve,
        reject,
        onAbort: () => {
          const i = waiting.indexOf(waiter);
          if (i >= 0) waiting.splice(i, 1);
          reject(new MeshletError('MESHLET_ERR_UPSTREAM_RESET', 'the client went away while its request waited for a connection'));
        },
      };
      req.abort.on(waiter.onAbort);
      waiting.push(waiter);
    });
  }

  /** The first request waiting for a connection to `key`, taken off its queue. */
  #nextWaiter(key: string): Waiter | undefined {
    const list = this.#waiting.get(key);
    const waiter = list?.shift();
    if (list !== undefined && list.length === 0) this.#waiting.delete(key);
    waiter?.req.abort.off(waiter.onAbort);
    return waiter;
  }

  /** Closes every idle connection. */
  close(): void {
    for (const list of this.#idle.values()) for (const c of list) c.socket.destroy();
    this.#idle.clear();
    this.#sweeper.stop();
  }

  #takeIdle(key: string): UpstreamConnection | undefined {
    const list = this.#idle.get(key);
    if (!list) return undefined;
    let c: UpstreamConnection | undefined;
    while ((c = list.pop())) if (c.usable) return c;
    return undefined;
  }

  /** Destinations with open connections, and how many of those are idle. */
  snapshot(): DestinationSnapshot[] {
    return [...this.#open.values()].map(({ dst, count }) => {
      const waiting = this.#waiting.get(dst.key)?.length ?? 0;
      return {
        destination: formatHostPort(dst.address, dst.port),
        connections: count,
        idle: this.#idle.get(dst.key)?.filter((c) => c.usable).length ?? 0,
        ...(waiting > 0 ? { waiting } : {}),
      };
    });
  }

  #connect(dst: OrigDst, connectTimeoutMs: number): UpstreamConnection {
    const c = new UpstreamConnection((readInto) => this.#options.connector(dst, readInto), this.#options, connectTimeoutMs, {
      release: (c) => this.#release(dst.key, c),
      // A reused connection the server had closed, before any byte of the response: the
      // keep-alive race. A request without a body (or whose body never started) never
      // reached the app: it goes again on a fresh connection.
      resend: (req) => this.#connect(dst, connectTimeoutMs).exchange(req),
    });
    const open = this.#open.get(dst.key);
    if (open) open.count++;
    else this.#open.set(dst.key, { dst, count: 1 });
    c.socket.once('close', () => {
      const entry = this.#open.get(dst.key);
      if (entry && --entry.count === 0) this.#open.delete(dst.key);
      // Under a connection limit, the closed one's place goes to the first request waiting.
      const waiter = this.#waiting.size === 0 ? undefined : this.#nextWaiter(dst.key);
      if (waiter !== undefined) this.#connect(waiter.dst, waiter.connectTimeoutMs).exchange(waiter.req).then(waiter.resolve, waiter.reject);
    });
    return c;
  }

  #release(key: string, c: UpstreamConnection): void {
    // A request waiting for a connection (under a connection limit) takes this one at once.
    const waiter = this.#waiting.size === 0 ? undefined : this.#nextWaiter(key);
    if (waiter !== undefined) {
      c.exchange(waiter.req).then(waiter.resolve, waiter.reject);
      return;
    }
    let list = this.#idle.get(key);
    if (!list) this.#idle.set(key, (list = []));
    if (list.length >= MAX_IDLE_PER_DESTINATION) {
      c.socket.destroy();
      return;
    }
    list.push(c);
    this.#sweeper.start();
  }

  /** The idle sweep: closes pooled connections idle since before `oldest`; true while some stay idle. */
  #sweep(oldest: number): boolean {
    for (const [key, list] of this.#idle) {
      const keep = list.filter((c) => c.usable && (c.idleSince > oldest || (c.socket.destroy(), false)));
      if (keep.length > 0) this.#idle.set(key, keep);
      else this.#idle.delete(key);
    }
    return this.#idle.size > 0;
  }
}

/** The exchange under way on a connection. */
interface Pending {
  readonly req: ProxyRequest;
  readonly resolve: (res: ProxyResponse) => void;
  readonly reject: (err: unknown) => void;
  responseBody: PushBody | undefined;
  writer: MessageWriter | undefined;
  requestDone: boolean;
  responseDone: boolean;
  /** Any byte of the response arrived. */
  answered: boolean;
  keepAlive: boolean;
}

/** What a connection hands back to its pool. */
interface PoolHooks {
  /** The exchange is over and the connection can carry another. */
  release(c: UpstreamConnection): void;
  /** The request never reached the upstream on this (stale) connection: send it on another. */
  resend(req: ProxyRequest): Promise<ProxyResponse>;
}

/** One keep-alive connection; it is also the producer of the response bodies it reads. */
class UpstreamConnection implements BodyProducer {
  readonly socket: net.Socket;
  readonly #parser: Http1Parser;
  readonly #options: Required<Http1UpstreamOptions>;
  readonly #pool: PoolHooks;
  #connected = false;
  #connectTimer: NodeJS.Timeout | undefined;
  #pending: Pending | undefined;
  #uses = 0;
  #closed = false;
  idleSince = 0;

  constructor(connect: (readInto: ReadInto) => Upstream, options: Required<Http1UpstreamOptions>, connectTimeoutMs: number, pool: PoolHooks) {
    this.#options = options;
    this.#pool = pool;
    const upstream = connect({ buffer: READ_BUFFER, callback: this.#onRead });
    const socket = (this.socket = upstream.socket);
    readDirectly(socket);
    this.#parser = new Http1Parser(
      'response',
      {
        onHead: (head) => this.#onHead(head),
        // The parser copies it out of READ_BUFFER, which the next read overwrites (bodiesCopied).
        onBody: (chunk) => this.#pending?.responseBody?.push(chunk),
        onMessageEnd: (trailers) => this.#onResponseEnd(trailers),
        onError: (err) => this.#onParseError(err),
      },
      RESPONSE_LIMITS,
    );
    this.#parser.bodiesCopied = true;
    this.#connectTimer = setTimeout(
      () => socket.destroy(connectFailure(new MeshletError('MESHLET_ERR_UPSTREAM_CONNECT', `no connection within ${connectTimeoutMs} ms`))),
      connectTimeoutMs,
    );
    socket.once(upstream.readyEvent, () => {
      this.#connected = true;
      clearTimeout(this.#connectTimer);
    });
    socket.on('drain', () => this.#pending?.writer?.drained());
    socket.on('end', () => {
      this.#parser.finish();
      this.#fail(Object.assign(new Error('the upstream closed the connection'), { code: 'ECONNRESET' }));
    });
    socket.on('error', (err) => this.#fail(err));
    socket.once('close', () => this.#fail(Object.assign(new Error('the upstream connection closed'), { code: 'ECONNRESET' })));
  }

  readonly #onRead = (bytes: number): boolean => {
    if (this.#pending) this.#pending.answered = true;
    this.#parser.execute(READ_BUFFER, bytes); // no view made per read
    return true;
  };

  /** The client of the exchange under way went away: the rest of it cannot be used. */
  readonly #destroy = (): void => {
    this.socket.destroy();
  };

  /** Idle, open, and not half-closed by the server. */
  get usable(): boolean {
    return !this.#closed && !this.#pending && this.socket.writable && this.socket.readable;
  }

  exchange(req: ProxyRequest): Promise<ProxyResponse> {
    return new Promise((resolve, reject) => {
      const socket = this.socket;
      const pending: Pending = {
        req,
        resolve,
        reject,
        responseBody: undefined,
        writer: undefined,
        requestDone: !req.body,
        responseDone: false,
        answered: false,
        keepAlive: true,
      };
      this.#pending = pending;
      this.#uses++;
      if (req.abort.aborted) {
        this.#fail(bodyAbort('the client went away'));
        return;
      }
      req.abort.on(this.#destroy);
      this.#parser.expect(req.method);
      const added = this.#options.framing.addedRequestHeaders(req);
      const body = req.body;
      const chunked = body !== undefined && get(req.headers, 'content-length') === undefined;
      let text: string;
      try {
        text = requestHead(req.method, req.path, req.headers, chunked ? added.concat(CHUNKED) : added, req.authority, req.hostName, req.received);
      } catch (err) {
        this.#fail(err);
        return;
      }
      pending.writer = new MessageWriter(socket, text, body, chunked ? 'chunked' : 'length', (err) => this.#requestWritten(pending, err));
      pending.writer.start();
    });
  }

  #requestWritten(pending: Pending, err: BodyAbort | undefined): void {
    if (err) {
      this.socket.destroy(new Error(`the client's request body was cut short: ${err.message}`));
      return;
    }
    pending.requestDone = true;
    if (pending.responseDone) this.#done(pending);
  }

  #onHead(head: Head): boolean | void {
    const pending = this.#pending;
    if (!pending) {
      this.socket.destroy(); // a response nobody asked for
      return false;
    }
    if (head.status < 200 && head.status !== 101) {
      if (head.status === 100) pending.req.onContinue();
      return;
    }
    clearTimeout(this.#connectTimer);
    pending.keepAlive = head.keepAlive && !head.upgrade && head.framing !== 'eof';
    const framing = this.#options.framing;
    const peer = framing.responsePeer(head);
    // The parser's list, filtered in place; mesh headers go too, whoever sent them: never taken from an app.
    const headers = endToEndMarked(head.headers, head.marks, dropFromResponse);
    const body =
      head.framing === 'none'
        ? undefined
        : (pending.responseBody = new PushBody(this, head.framing === 'length' ? head.contentLength : undefined));
    // One shape for every response (no spreads): objects of one shape keep the callers' property access monomorphic.
    pending.resolve({ status: head.status, reason: head.reason || undefined, headers, received: head, body, peer, flag: '-' });
  }

  // The response body's producer: the socket is its source.
  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  cancel(): void {
    this.socket.destroy();
  }

  #onResponseEnd(trailers: string[]): boolean {
    const pending = this.#pending;
    if (!pending) return false;
    pending.responseDone = true;
    pending.responseBody?.finish(trailers.length > 0 ? this.#options.framing.responseTrailers(trailers) : trailers);
    if (pending.requestDone) this.#done(pending);
    return true; // anything more before the next request is refused by the parser: no response was expected
  }

  #onParseError(err: Http1ParseError): void {
    this.socket.destroy(err);
  }

  /** Both directions of the exchange are complete: back to the pool, or closed. */
  #done(pending: Pending): void {
    pending.req.abort.off(this.#destroy);
    this.#pending = undefined;
    if (!pending.keepAlive || this.#closed || !this.socket.writable) {
      this.#closed = true;
      this.socket.destroy();
      return;
    }
    this.idleSince = performance.now();
    this.#pool.release(this);
  }

  #fail(err: unknown): void {
    const pending = this.#pending;
    this.#closed = true;
    clearTimeout(this.#connectTimer);
    if (!this.socket.destroyed) this.socket.destroy();
    if (!pending) return;
    this.#pending = undefined;
    pending.req.abort.off(this.#destroy);
    const reason = bodyAbort(`the upstream connection closed: ${(err as Error).message}`);
    pending.writer?.cancel(reason);
    if (pending.responseBody) {
      if (!pending.responseDone) pending.responseBody.fail(reason);
      return;
    }
    const code = (err as NodeJS.ErrnoException).code ?? '';
    const stale = this.#uses > 1 && !pending.answered && (!pending.req.body || !pending.writer) && STALE_CONNECTION.has(code);
    if (stale) this.#pool.resend(pending.req).then(pending.resolve, pending.reject);
    else pending.reject(beforeResponse(err, this.#connected));
  }
}

/**
 * Every upstream connection reads into this one buffer (ReadInto): a read's bytes are
 * parsed before the next read can happen, and what outlives the read is copied (the
 * parser copies what it keeps; response bodies are copied as they go on). It saves, per
 * read, the stream machinery of a 'data' event and a buffer of its own.
 */
const READ_BUFFER = Buffer.allocUnsafeSlow(64 * 1024);

// Errors that mean a kept-alive connection was closed by the server just as we reused it
// (the "keep-alive race" behind many 503s users report of both anchors).
const STALE_CONNECTION = new Set(['ECONNRESET', 'EPIPE']);

