import http2 from 'node:http2';
import type { Logger } from '../../log.ts';
import { RequestAbort } from '../../pipeline/abort.ts';
import { bodyAbort, type Body } from '../../pipeline/body.ts';
import { formatHostPort } from '../../net/addresses.ts';
import type { AcceptedConnection, ConnectionOutcome, ResponseFlag } from '../../pipeline/connection.ts';
import type { Handler } from '../../pipeline/compose.ts';
import type { DrainableServer } from '../stack-deps.ts';
import { h2Body, pipeBodyToH2, type OnStreamClose } from './h2-body.ts';
import { CONNECTION_WINDOW, endWithPeer, sessionMemoryMb, STREAM_WINDOW } from './h2-session.ts';
import { errorResponse } from './error-response.ts';
import { isGrpc, type HttpProtocol, type ProxyRequest, type ProxyResponse } from '../../pipeline/exchange.ts';
import { endToEnd, fromH2Raw, get, toH2, without, withoutMeshHeaders, type RawHeaders } from './headers.ts';
import type { WorkloadMetadata } from '../../pipeline/exchange.ts';

const { NGHTTP2_INTERNAL_ERROR, NGHTTP2_FLAG_END_STREAM, NGHTTP2_CANCEL } = http2.constants;

// The upstream's Date header or none, never one of ours. respond() honours sendDate;
// @types/node does not declare it.
const NO_DATE = { sendDate: false } as http2.ServerStreamResponseOptions;

/** How a server-side stream's head is read and its response head written: the app's h2c, or meshlet/h2 from a peer sidecar. */
export interface H2ServerFraming {
  /** The request as the app meant it: its protocol, headers (mesh headers removed) and the Host name's case. */
  request(headers: RawHeaders): { protocol: HttpProtocol; headers: RawHeaders; hostName: string; peer?: WorkloadMetadata };
  /** The request's trailers as the app meant them (mesh headers removed). */
  requestTrailers(trailers: RawHeaders): RawHeaders;
  /** Extra response headers (lower-case names). */
  responseHeaders(response: ProxyResponse, req: ProxyRequest): Record<string, string>;
  /** Extra response trailers (lower-case names), given the response's trailers. */
  responseTrailers(trailers: RawHeaders): Record<string, string>;
}

export const appH2: H2ServerFraming = {
  request: (headers) => ({ protocol: 'h2', headers: withoutMeshHeaders(headers), hostName: 'host' }),
  requestTrailers: withoutMeshHeaders,
  responseHeaders: () => ({}),
  responseTrailers: () => ({}),
};

/** How long a client has to close a session after its GOAWAY before the proxy closes it (gracefully). */
const GOAWAY_GRACE_MS = 1000;

const goneAway = new WeakSet<http2.ServerHttp2Session>();

function goAway(session: http2.ServerHttp2Session): void {
  if (goneAway.has(session) || session.closed || session.destroyed) return;
  goneAway.add(session);
  session.goaway();
  setTimeout(() => session.close(), GOAWAY_GRACE_MS).unref();
}

export interface H2DownstreamOptions {
  maxHeaderBytes: number;
  /** SETTINGS_MAX_CONCURRENT_STREAMS we announce to the client. */
  maxConcurrentStreams: number;
  /** A stream without a frame either way for this long is reset and its exchange cancelled; 0: never. */
  streamIdleTimeoutMs?: number;
}

/**
 * The HTTP/2 server side: h2c with prior knowledge from an app, or meshlet/h2 from a
 * peer sidecar (decrypted by the mTLS layer). Each stream is one request through the
 * pipeline. RST_STREAM from the client cancels the upstream exchange; an upstream reset
 * after the response started resets the client's stream.
 */
export class H2Downstream implements DrainableServer {
  readonly #handler: Handler<ProxyRequest, ProxyResponse>;
  readonly #options: H2DownstreamOptions;
  readonly #log: Logger;
  readonly #sessions = new Set<http2.ServerHttp2Session>();

  constructor(handler: Handler<ProxyRequest, ProxyResponse>, options: H2DownstreamOptions, log: Logger) {
    this.#handler = handler;
    this.#options = options;
    this.#log = log;
  }

  serve(conn: AcceptedConnection, framing: H2ServerFraming): Promise<ConnectionOutcome> {
    const state = { flag: '-' as ResponseFlag };
    return new Promise((resolve) => {
      const socket = conn.socket;
      socket.once('close', () => resolve({ receivedBytes: socket.bytesRead, sentBytes: socket.bytesWritten, flag: state.flag }));
      conn.socket.setNoDelay(true); // a handed-over socket never got the server's noDelay
      const session = http2.performServerHandshake(socket, {
        maxHeaderListPairs: 1000,
        maxSendHeaderBlockLength: this.#options.maxHeaderBytes,
        maxSessionMemory: sessionMemoryMb(this.#options.maxConcurrentStreams),
        settings: { initialWindowSize: STREAM_WINDOW, maxConcurrentStreams: this.#options.maxConcurrentStreams, maxHeaderListSize: this.#options.maxHeaderBytes, enablePush: false },
      });
      session.setLocalWindowSize(CONNECTION_WINDOW);
      session.on('error', (err) => {
        state.flag = 'DPE';
        this.#log.debug({ conn: conn.id, err: err.message }, 'HTTP/2 session error from the client');
      });
      const open = new Set<http2.Http2Stream>();
      // The listeners' sockets are half-open (for opaque TCP): a client's FIN ends the session here.
      endWithPeer(session, socket, open);
      this.#sessions.add(session);
      session.on('stream', (stream, headers, flags: number, raw: string[]) => {
        open.add(stream);
        void this.#onStream(conn, framing, stream, open, headers, (flags & NGHTTP2_FLAG_END_STREAM) !== 0 || stream.endAfterHeaders, raw, state);
      });
      // The client's socket is closed when the session ends; keep going until then.
      session.once('close', () => {
        this.#sessions.delete(session);
        socket.destroy();
      });
    });
  }

  /**
   * GOAWAY (NO_ERROR, naming the last stream taken) on every session: the client opens
   * no more streams on it, its open ones finish, and the client closes the connection
   * itself, which ends the session here. A stream the client sent before it saw the
   * GOAWAY is refused (REFUSED_STREAM), which clients, meshlet's pools among them, may
   * safely send again. Closing the session from this side at once instead would race
   * the client: its connection could end before it had read the GOAWAY, and its streams
   * would be cut, not refused. So the session is closed here (gracefully: its open
   * streams finish) only GOAWAY_GRACE_MS later, for clients that do not close it.
   */
  drain(): void {
    for (const session of this.#sessions) goAway(session);
  }

  /** The drain delay is over: sessions opened since drain() (clients that had not heard yet) get their GOAWAY now. */
  closeIdle(): void {
    this.drain();
  }

  async #onStream(
    conn: AcceptedConnection,
    framing: H2ServerFraming,
    stream: http2.ServerHttp2Stream,
    /** The session's open streams: this one leaves it when it closes. */
    open: Set<http2.Http2Stream>,
    h: http2.IncomingHttpHeaders,
    noBody: boolean,
    raw: string[],
    state: { flag: ResponseFlag },
  ): Promise<void> {
    const aborted = new RequestAbort();
    // What the bodies on this stream do when it closes (h2-body.ts: one 'close' listener).
    let requestBodyClosed: OnStreamClose | undefined;
    let responseBodyClosed: OnStreamClose | undefined;
    stream.on('close', () => {
      open.delete(stream);
      if (stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR || !stream.writableFinished) aborted.abort();
      requestBodyClosed?.();
      responseBodyClosed?.();
    });
    stream.on('error', () => {}); // resets are seen through 'close' and rstCode
    const idleMs = this.#options.streamIdleTimeoutMs ?? 0;
    if (idleMs > 0) {
      // node:http2 restarts the stream's timer on every frame read or written, so this fires
      // only when the whole exchange stalled. The abort is a deadline's (flag UT, and a
      // circuit breaker counts it as a timeout), and it cancels the upstream side as well.
      stream.setTimeout(idleMs, () => {
        aborted.abort(true);
        stream.close(NGHTTP2_CANCEL);
      });
    }
    const head = framing.request(endToEnd(raw)); // pseudo-headers go with the hop-by-hop ones
    let trailers: RawHeaders = [];
    stream.on('trailers', (_t, _f, rawTrailers: string[]) => (trailers = framing.requestTrailers(fromH2Raw(rawTrailers))));
    let body: Body | undefined;
    if (!noBody) {
      const received = h2Body(stream, h, () => trailers);
      body = received.body;
      requestBodyClosed = received.closed;
    }
    const method = String(h[':method'] ?? 'GET');
    const authority = String(h[':authority'] ?? get(head.headers, 'host') ?? formatHostPort(conn.origDst.address, conn.origDst.port));
    const request: ProxyRequest = {
      conn,
      protocol: head.protocol,
      method,
      authority,
      path: String(h[':path'] ?? '/'),
      scheme: String(h[':scheme'] ?? 'http'),
      headers: without(head.headers, (n) => n === 'host'),
      hostName: head.hostName,
      body,
      grpc: isGrpc(get(head.headers, 'content-type')),
      ...(head.peer ? { peer: head.peer } : {}),
      abort: aborted,
      onContinue: () => {
        if (!stream.headersSent && !stream.destroyed) stream.additionalHeaders({ ':status': 100 });
      },
    };
    let response: ProxyResponse;
    try {
      response = await this.#handler(request);
    } catch (err) {
      if (aborted.aborted) return;
      response = errorResponse(err, request.grpc);
    }
    if (response.flag !== '-') state.flag = response.flag;
    responseBodyClosed = this.#write(stream, response, request, framing, aborted);
  }

  /** Returns what the response body does when the stream closes, when one is being sent. */
  #write(stream: http2.ServerHttp2Stream, response: ProxyResponse, req: ProxyRequest, framing: H2ServerFraming, aborted: RequestAbort): OnStreamClose | undefined {
    const body = response.body;
    if (aborted.aborted || stream.destroyed) {
      body?.cancel(bodyAbort('the client reset its stream'));
      return undefined;
    }
    const headers = toH2(response.headers, { ':status': String(response.status), ...framing.responseHeaders(response, req) });
    try {
      if (!body) {
        stream.respond(headers, { ...NO_DATE, endStream: true });
        return undefined;
      }
      stream.respond(headers, { ...NO_DATE, waitForTrailers: true });
    } catch (err) {
      // Headers HTTP/2 forbids (e.g. from an HTTP/1.1 upstream): the client gets a clean stream error.
      this.#log.debug({ err: (err as Error).message }, 'cannot send response headers over HTTP/2');
      body?.cancel(bodyAbort('the response head cannot be sent over HTTP/2'));
      stream.close(NGHTTP2_INTERNAL_ERROR);
      return undefined;
    }
    // An upstream RST_STREAM's code is mirrored; a response cut short otherwise is INTERNAL_ERROR.
    return pipeBodyToH2(body, stream, (trailers) => stream.sendTrailers(toH2(trailers, framing.responseTrailers(trailers))), NGHTTP2_INTERNAL_ERROR);
  }
}
