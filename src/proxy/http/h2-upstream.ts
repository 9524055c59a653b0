import http2 from 'node:http2';
import type { OrigDst } from '../../net/addresses.ts';
import { h2Body, pipeBodyToH2, type OnStreamClose } from './h2-body.ts';
import type { ProxyRequest, ProxyResponse } from '../../pipeline/exchange.ts';
import { fromH2Raw, toH2, withoutMeshHeaders, type RawHeaders } from './headers.ts';
import type { SessionPool } from './session-pool.ts';
import { beforeResponse, refusedStream } from './upstream-errors.ts';
import { isMeshletError } from '../../errors.ts';

const { NGHTTP2_REFUSED_STREAM, NGHTTP2_FLAG_END_STREAM, NGHTTP2_CANCEL } = http2.constants;

/** What a sender adds to and takes from the HTTP/2 exchange (the mesh hop's own headers). */
export interface H2Framing {
  /** Extra request headers (lower-case names), e.g. between sidecars. */
  requestHeaders(req: ProxyRequest): Record<string, string>;
  /** Extra request trailers (lower-case names), given the request's trailers. */
  requestTrailers(trailers: RawHeaders, req: ProxyRequest): Record<string, string>;
  /** Turns the received response head into the response handed back (e.g. removes the mesh headers). */
  response(head: { status: number; headers: RawHeaders }, req: ProxyRequest): Pick<ProxyResponse, 'headers' | 'peer'>;
  /** The same for the received response trailers. */
  responseTrailers(trailers: RawHeaders): RawHeaders;
}

export const plainH2: H2Framing = {
  requestHeaders: () => ({}),
  requestTrailers: () => ({}),
  // Mesh headers are never taken from an app (docs/http.md).
  response: (head) => ({ headers: withoutMeshHeaders(head.headers) }),
  responseTrailers: withoutMeshHeaders,
};

/**
 * Sends requests as streams on a pooled HTTP/2 session: h2c to an app, or meshlet/h2
 * between sidecars (framing adds and strips the mesh headers). Flow control is
 * end to end because bodies are piped: a stream that cannot take more stops reading
 * the other side.
 */
export class H2Upstream {
  readonly #pool: SessionPool;
  readonly #framing: H2Framing;

  constructor(pool: SessionPool, framing: H2Framing = plainH2) {
    this.#pool = pool;
    this.#framing = framing;
  }

  /** `connectTimeoutMs`: the destination's, when its policy has one (a new session is made). */
  async send(req: ProxyRequest, dst: OrigDst, connectTimeoutMs?: number): Promise<ProxyResponse> {
    try {
      return await this.#attempt(req, dst, connectTimeoutMs);
    } catch (err) {
      // REFUSED_STREAM means the server did not process the stream (RFC 9113 8.7): a
      // request without a body is sent again once here; one with a body is the retry
      // layer's to send again (it can replay the body), so it leaves flagged refused-stream.
      if (!isMeshletError(err) || err.upstreamFailure !== 'refused-stream' || req.body) throw err;
      return this.#attempt(req, dst, connectTimeoutMs);
    }
  }

  async #attempt(req: ProxyRequest, dst: OrigDst, connectTimeoutMs: number | undefined): Promise<ProxyResponse> {
    const pooled = this.#pool.get(dst, connectTimeoutMs);
    try {
      await pooled.ready;
    } catch (err) {
      throw beforeResponse(err, pooled.connected());
    }
    return new Promise((resolve, reject) => {
      const headers = toH2(req.headers, {
        ':method': req.method,
        ':authority': req.authority,
        ':scheme': req.scheme,
        ':path': req.path,
        ...this.#framing.requestHeaders(req),
      });
      let stream: http2.ClientHttp2Stream;
      try {
        stream = pooled.request(headers, { endStream: !req.body, waitForTrailers: !!req.body });
      } catch (err) {
        reject(beforeResponse(err, pooled.connected()));
        return;
      }
      // A client that gives up cancels the stream upstream. Not node:http2's signal option:
      // that costs an AbortController and an EventTarget listener added and removed per
      // request (about 1 % of a sidecar's HTTP/2 CPU in a profile).
      const cancel = () => {
        if (!stream.destroyed) stream.close(NGHTTP2_CANCEL);
      };
      req.abort.on(cancel);
      // What the bodies on this stream do when it closes (h2-body.ts: one 'close' listener).
      let requestBodyClosed: OnStreamClose | undefined;
      let responseBodyClosed: OnStreamClose | undefined;
      let responded = false;
      let trailers: RawHeaders = [];
      stream.on('continue', () => req.onContinue());
      stream.on('trailers', (_h, _f, raw: string[]) => (trailers = this.#framing.responseTrailers(fromH2Raw(raw))));
      // 'response' and 'close' come once per stream (h2-body.ts: on, not once).
      stream.on('response', (h, flags: number, raw: string[]) => {
        if (responded) return;
        responded = true;
        const status = Number(h[':status']);
        const framed = this.#framing.response({ status, headers: fromH2Raw(raw) }, req);
        // A response head with END_STREAM (trailers-only gRPC, 204, HEAD) has no body and must stay one frame.
        const ended = (flags & NGHTTP2_FLAG_END_STREAM) !== 0 || stream.endAfterHeaders;
        if (ended) {
          stream.resume();
          resolve({ status, ...framed, body: undefined, flag: '-' });
          return;
        }
        const received = h2Body(stream, h, () => trailers);
        responseBodyClosed = received.closed;
        resolve({ status, ...framed, body: received.body, flag: '-' });
      });
      stream.on('error', (err) => {
        if (responded) return; // the body's reader sees it
        if (stream.rstCode === NGHTTP2_REFUSED_STREAM) reject(refusedStream(err));
        else reject(beforeResponse(err, pooled.connected()));
      });
      stream.on('close', () => {
        pooled.closed(stream);
        req.abort.off(cancel);
        if (!responded) reject(beforeResponse(Object.assign(new Error(`stream closed (code ${stream.rstCode})`), { code: 'ERR_HTTP2_STREAM_ERROR' }), pooled.connected()));
        requestBodyClosed?.();
        responseBodyClosed?.();
      });
      if (!req.body) return;
      requestBodyClosed = pipeBodyToH2(req.body, stream, (trailers) => stream.sendTrailers(toH2(trailers, this.#framing.requestTrailers(trailers, req))), NGHTTP2_CANCEL);
    });
  }
}
