import { describeError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { formatHostPort } from '../net/addresses.ts';
import type { Handler, Layer } from '../pipeline/compose.ts';
import type { AcceptedConnection, ConnectionOutcome } from '../pipeline/connection.ts';
import { get } from '../pipeline/headers.ts';
import type { ExchangeSink, FinishedExchange } from './exchange-layer.ts';
import { traceIdOf } from './trace-context.ts';
import { peerPrincipalOf } from './workload-labels.ts';

// The access log: one JSON line per HTTP request (`"msg":"request"`) and per connection
// that carried no HTTP (`"msg":"connection"`), with Envoy's field names where Envoy has
// one (docs/observability.md explains each). Bodies and header values are never logged,
// except the few named below: the request id, the user agent and the trace id. The path
// goes without its query, which often carries tokens (OAuth, signed URLs).

export interface AccessLogSettings {
  /** Lines at info level, whatever the log level. */
  readonly enabled: boolean;
  /** The share of requests and connections logged when enabled. */
  readonly sampleRatio: number;
}

/**
 * Where access lines go. Enabled, a sampled share of them at info level through their
 * own logger, so the proxy's log level does not silence them; disabled, all of them at
 * debug level through the proxy's log, when that is at debug (the level can change at
 * run time: followed through pino's level-change event).
 */
export class AccessLog {
  readonly #ratio: number;
  /** Writers made once, so choosing one allocates nothing per request. */
  readonly #info: Writer | undefined;
  readonly #debug: Writer;
  #debugOn: boolean;

  constructor(log: Logger, settings: AccessLogSettings) {
    this.#ratio = settings.sampleRatio;
    const access = settings.enabled ? log.child({}, { level: 'info' }) : undefined;
    this.#info = access && ((line, msg) => access.info(line, msg));
    this.#debug = (line, msg) => log.debug(line, msg);
    // Known here rather than asked of pino per request (a levels lookup, symbol-keyed loads
    // and a call: most of the ~500 instructions callgrind put in the request sink with the
    // access log off). The level only changes through its setter (the admin's /logging, a
    // reload), which announces it.
    this.#debugOn = log.isLevelEnabled('debug');
    log.on('level-change', () => {
      this.#debugOn = log.isLevelEnabled('debug');
    });
  }

  /** Where this line goes, when it is to be written at all (sampled when enabled). */
  writer(): Writer | undefined {
    if (this.#info) return this.#ratio >= 1 || Math.random() < this.#ratio ? this.#info : undefined;
    return this.#debugOn ? this.#debug : undefined;
  }

  /** The proxy's log is at debug level: every connection gets a line, HTTP ones too. */
  get debug(): boolean {
    return this.#debugOn;
  }

  /** No line can be written now: neither enabled nor at debug level. */
  get silent(): boolean {
    return this.#info === undefined && !this.debug;
  }
}

type Writer = (line: Record<string, unknown>, msg: string) => void;

/** The request line of each finished exchange. */
export function requestLogSink(log: AccessLog): ExchangeSink {
  return {
    finished: (ex) => {
      const write = log.writer();
      if (write) write(requestLine(ex), 'request');
    },
  };
}

function requestLine(ex: FinishedExchange): Record<string, unknown> {
  const { req } = ex;
  const conn = req.conn;
  const query = req.path.indexOf('?');
  const requestId = get(req.headers, 'x-request-id');
  const userAgent = get(req.headers, 'user-agent');
  const traceId = traceIdOf(req.headers);
  const peerPrincipal = peerPrincipalOf(conn);
  return {
    start_time: new Date(performance.timeOrigin + ex.started).toISOString(),
    direction: conn.direction,
    conn: conn.id,
    method: req.method,
    authority: withoutUserinfo(req.authority),
    path: query === -1 ? req.path : req.path.slice(0, query),
    protocol: req.protocol === 'h2' ? 'HTTP/2' : 'HTTP/1.1',
    response_code: ex.status,
    response_flags: ex.flag,
    ...(req.grpc ? { grpc_status: ex.grpcStatus } : {}),
    bytes_received: ex.requestBytes,
    bytes_sent: ex.responseBytes,
    duration: roundMs(ex.durationMs),
    upstream_host: formatHostPort(conn.origDst.address, conn.origDst.port),
    downstream_remote_address: formatHostPort(conn.peer.address, conn.peer.port),
    connection_security_policy: conn.security,
    ...(peerPrincipal ? { peer_principal: peerPrincipal } : {}),
    ...(ex.peer?.name ? { peer_workload: `${ex.peer.namespace}/${ex.peer.name}` } : {}),
    ...(requestId !== undefined ? { request_id: requestId.slice(0, 128) } : {}),
    ...(traceId !== undefined ? { trace_id: traceId } : {}),
    ...(userAgent !== undefined ? { user_agent: userAgent.slice(0, 256) } : {}),
    ...(ex.cause ? { meshlet_error: ex.cause } : {}),
    ...(ex.error !== undefined ? { error: describeError(ex.error) } : {}),
  };
}

/**
 * The line of each accepted connection that carried no HTTP (opaque TCP, an unknown
 * protocol); at debug level, of every connection. It sits after the layers that refuse
 * connections (they log those themselves), so it sees the connection as they left it.
 */
export function connectionLogLayer(log: AccessLog): Layer<AcceptedConnection, ConnectionOutcome> {
  // Silent (the default), a connection passes straight through: no async wrapper.
  return (next) => (conn) => (log.silent ? next(conn) : logged(log, next, conn));
}

async function logged(log: AccessLog, next: Handler<AcceptedConnection, ConnectionOutcome>, conn: AcceptedConnection): Promise<ConnectionOutcome> {
  const started = performance.now();
  const outcome = await next(conn);
  const http = conn.protocol !== undefined && conn.protocol !== 'tcp';
  const write = (!http || log.debug) && log.writer();
  if (!write) return outcome;
  const peerPrincipal = peerPrincipalOf(conn);
  write(
    {
      start_time: new Date(performance.timeOrigin + started).toISOString(),
      direction: conn.direction,
      conn: conn.id,
      protocol: conn.protocol ?? 'tcp',
      upstream_host: formatHostPort(conn.origDst.address, conn.origDst.port),
      downstream_remote_address: formatHostPort(conn.peer.address, conn.peer.port),
      connection_security_policy: conn.security,
      ...(peerPrincipal ? { peer_principal: peerPrincipal } : {}),
      ...(conn.upstreamPeer && !conn.upstreamPeer.spiffeId ? { peer_trust_domain: conn.upstreamPeer.trustDomain } : {}),
      bytes_received: outcome.receivedBytes,
      bytes_sent: outcome.sentBytes,
      duration: roundMs(performance.now() - started),
      response_flags: outcome.flag,
      ...(outcome.reason ? { reason: outcome.reason } : {}),
    },
    'connection',
  );
  return outcome;
}

/** An authority never carries credentials into the log (`user:pass@host` is not valid HTTP, but a client may send it). */
export function withoutUserinfo(authority: string): string {
  const at = authority.lastIndexOf('@');
  return at === -1 ? authority : authority.slice(at + 1);
}

function roundMs(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
