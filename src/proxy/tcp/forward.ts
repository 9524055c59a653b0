import net from 'node:net';
import type { AcceptedConnection, ConnectionOutcome, ResponseFlag } from '../../pipeline/connection.ts';
import { isMtlsHandshakeFailure, plainConnector, type Connector } from './connectors.ts';

export interface TcpForwardOptions {
  connectTimeoutMs: number;
  idleTimeoutMs: number;
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

    const { socket: upstream, readyEvent } = connect(conn.origDst);
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
      resolve({ receivedBytes: client.bytesRead, sentBytes: client.bytesWritten, flag, ...(reason ? { reason } : {}) });
    };
    client.once('close', closed);
    upstream.once('close', closed);
    client.once('close', () => {
      // The app gave up before we reached its destination: don't leave a half-made connection behind.
      if (!connected) upstream.destroy();
    });

    const connectTimer = setTimeout(() => {
      end('UF', 'connect_timeout');
      upstream.destroy();
      client.destroy();
    }, options.connectTimeoutMs);

    upstream.once(readyEvent, () => {
      // A connector may refuse the connection in its own handler for this event (mTLS: the
      // server did not agree to meshlet's ALPN); then the error that follows is a connect failure.
      if (upstream.destroyed) return;
      connected = true;
      clearTimeout(connectTimer);
      upstream.setTimeout(options.idleTimeoutMs);
      client.setTimeout(options.idleTimeoutMs);
      client.pipe(upstream);
      upstream.pipe(client);
    });

    upstream.on('error', (err: NodeJS.ErrnoException) => {
      if (!connected) {
        const why = connectFailureReason(err);
        end('UF', why);
        // A destination we must not talk to (failed mTLS) is as final as a refusal: reset, so
        // the app cannot take the close for an empty answer.
        if (REFUSAL.has(err.code ?? '') || why === 'mtls_handshake') reset(client);
        else client.destroy();
        return;
      }
      end('UC', `upstream_${(err.code ?? 'error').toLowerCase()}`);
      // Carry the reset through, so the app sees what it would have seen directly.
      if (!client.destroyed) reset(client);
    });
    client.on('error', (err: NodeJS.ErrnoException) => {
      end('DC', `downstream_${(err.code ?? 'error').toLowerCase()}`);
      if (!upstream.destroyed) reset(upstream);
    });

    // Any byte in either direction passes through both sockets, so each socket's own
    // inactivity timer measures the idleness of the whole connection.
    const idle = () => {
      end('-', 'idle_timeout');
      client.destroy();
      upstream.destroy();
    };
    client.on('timeout', idle);
    upstream.on('timeout', idle);
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
