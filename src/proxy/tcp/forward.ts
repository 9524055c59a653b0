import net from 'node:net';
import type { AcceptedConnection, ConnectionOutcome, ResponseFlag } from '../../pipeline/connection.ts';
import type { BreakerTicket } from '../../resilience/breaker.ts';
import { isMtlsHandshakeFailure, plainConnector, type Connector } from './connectors.ts';

export interface TcpForwardOptions {
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  /** Another connect attempt after a failed one (nothing of the client's was sent yet): the wait before it, or undefined for none. */
  retryConnect?: (failedAttempts: number) => number | undefined;
  /** The destination's circuit breaker: each connect attempt is admitted by it (or refused: reset, flag UO) and reports to it. */
  breaker?: { admit(): BreakerTicket | undefined } | undefined;
}

// Errors on connect() that mean "nobody is there": the app, connecting directly, would
// have had its connection refused or reset, so it gets a reset from us too.
const REFUSAL = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'ECONNRESET']);

/**
 * Opaque L4 forwarding: connect to the original destination and splice bytes both ways
 * with backpressure (pipe) and half-close (allowHalfOpen: a client that shuts its write
 * side still receives the whole response). Resolves once both sockets are closed.
 */
export function forwardTcp(conn: AcceptedConnection, options: TcpForwardOptions, connect: Connector = plainConnector): Promise<ConnectionOutcome> {
  const client = conn.socket;
  return new Promise((resolve) => {
    let flag: ResponseFlag = '-';
    let reason: string | undefined;
    let connected = false;
    let pending = 2;
    let upstream: net.Socket | undefined;
    let ticket: BreakerTicket | undefined;
    let connectTimer: NodeJS.Timeout | undefined;
    let retryTimer: NodeJS.Timeout | undefined;
    let attempts = 0;
    client.setNoDelay(true);

    const end = (f: ResponseFlag, why: string) => {
      if (flag === '-' && reason === undefined) {
        flag = f;
        reason = why;
      }
    };
    const closed = () => {
      if (--pending > 0) return;
      clearTimeout(connectTimer);
      clearTimeout(retryTimer);
      resolve({ receivedBytes: client.bytesRead, sentBytes: client.bytesWritten, flag, ...(reason ? { reason } : {}) });
    };
    client.once('close', closed);
    client.once('close', () => {
      // The app gave up before we reached its destination: don't leave a half-made connection behind.
      if (connected) return;
      if (retryTimer !== undefined) {
        // Between attempts no upstream socket is open to close: this side is done too.
        clearTimeout(retryTimer);
        retryTimer = undefined;
        closed();
      } else {
        ticket?.report('ignored');
        ticket = undefined;
        upstream?.destroy();
      }
    });

    /** A connect attempt failed before any byte went: another one when the policy allows, else the client is told. */
    const connectFailed = (socket: net.Socket, f: ResponseFlag, why: string, refusal: boolean) => {
      // Every way a connection is not made is a connect failure to the breaker, as on the HTTP path.
      ticket?.report('connect-failure');
      ticket = undefined;
      const wait = why === 'mtls_handshake' || client.destroyed ? undefined : options.retryConnect?.(attempts);
      if (wait !== undefined) {
        socket.removeListener('close', closed);
        socket.destroy();
        retryTimer = setTimeout(() => {
          retryTimer = undefined;
          attempt();
        }, wait);
        return;
      }
      end(f, why);
      socket.destroy();
      // A destination we must not talk to (failed mTLS) is as final as a refusal: reset, so
      // the app cannot take the close for an empty answer.
      if (refusal) reset(client);
      else client.destroy();
    };

    const attempt = () => {
      attempts++;
      ticket = options.breaker?.admit();
      if (options.breaker && ticket === undefined) {
        // The breaker is open: nothing is sent, and the app sees what a refusal would show.
        end('UO', 'circuit_open');
        closed(); // no upstream socket this time: its side is done
        reset(client);
        return;
      }
      const made = connect(conn.origDst);
      const socket = (upstream = made.socket);
      socket.once('close', closed);
      connectTimer = setTimeout(() => connectFailed(socket, 'UF', 'connect_timeout', false), options.connectTimeoutMs);

      socket.once(made.readyEvent, () => {
        // A connector may refuse the connection in its own handler for this event (mTLS: the
        // server did not agree to meshlet's ALPN); then the error that follows is a connect failure.
        if (socket.destroyed) return;
        connected = true;
        clearTimeout(connectTimer);
        ticket?.report('success');
        ticket = undefined;
        socket.setTimeout(options.idleTimeoutMs);
        client.setTimeout(options.idleTimeoutMs);
        client.pipe(socket);
        socket.pipe(client);
        socket.on('timeout', idle);
      });

      socket.on('error', (err: NodeJS.ErrnoException) => {
        if (!connected) {
          clearTimeout(connectTimer);
          const why = connectFailureReason(err);
          connectFailed(socket, 'UF', why, REFUSAL.has(err.code ?? '') || why === 'mtls_handshake');
          return;
        }
        end('UC', `upstream_${(err.code ?? 'error').toLowerCase()}`);
        // Carry the reset through, so the app sees what it would have seen directly.
        if (!client.destroyed) reset(client);
      });
    };

    client.on('error', (err: NodeJS.ErrnoException) => {
      end('DC', `downstream_${(err.code ?? 'error').toLowerCase()}`);
      if (upstream && !upstream.destroyed) reset(upstream);
    });

    // Any byte in either direction passes through both sockets, so each socket's own
    // inactivity timer measures the idleness of the whole connection.
    const idle = () => {
      end('-', 'idle_timeout');
      client.destroy();
      upstream?.destroy();
    };
    client.on('timeout', idle);
    attempt();
  });
}

/** A reset where the socket is plain TCP; a TLS socket (whose handle is not TCP) is just destroyed. */
export function reset(socket: net.Socket): void {
  if ((socket as { encrypted?: boolean }).encrypted) socket.destroy();
  else socket.resetAndDestroy();
}

function connectFailureReason(err: NodeJS.ErrnoException): string {
  const code = err.code ?? '';
  if (isMtlsHandshakeFailure(code)) return 'mtls_handshake';
  return `connect_${code.toLowerCase()}`;
}
