import http from 'node:http';
import { MeshletError } from '../../errors.ts';
import type { OrigDst } from '../../net/addresses.ts';
import { h2Body } from './h2-body.ts';
import { bodyAbort } from '../../pipeline/body.ts';
import type { ProxyRequest, ProxyResponse } from '../../pipeline/exchange.ts';
import { hasNoBody } from '../../pipeline/exchange.ts';
import { endToEnd, get, pairs, type RawHeaders } from './headers.ts';
import { beforeResponse, connectFailure } from './upstream-errors.ts';

export interface Http1UpstreamOptions {
  connectTimeoutMs: number;
  /** Idle keep-alive connections are closed after this (before the server's own timeout, ideally). */
  idleTimeoutMs: number;
}

// Errors that mean a kept-alive connection was closed by the server just as we reused it
// (the "keep-alive race" behind many 503s users report of both anchors).
const STALE_CONNECTION = new Set(['ECONNRESET', 'EPIPE']);

/**
 * HTTP/1.1 to an upstream, over a keep-alive pool per destination (node:http's Agent
 * pools per host:port). Header names keep their case: requests are written from raw
 * header lists.
 */
export class Http1Upstream {
  readonly #agent: http.Agent;
  readonly #options: Http1UpstreamOptions;

  constructor(options: Http1UpstreamOptions) {
    this.#options = options;
    // LIFO: the most recently used connection is the least likely to have been closed by the server.
    this.#agent = new http.Agent({ keepAlive: true, scheduling: 'lifo', timeout: options.idleTimeoutMs, maxFreeSockets: 256 });
  }

  async send(req: ProxyRequest, dst: OrigDst): Promise<ProxyResponse> {
    try {
      return await this.#attempt(req, dst);
    } catch (err) {
      // A request without a body that failed on a reused connection before any response
      // byte never reached the app: send it again on a fresh connection.
      if (!(err instanceof StaleConnection)) throw err;
      return this.#attempt(req, dst, true);
    }
  }

  #attempt(req: ProxyRequest, dst: OrigDst, fresh = false): Promise<ProxyResponse> {
    return new Promise<ProxyResponse>((resolve, reject) => {
      const headers: RawHeaders = [req.hostName, req.authority, ...req.headers];
      if (req.body && get(req.headers, 'content-length') === undefined) headers.push('Transfer-Encoding', 'chunked');
      const upstream = http.request({
        agent: fresh ? false : this.#agent, // false: a connection of its own, not pooled
        host: dst.address,
        port: dst.port,
        method: req.method,
        path: req.path,
        headers,
        setHost: false,
        signal: req.signal,
      });
      let connected = false;
      let timer: NodeJS.Timeout | undefined;
      upstream.on('socket', (socket) => {
        socket.setNoDelay(true);
        if (!socket.connecting) {
          connected = true;
          return;
        }
        timer = setTimeout(() => upstream.destroy(connectFailure(new MeshletError('MESHLET_ERR_UPSTREAM_CONNECT', `no connection within ${this.#options.connectTimeoutMs} ms`))), this.#options.connectTimeoutMs);
        socket.once('connect', () => {
          connected = true;
          clearTimeout(timer);
        });
      });
      upstream.on('continue', () => req.onContinue());
      upstream.once('response', (res) => {
        clearTimeout(timer);
        const status = res.statusCode ?? 502;
        resolve({
          status,
          ...(res.statusMessage ? { reason: res.statusMessage } : {}),
          headers: endToEnd(res.rawHeaders),
          body: hasNoBody(req.method, status) ? (res.resume(), undefined) : h2Body(res, () => res.rawTrailers),
          flag: '-',
        });
      });
      upstream.on('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        if (!req.body && upstream.reusedSocket && !fresh && STALE_CONNECTION.has(err.code ?? '')) reject(new StaleConnection());
        else reject(beforeResponse(err, connected));
      });
      if (!req.body) {
        upstream.end();
        return;
      }
      const body = req.body;
      let done = false;
      upstream.on('drain', () => body.resume());
      upstream.once('close', () => {
        if (!done) body.cancel(bodyAbort('the upstream closed'));
      });
      body.pipe({
        data: (chunk) => upstream.destroyed || upstream.write(chunk),
        end: (trailers) => {
          done = true;
          if (trailers.length > 0) upstream.addTrailers(pairs(trailers));
          upstream.end();
        },
        abort: (err) => {
          done = true;
          upstream.destroy(new Error(`the client's request body was cut short: ${err.message}`));
        },
      });
    });
  }

  close(): void {
    this.#agent.destroy();
  }
}

class StaleConnection extends Error {}
