import type http2 from 'node:http2';
import type { DestinationSnapshot, PoolSnapshotSource } from '../../admin/clusters.ts';
import { MeshletError } from '../../errors.ts';
import { formatHostPort, type OrigDst } from '../../net/addresses.ts';
import { endWithPeer } from './h2-session.ts';

/**
 * Makes a new HTTP/2 client session to a destination (h2c to an app, or meshlet/h2 to a
 * peer sidecar), on a half-open socket (allowHalfOpen: the pool ends the session when the
 * peer ends the connection).
 */
export type SessionFactory = (dst: OrigDst) => http2.ClientHttp2Session;

export interface PooledSession {
  readonly session: http2.ClientHttp2Session;
  /**
   * Opens a stream on the session; the pool counts it open (to reset the unfinished ones
   * if the peer goes) until the caller, whose 'close' listener is the stream's only one
   * (h2-body.ts says why), reports it closed.
   */
  request(headers: http2.OutgoingHttpHeaders, options: http2.ClientSessionRequestOptions): http2.ClientHttp2Stream;
  /** The stream `request` opened has closed. */
  closed(stream: http2.ClientHttp2Stream): void;
  /** Whether the session ever completed its connection (so a failure on it is not a connect failure). */
  connected(): boolean;
  /**
   * Resolves once the peer's SETTINGS arrived; rejects with the session's error if it
   * ended first. Until then the peer's SETTINGS_MAX_CONCURRENT_STREAMS is unknown and
   * nghttp2 would open every stream at once; the peer refuses those over its limit, and
   * a refused stream whose body was already streamed cannot be sent again.
   */
  readonly ready: Promise<void>;
}

/**
 * One HTTP/2 session per destination, shared by every request to it. A session that
 * received GOAWAY, closed, failed or whose connection the peer ended leaves the pool at
 * once (its open streams finish on it, or are reset when the peer can no longer finish
 * them) and the next request opens a new one. Streams beyond the peer's
 * SETTINGS_MAX_CONCURRENT_STREAMS wait inside nghttp2 until one finishes.
 */
export class SessionPool implements PoolSnapshotSource {
  readonly #sessions = new Map<string, PooledSession>();
  /** Each pooled session's destination and open streams, for /clusters. */
  readonly #described = new WeakMap<PooledSession, { dst: OrigDst; open: ReadonlySet<http2.Http2Stream> }>();
  readonly #factory: SessionFactory;
  readonly #connectTimeoutMs: number;
  readonly #idleTimeoutMs: number;

  constructor(factory: SessionFactory, options: { connectTimeoutMs: number; idleTimeoutMs: number }) {
    this.#factory = factory;
    this.#connectTimeoutMs = options.connectTimeoutMs;
    this.#idleTimeoutMs = options.idleTimeoutMs;
  }

  get(dst: OrigDst, connectTimeoutMs = this.#connectTimeoutMs): PooledSession {
    const key = dst.key;
    const existing = this.#sessions.get(key);
    if (existing && !existing.session.closed && !existing.session.destroyed) return existing;
    const session = this.#factory(dst);
    let connected = false;
    session.once('connect', () => (connected = true));
    // The connection is made once the peer's SETTINGS are in (an HTTP/2 server sends them
    // first): a peer that accepts TCP but never speaks HTTP/2 fails like one not there.
    const timer = setTimeout(() => session.destroy(new MeshletError('MESHLET_ERR_UPSTREAM_CONNECT', `no HTTP/2 connection to ${formatHostPort(dst.address, dst.port)} within ${connectTimeoutMs} ms`)), connectTimeoutMs);
    const ready = new Promise<void>((resolve, reject) => {
      session.once('remoteSettings', () => {
        clearTimeout(timer);
        resolve();
      });
      session.once('error', reject);
      session.once('close', () => reject(Object.assign(new Error('the HTTP/2 session closed before the peer sent its SETTINGS'), { code: 'ERR_HTTP2_SESSION_CLOSED' })));
    });
    ready.catch(() => {}); // a session failing with no request waiting on it is no unhandled rejection
    const open = new Set<http2.Http2Stream>();
    const pooled: PooledSession = {
      session,
      request: (headers, options) => {
        const stream = session.request(headers, options);
        open.add(stream);
        return stream;
      },
      closed: (stream) => void open.delete(stream),
      connected: () => connected,
      ready,
    };
    this.#sessions.set(key, pooled);
    this.#described.set(pooled, { dst, open });
    const leave = () => {
      if (this.#sessions.get(key) === pooled) this.#sessions.delete(key);
    };
    endWithPeer(session, session.socket, open, leave);
    session.on('goaway', leave);
    session.once('close', () => {
      clearTimeout(timer);
      leave();
    });
    // Failures reach the streams on the session; the session's own error only needs a listener.
    session.on('error', leave);
    // A session with no streams for this long is closed (gracefully, it has no streams).
    session.setTimeout(this.#idleTimeoutMs, () => session.close());
    return pooled;
  }

  /** One session per destination, with its open streams. */
  snapshot(): DestinationSnapshot[] {
    return [...this.#sessions.values()].flatMap((pooled) => {
      const about = this.#described.get(pooled);
      return about ? [{ destination: formatHostPort(about.dst.address, about.dst.port), connections: 1, idle: 0, streams: about.open.size }] : [];
    });
  }

  /** Number of sessions, for tests. */
  get size(): number {
    return this.#sessions.size;
  }

  close(): void {
    for (const { session } of this.#sessions.values()) session.close();
    this.#sessions.clear();
  }
}
