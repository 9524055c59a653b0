// Imported rather than read as globals: Node's global Buffer and performance are accessors, each read a call (about 170 instructions in callgrind's count).
import { Buffer } from 'node:buffer';
import { performance } from 'node:perf_hooks';
import type net from 'node:net';
import { MeshletError } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import { formatHostPort } from '../../net/addresses.ts';
import { readAcceptedInto, readAsStream, redirectReads } from '../../net/read-into.ts';
import { RequestAbort } from '../../pipeline/abort.ts';
import { bodyAbort, PushBody, type BodyAbort, type BodyProducer } from '../../pipeline/body.ts';
import type { Handler } from '../../pipeline/compose.ts';
import type { AcceptedConnection, ConnectionOutcome, ResponseFlag } from '../../pipeline/connection.ts';
import type { DrainableServer } from '../stack-deps.ts';
import { hasNoBody, isGrpc, type ProxyRequest, type ProxyResponse, type WorkloadMetadata } from '../../pipeline/exchange.ts';
import { errorResponse, rawErrorResponse } from './error-response.ts';
import { MessageWriter, type OutgoingFraming } from './h1/message-writer.ts';
import { Http1Parser, type Head, type Http1ParseError } from './h1/parser.ts';
import { responseHead } from './h1/serialize.ts';
import { IdleSweep } from './idle-sweep.ts';
import { DropNames, endToEndMarked, get, isMeshHop, MESH_HEADERS, without, type RawHeaders } from './headers.ts';

export interface Http1DownstreamOptions {
  maxHeaderBytes: number;
  headersTimeoutMs: number;
  /** How long a client's idle keep-alive connection is kept: long, so the app's client decides when to close it. */
  idleTimeoutMs: number;
}

/** What the hop between sidecars adds to an HTTP/1.1 exchange, on the receiving side. */
export interface Http1ServerFraming {
  /** The calling workload, from the request's head as read (mesh headers are removed after this). */
  peer(head: Head): WorkloadMetadata | undefined;
  /** Fields added to every response head. */
  responseHeaders(): RawHeaders;
}

/** An app's own HTTP/1.1: nothing added, nothing taken. */
const NO_HEADERS: RawHeaders = [];
export const appHttp1: Http1ServerFraming = { peer: () => undefined, responseHeaders: () => NO_HEADERS };

/** What a tunnel (`Upgrade`, CONNECT) is handed: the request head as received, and the bytes read past it. */
export interface TunnelRequest {
  readonly method: string;
  readonly target: string;
  readonly versionMinor: 0 | 1;
  /** As received, every header (hop-by-hop ones too: the upgrade needs them). */
  readonly headers: string[];
}

/** A raw bidirectional stream after `Upgrade` (WebSocket) or CONNECT: handed the client socket and what was read past the head. */
export type TunnelHandler = (conn: AcceptedConnection, req: TunnelRequest, socket: net.Socket, head: Buffer) => void;

const MAX_HEADERS = 200;
const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n';

/**
 * The HTTP/1.1 server side of both listeners, on meshlet's own codec (h1/parser.ts).
 * Each request goes through the request pipeline; its response is written back with the
 * upstream's header case. Pipelined requests are taken one at a time, so responses leave
 * in order; the parser waits at the end of a request until its response is written.
 */
export class Http1Downstream implements DrainableServer {
  readonly #handler: Handler<ProxyRequest, ProxyResponse>;
  readonly #tunnel: TunnelHandler;
  readonly #options: Http1DownstreamOptions;
  readonly #log: Logger;
  /** Read by every response (a property read or two): see DrainFlag. */
  readonly #drain: DrainFlag = { on: false, closeIdle: false };
  /** Connections being served, for closeIdle() and the idle sweep; added and removed once per connection. */
  readonly #live = new Set<ClientConnection>();
  /** Closes client connections idle (between requests) for longer than idleTimeoutMs. */
  readonly #sweeper: IdleSweep;

  constructor(handler: Handler<ProxyRequest, ProxyResponse>, tunnel: TunnelHandler, options: Http1DownstreamOptions, log: Logger) {
    this.#handler = handler;
    this.#tunnel = tunnel;
    this.#options = options;
    this.#log = log;
    this.#sweeper = new IdleSweep(options.idleTimeoutMs, (oldest) => {
      for (const c of this.#live) c.closeIfIdleSince(oldest);
      return this.#live.size > 0;
    });
  }

  /** Serves one connection; resolves when it is closed. */
  serve(conn: AcceptedConnection, framing: Http1ServerFraming = appHttp1): Promise<ConnectionOutcome> {
    this.#sweeper.start();
    return new Promise((resolve) => new ClientConnection(conn, framing, this.#handler, this.#tunnel, this.#options, this.#log, resolve, this.#drain, this.#live));
  }

  /** From now on every response says Connection: close and its connection closes after it. */
  drain(): void {
    this.#drain.on = true;
  }

  /** Closes the connections with no request under way (and no tunnel); the others close after their response. */
  closeIdle(): void {
    this.#drain.closeIdle = true;
    for (const c of this.#live) c.closeIfIdle();
  }
}

interface DrainFlag {
  /** Responses from now on carry Connection: close, and their connection closes after them. */
  on: boolean;
  /** The drain delay is over: a connection closes after its response even if that response went out keep-alive. */
  closeIdle: boolean;
}

/** One request in progress on a client connection. */
interface Exchange {
  readonly head: Head;
  readonly request: ProxyRequest;
  readonly body: PushBody | undefined;
  readonly aborted: RequestAbort;
  /** The whole request message was read. */
  requestDone: boolean;
  /** The response head went out. */
  responding: boolean;
  responseDone: boolean;
  writer: MessageWriter | undefined;
}

/** One client connection; it is also the producer of the request bodies it reads. */
class ClientConnection implements BodyProducer {
  readonly #conn: AcceptedConnection;
  readonly #framing: Http1ServerFraming;
  readonly #socket: net.Socket;
  readonly #parser: Http1Parser;
  readonly #handler: Handler<ProxyRequest, ProxyResponse>;
  readonly #tunnel: TunnelHandler;
  readonly #options: Http1DownstreamOptions;
  readonly #log: Logger;
  readonly #resolve: (outcome: ConnectionOutcome) => void;
  #flag: ResponseFlag = '-';
  #exchange: Exchange | undefined;
  /** A request whose head was just parsed, sent on once the bytes in hand are parsed: an error in them refuses it before anything leaves. */
  #undispatched: Exchange | undefined;
  /** The request whose response the pipeline is working on (one at a time). */
  #inPipeline: Exchange | undefined;
  #upgrade: Head | undefined;
  #headTimer: NodeJS.Timeout | undefined;
  /** No further request is taken: the client or a response asked to close, or the input is broken. */
  #closing = false;
  readonly #drain: DrainFlag;
  readonly #live: Set<ClientConnection>;
  /** Upgraded or CONNECT: a tunnel owns the socket now. */
  #handedOver = false;
  /** When the last exchange ended (performance.now()), for the idle sweep. */
  #idleSince = performance.now();
  /** The socket reads into READ_BUFFER (readAcceptedInto) rather than emitting 'data'. */
  #sharedReads = false;

  constructor(
    conn: AcceptedConnection,
    framing: Http1ServerFraming,
    handler: Handler<ProxyRequest, ProxyResponse>,
    tunnel: TunnelHandler,
    options: Http1DownstreamOptions,
    log: Logger,
    resolve: (outcome: ConnectionOutcome) => void,
    drain: DrainFlag,
    live: Set<ClientConnection>,
  ) {
    this.#drain = drain;
    this.#live = live;
    live.add(this);
    this.#conn = conn;
    this.#framing = framing;
    this.#socket = conn.socket;
    this.#handler = handler;
    this.#tunnel = tunnel;
    this.#options = options;
    this.#log = log;
    this.#resolve = resolve;
    this.#parser = new Http1Parser(
      'request',
      {
        onHead: (head) => this.#onHead(head),
        // With shared reads the parser copies it out of READ_BUFFER, which the next read overwrites.
        onBody: (chunk) => this.#exchange?.body?.push(chunk),
        onMessageEnd: (trailers) => this.#onRequestEnd(trailers),
        onError: (err) => this.#onParseError(err),
      },
      { maxHeadBytes: options.maxHeaderBytes, maxHeaders: MAX_HEADERS },
    );
    const socket = this.#socket;
    socket.setNoDelay(true);
    socket.on('end', () => this.#onEnd());
    socket.on('drain', () => this.#exchange?.writer?.drained());
    socket.on('error', () => {}); // 'close' follows; a reset client is not the proxy's error
    socket.once('close', () => this.#onClose());
    const held = readAcceptedInto(socket, { buffer: READ_BUFFER, callback: this.#onRead });
    if (held === undefined) {
      socket.on('data', this.#onData);
      return;
    }
    this.#sharedReads = true;
    this.#parser.bodiesCopied = true;
    for (const chunk of held) this.#onData(chunk);
  }

  readonly #onData = (data: Buffer): void => {
    this.#parser.execute(data);
    this.#afterParse();
  };

  readonly #onRead = (bytes: number): boolean => {
    this.#parser.execute(READ_BUFFER, bytes); // no view made per read
    this.#afterParse();
    return true;
  };

  /** After the parser has gone through the bytes in hand. */
  #afterParse(): void {
    const ready = this.#undispatched;
    if (ready) {
      this.#undispatched = undefined;
      if (!ready.aborted.aborted) this.#dispatch(ready);
    }
    if (this.#upgrade) {
      this.#handOver(this.#upgrade);
      return;
    }
    // A head that spans reads has a deadline (slow-loris); a whole head in one read costs no timer.
    if (this.#parser.inMessage && !this.#exchange && !this.#headTimer && !this.#socket.destroyed) {
      this.#headTimer = setTimeout(() => this.#onHeadTimeout(), this.#options.headersTimeoutMs);
    }
  }

  #onHead(head: Head): boolean {
    if (this.#headTimer) {
      clearTimeout(this.#headTimer);
      this.#headTimer = undefined;
    }
    if (head.upgrade) {
      this.#upgrade = head;
      return false;
    }
    const raw = head.headers;
    if (head.hosts > 1) {
      // RFC 9112 3.2: the proxy and the app (or a proxy before us) could each believe a different one.
      this.#refuse(new MeshletError('MESHLET_ERR_BAD_REQUEST', 'more than one Host header'));
      return false;
    }
    // Read before the list is filtered in place.
    const hostName = head.hostAt === -1 ? 'Host' : raw[head.hostAt]!;
    const host = head.hostAt === -1 ? undefined : raw[head.hostAt + 1];
    const grpc = head.contentTypeAt !== -1 && isGrpc(raw[head.contentTypeAt + 1]);
    if (!head.keepAlive) this.#closing = true;
    const conn = this.#conn;
    const aborted = new RequestAbort();
    const body = head.framing === 'none' ? undefined : new PushBody(this, head.framing === 'length' ? head.contentLength : undefined);
    const peer = this.#framing.peer(head);
    const headers = endToEndMarked(raw, head.marks, dropFromRequest); // the parser's list, filtered in place
    const exchange: Exchange = {
      head,
      body,
      aborted,
      requestDone: false,
      responding: false,
      responseDone: false,
      writer: undefined,
      request: {
        conn,
        protocol: 'http1',
        method: head.method,
        authority: host ?? formatHostPort(conn.origDst.address, conn.origDst.port),
        path: head.target,
        scheme: 'http',
        headers,
        received: head,
        hostName,
        body,
        grpc,
        peer,
        abort: aborted,
        onContinue: () => {
          if (head.expectContinue && !exchange.responding && !this.#socket.destroyed) this.#socket.write(CONTINUE);
        },
      },
    };
    this.#exchange = exchange;
    this.#undispatched = exchange;
    return true;
  }

  // The request body's producer: the socket is its source.
  pause(): void {
    this.#socket.pause();
  }

  resume(): void {
    this.#socket.resume();
  }

  /** Nobody will read the rest of this request: the connection cannot carry another one. */
  cancel(): void {
    this.#socket.destroy();
  }

  #onRequestEnd(trailers: string[]): boolean {
    const exchange = this.#exchange;
    if (!exchange) return true;
    exchange.requestDone = true;
    exchange.body?.finish(trailers.length > 0 ? without(trailers, isMeshHop) : trailers);
    if (!exchange.responseDone) return false; // the next request waits for this response
    this.#exchangeEnded();
    return !this.#closing;
  }

  /**
   * Runs the request pipeline. Requests are taken one at a time, so the one in the
   * pipeline is a field and its outcome goes to two handlers made once per connection,
   * not to an async function's frame and promise per request.
   */
  #dispatch(exchange: Exchange): void {
    this.#inPipeline = exchange;
    let response: Promise<ProxyResponse>;
    try {
      response = this.#handler(exchange.request);
    } catch (err) {
      response = Promise.reject(err);
    }
    response.then(this.#onResponse, this.#onFailure);
  }

  readonly #onResponse = (response: ProxyResponse): void => {
    const exchange = this.#inPipeline!;
    this.#inPipeline = undefined;
    this.#respond(exchange, response);
  };

  readonly #onFailure = (err: unknown): void => {
    const exchange = this.#inPipeline!;
    this.#inPipeline = undefined;
    if (exchange.aborted.aborted) return;
    this.#log.debug({ conn: this.#conn.id, err: (err as Error).message }, 'request failed');
    this.#respond(exchange, errorResponse(err, exchange.request.grpc));
  };

  #respond(exchange: Exchange, response: ProxyResponse): void {
    const body = response.body;
    const socket = this.#socket;
    if (exchange.aborted.aborted || socket.destroyed) {
      body?.cancel(bodyAbort('the client went away'));
      return;
    }
    if (response.flag !== '-') this.#flag = response.flag;
    exchange.responding = true;
    const head = exchange.head;
    const headers = response.headers;
    // The fields this side adds after the response's own: usually none, or the hop's
    // constant ones, so a list is made only when framing needs a field too.
    let added = this.#framing.responseHeaders();
    const bodiless = hasNoBody(head.method, response.status);
    let framing: OutgoingFraming | undefined;
    if (bodiless) {
      body?.cancel(bodyAbort('a response to HEAD, or a 1xx, 204 or 304, has no body'));
    } else if (!body) {
      if (get(headers, 'content-length') === undefined) added = added.concat('Content-Length', '0');
    } else if (get(headers, 'content-length') !== undefined) {
      framing = 'length';
    } else if (head.versionMinor === 1) {
      framing = 'chunked';
      added = added.concat('Transfer-Encoding', 'chunked');
    } else {
      framing = 'close'; // an HTTP/1.0 client reads to the end of the connection
      this.#closing = true;
    }
    if (this.#drain.on) this.#closing = true;
    if (this.#closing) added = added.concat('Connection', 'close');
    else if (head.versionMinor === 0) added = added.concat('Connection', 'keep-alive');
    let text: string;
    try {
      text = responseHead(response.status, response.reason ?? '', headers, added, response.received);
    } catch (err) {
      // A header no HTTP/1.1 message may carry (from an HTTP/2 upstream): the proxy's own 502 instead.
      body?.cancel(bodyAbort('the response head cannot be written as HTTP/1.1'));
      if (response.flag === '-' && framing !== undefined) return this.#respond(exchange, errorResponse(err, exchange.request.grpc));
      socket.destroy();
      return;
    }
    exchange.writer = new MessageWriter(socket, text, framing ? body : undefined, framing ?? 'length', (err) => this.#responseWritten(exchange, err));
    exchange.writer.start();
  }

  /** Request and response are both done: the connection is idle until the next head. */
  #exchangeEnded(): void {
    this.#exchange = undefined;
    this.#idleSince = performance.now();
  }

  #responseWritten(exchange: Exchange, err: BodyAbort | undefined): void {
    exchange.responseDone = true;
    if (err) {
      // Cut short upstream: the client must not take it for whole.
      this.#socket.destroy();
      return;
    }
    if (this.#closing || this.#drain.closeIdle) {
      this.#socket.end();
      return;
    }
    if (!exchange.requestDone) return; // the rest of the request body still goes upstream; then the next request
    this.#exchangeEnded();
    this.#parser.resume();
    this.#afterParse();
  }

  #onParseError(err: Http1ParseError): void {
    const exchange = this.#exchange;
    if (exchange?.body && !exchange.requestDone) {
      // Broken framing inside a body: the upstream must not take what came for the whole body.
      exchange.body.fail(bodyAbort(`the request body is malformed: ${err.message}`));
    }
    this.#refuse(err);
  }

  #onHeadTimeout(): void {
    this.#headTimer = undefined;
    if (this.#exchange || this.#socket.destroyed) return;
    this.#refuse(new MeshletError('MESHLET_ERR_REQUEST_HEADERS_TIMEOUT', 'the request head did not arrive within http.requestHeadersTimeout'));
  }

  /** A request the proxy will not forward: an error response when none is under way, then the connection closes. */
  #refuse(err: MeshletError): void {
    this.#flag = 'DPE';
    this.#closing = true;
    this.#log.info({ conn: this.#conn.id, code: err.code, reason: err.message }, 'refused a malformed or slow HTTP/1.1 request');
    const socket = this.#socket;
    if (this.#exchange?.responding || !socket.writable) {
      socket.destroy();
      return;
    }
    this.#exchange?.aborted.abort();
    socket.end(rawErrorResponse(err));
    socket.destroySoon();
  }

  /** `Upgrade` or CONNECT: the tunnel gets the socket and everything read past the head. */
  #handOver(head: Head): void {
    if (this.#exchange) return; // after the response in progress
    this.#upgrade = undefined;
    this.#handedOver = true;
    const socket = this.#socket;
    if (this.#sharedReads) readAsStream(socket);
    else socket.off('data', this.#onData);
    socket.pause();
    // A tunnel is closed after tcp.idleTimeout without a byte either way, as an opaque TCP connection is.
    socket.setTimeout(this.#options.idleTimeoutMs, () => socket.destroy());
    this.#tunnel(this.#conn, { method: head.method, target: head.target, versionMinor: head.versionMinor, headers: head.headers }, socket, this.#parser.takeBuffered());
  }

  #onEnd(): void {
    this.#parser.finish();
    if (!this.#exchange) this.#socket.end();
    else this.#closing = true;
  }

  /** The idle sweep: a connection with no exchange since `oldest` is closed (a tunnel keeps its own timeout). */
  closeIfIdleSince(oldest: number): void {
    if (this.#exchange || this.#handedOver || this.#upgrade || this.#idleSince > oldest) return;
    this.#socket.destroy();
  }

  /** Draining: a connection between requests goes now; bytes of a request arriving meanwhile are not read. */
  closeIfIdle(): void {
    if (this.#exchange || this.#handedOver || this.#upgrade || this.#parser.inMessage) return;
    this.#closing = true;
    if (this.#sharedReads) redirectReads(this.#socket, STOP_READING);
    else this.#socket.off('data', this.#onData);
    this.#socket.destroySoon();
  }

  #onClose(): void {
    this.#live.delete(this);
    if (this.#headTimer) clearTimeout(this.#headTimer);
    const exchange = this.#exchange;
    if (exchange) {
      const reason = bodyAbort('the client closed the connection');
      if (!exchange.responseDone) exchange.aborted.abort();
      if (!exchange.requestDone) exchange.body?.fail(reason);
      exchange.writer?.cancel(reason);
    }
    this.#resolve({ receivedBytes: this.#socket.bytesRead, sentBytes: this.#socket.bytesWritten, flag: this.#flag });
  }
}

/**
 * Every client connection that can reads into this one buffer (readAcceptedInto): a
 * read's bytes are parsed before the next read can happen, and what outlives the read is
 * copied (the parser copies what it keeps; request bodies are copied as they go on). It
 * is not the upstream connections' buffer: parsing a request writes upstream, and a read
 * of the other side can then never land in the bytes being parsed, whatever a socket
 * layer (TLS) does within a write.
 */
const READ_BUFFER = Buffer.allocUnsafeSlow(64 * 1024);
const STOP_READING = (): boolean => false;

/** Host travels as the request's authority; mesh headers are never taken from an app. What the parser marks in a request head (Head.marks), by name. */
const dropFromRequest = new DropNames(['host', ...MESH_HEADERS]);
