import http from 'node:http';
import type net from 'node:net';
import { MeshletError } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import { formatHostPort } from '../../net/addresses.ts';
import type { AcceptedConnection, ConnectionOutcome, ResponseFlag } from '../../pipeline/connection.ts';
import type { Handler } from '../../pipeline/compose.ts';
import { bodyAbort } from '../../pipeline/body.ts';
import { h2Body } from './h2-body.ts';
import { errorResponse, rawErrorResponse } from './error-response.ts';
import { isGrpc, type ProxyRequest, type ProxyResponse } from '../../pipeline/exchange.ts';
import { endToEnd, get, isMeshHop, pairs, without } from './headers.ts';

export interface Http1DownstreamOptions {
  maxHeaderBytes: number;
  headersTimeoutMs: number;
  /** How long a client's idle keep-alive connection is kept: long, so the app's client decides when to close it. */
  idleTimeoutMs: number;
}

/** A raw bidirectional stream after `Upgrade` (WebSocket) or CONNECT: handed the client socket and what was read past the head. */
export type TunnelHandler = (conn: AcceptedConnection, req: http.IncomingMessage, socket: net.Socket, head: Buffer) => void;

interface Served {
  conn: AcceptedConnection;
  flag: ResponseFlag;
  /** Request bodies still arriving. */
  bodies: Set<http.IncomingMessage>;
}

/**
 * The HTTP/1.1 server side of both listeners. node:http parses (llhttp in strict mode:
 * conflicting Content-Length/Transfer-Encoding, duplicate Content-Length and malformed
 * chunking are refused, which is what keeps requests from being smuggled past the proxy),
 * keeps connections alive and answers pipelined requests in order. Each request goes
 * through the request pipeline; its response is written back with the upstream's header
 * case and framing.
 */
export class Http1Downstream {
  readonly #server: http.Server;
  readonly #served = new WeakMap<net.Socket, Served>();
  readonly #handler: Handler<ProxyRequest, ProxyResponse>;
  readonly #log: Logger;

  constructor(handler: Handler<ProxyRequest, ProxyResponse>, tunnel: TunnelHandler, options: Http1DownstreamOptions, log: Logger) {
    this.#handler = handler;
    this.#log = log;
    this.#server = http.createServer({
      maxHeaderSize: options.maxHeaderBytes,
      headersTimeout: options.headersTimeoutMs,
      requestTimeout: 0, // a long upload or a slow body is not an error; the head timeout is
      keepAliveTimeout: options.idleTimeoutMs,
      connectionsCheckingInterval: Math.min(1000, options.headersTimeoutMs),
      requireHostHeader: false, // a Host-less HTTP/1.0 request reaches the original destination anyway
      joinDuplicateHeaders: false,
    });
    // node:http enforces headersTimeout from its connection tracking, which it starts on
    // 'listening'. This server never listens (connections are handed to it), so without
    // this no slow head would ever be answered 408.
    this.#server.emit('listening');
    const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => void this.#onRequest(req, res);
    this.#server.on('request', onRequest);
    // Don't answer 100 Continue ourselves: the upstream decides whether it wants the body.
    this.#server.on('checkContinue', onRequest);
    this.#server.on('checkExpectation', onRequest);
    const onTunnel = (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
      const served = this.#served.get(req.socket);
      if (served) tunnel(served.conn, req, socket, head);
      else socket.destroy();
    };
    this.#server.on('upgrade', onTunnel);
    this.#server.on('connect', onTunnel);
    this.#server.on('clientError', (err: NodeJS.ErrnoException, socket: net.Socket) => this.#onClientError(err, socket));
  }

  /** Serves one connection; resolves when it is closed. */
  serve(conn: AcceptedConnection): Promise<ConnectionOutcome> {
    const served: Served = { conn, flag: '-', bodies: new Set() };
    this.#served.set(conn.socket, served);
    return new Promise((resolve) => {
      conn.socket.once('close', () => {
        // node:http forgets a request once its response is finished: a body still arriving
        // then would neither end nor fail when the client goes, and its upstream would wait forever.
        for (const body of served.bodies) body.destroy(new Error('the client closed the connection before the request body was complete'));
        resolve({ receivedBytes: conn.socket.bytesRead, sentBytes: conn.socket.bytesWritten, flag: served.flag });
      });
      conn.socket.setNoDelay(true); // a handed-over socket never got the server's noDelay
      this.#server.emit('connection', conn.socket);
    });
  }

  async #onRequest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const served = this.#served.get(req.socket);
    if (!served) {
      res.destroy();
      return;
    }
    const aborted = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) aborted.abort();
    });
    const raw = req.rawHeaders;
    let hostName = 'Host';
    let hosts = 0;
    for (let i = 0; i < raw.length; i += 2) {
      if (raw[i]!.toLowerCase() !== 'host') continue;
      hostName = raw[i]!;
      hosts++;
    }
    if (hosts > 1) {
      // RFC 9112 3.2: the proxy and the app (or a proxy before us) could each believe a different one.
      served.flag = 'DPE';
      res.shouldKeepAlive = false;
      writeResponse(res, errorResponse(new MeshletError('MESHLET_ERR_BAD_REQUEST', 'more than one Host header'), false), aborted.signal);
      return;
    }
    const hasBody = get(raw, 'transfer-encoding') !== undefined || Number(get(raw, 'content-length') ?? 0) > 0;
    const { conn } = served;
    const request: ProxyRequest = {
      conn,
      protocol: 'http1',
      method: req.method ?? 'GET',
      authority: req.headers.host ?? formatHostPort(conn.origDst.address, conn.origDst.port),
      path: req.url ?? '/',
      scheme: 'http',
      headers: endToEnd(raw, dropFromRequest),
      hostName,
      body: hasBody ? h2Body(req, () => without(req.rawTrailers, isMeshHop)) : undefined,
      grpc: isGrpc(req.headers['content-type']),
      signal: aborted.signal,
      onContinue: () => res.writeContinue(),
    };
    if (!hasBody) req.resume();
    else {
      served.bodies.add(req);
      req.once('end', () => served.bodies.delete(req));
      req.once('close', () => served.bodies.delete(req));
    }
    let response: ProxyResponse;
    try {
      response = await this.#handler(request);
    } catch (err) {
      if (aborted.signal.aborted) return;
      this.#log.debug({ conn: conn.id, err: (err as Error).message }, 'request failed');
      response = errorResponse(err, request.grpc);
    }
    if (response.flag !== '-') served.flag = response.flag;
    writeResponse(res, response, aborted.signal);
  }

  #onClientError(err: NodeJS.ErrnoException, socket: net.Socket): void {
    const served = this.#served.get(socket);
    if (served) served.flag = 'DPE';
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const error =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? new MeshletError('MESHLET_ERR_REQUEST_HEADERS_TOO_LARGE', 'the request head is larger than http.maxRequestHeadersKb')
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? new MeshletError('MESHLET_ERR_REQUEST_HEADERS_TIMEOUT', 'the request head did not arrive within http.requestHeadersTimeout')
          : new MeshletError('MESHLET_ERR_BAD_REQUEST', `malformed request: ${err.message}`);
    this.#log.info({ conn: served?.conn.id, code: err.code, reason: err.message }, 'refused a malformed or slow HTTP/1.1 request');
    socket.end(rawErrorResponse(error));
    socket.destroySoon();
  }

  close(): void {
    this.#server.close();
  }
}

/** Host travels as the request's authority; mesh headers are never taken from an app. */
const dropFromRequest = (name: string) => name === 'host' || isMeshHop(name);

/** Writes a response through node:http, which frames it (Content-Length or chunked) for this client. */
export function writeResponse(res: http.ServerResponse, response: ProxyResponse, aborted: AbortSignal): void {
  if (aborted.aborted || res.destroyed) {
    response.body?.cancel(bodyAbort('the client went away'));
    return;
  }
  res.sendDate = false; // the upstream's Date (or none), not ours
  const headers = response.headers;
  if (response.reason) res.writeHead(response.status, response.reason, headers);
  else res.writeHead(response.status, headers);
  const body = response.body;
  if (!body) {
    res.end();
    return;
  }
  res.on('drain', () => body.resume());
  let done = false;
  body.pipe({
    data: (chunk) => res.destroyed || res.write(chunk),
    end: (trailers) => {
      done = true;
      if (trailers.length > 0 && res.chunkedEncoding) res.addTrailers(pairs(trailers));
      res.end();
    },
    // A response cut short upstream is cut short here too: the client must not take it for whole.
    abort: () => {
      done = true;
      res.destroy();
    },
  });
  res.once('close', () => {
    if (!done) body.cancel(bodyAbort('the client went away'));
  });
}
