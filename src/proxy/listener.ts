import net from 'node:net';
import { describeError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { TcpMetrics } from '../telemetry/tcp-metrics.ts';
import { reporterOf } from '../telemetry/tcp-metrics.ts';
import { peerOf } from '../net/addresses.ts';
import type { AcceptedConnection, ConnectionOutcome, Direction } from '../pipeline/connection.ts';
import { readOriginalDst } from '../net/original-dst.ts';
import type { Handler } from '../pipeline/compose.ts';
import { bindDualStack } from '../net/bind.ts';

let nextConnectionId = 1;

export interface RedirectListener {
  readonly server: net.Server;
  readonly port: number;
  /** Connections accepted and not yet finished. */
  readonly active: Set<net.Socket>;
}

/**
 * Listens where netfilter redirects to, recovers each connection's original destination,
 * and hands it to the stack. A connection whose destination can't be recovered is reset,
 * counted and logged; it never takes the listener down.
 */
export async function listenRedirected(
  direction: Direction,
  port: number,
  stack: Handler<AcceptedConnection, ConnectionOutcome>,
  deps: { log: Logger; metrics: TcpMetrics },
): Promise<RedirectListener> {
  const active = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    active.add(socket);
    // Sockets handed to the HTTP servers by 'connection' never get the servers' own
    // noDelay (applied only at their accept); without it small responses wait for ACKs.
    socket.setNoDelay(true);
    socket.once('close', () => active.delete(socket));
    let conn: AcceptedConnection;
    try {
      conn = { id: nextConnectionId++, direction, socket, peer: peerOf(socket), origDst: readOriginalDst(socket), security: 'none' };
    } catch (err) {
      deps.metrics.refused.inc({ reporter: reporterOf(direction), reason: 'no_original_dst' });
      deps.log.warn({ direction, err: describeError(err) }, 'cannot recover the original destination; connection reset');
      socket.resetAndDestroy();
      return;
    }
    stack(conn).catch((err: unknown) => {
      deps.log.error({ direction, conn: conn.id, err: describeError(err) }, 'connection stack failed');
      socket.destroy();
    });
  });
  server.on('error', (err) => deps.log.error({ direction, err: describeError(err) }, 'listener error'));
  const bound = await bindDualStack(server, port);
  return { server, port: bound, active };
}
