import net from 'node:net';
import { describeError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { TcpMetrics } from '../telemetry/tcp-metrics.ts';
import { reporterOf } from '../telemetry/tcp-metrics.ts';
import { formatHostPort, peerOf, type OrigDst } from '../net/addresses.ts';
import { isOwnConnection } from '../net/own-connections.ts';
import type { AcceptedConnection, ConnectionOutcome, Direction } from '../pipeline/connection.ts';
import { readOriginalDst } from '../net/original-dst.ts';
import type { Handler } from '../pipeline/compose.ts';
import { bindDualStack } from '../net/bind.ts';
import { LoopRefusalLog } from './loop-guard.ts';

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
 * counted and logged; it never takes the listener down. So is one that this proxy opened
 * itself, redirected back to it (a loop): it is reset before anything else is done.
 */
export async function listenRedirected(
  direction: Direction,
  port: number,
  stack: Handler<AcceptedConnection, ConnectionOutcome>,
  deps: { log: Logger; metrics: TcpMetrics },
): Promise<RedirectListener> {
  const active = new Set<net.Socket>();
  const loops = new LoopRefusalLog(deps.log);
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    const peer = peerOf(socket);
    let origDst: OrigDst | undefined;
    try {
      origDst = readOriginalDst(socket);
    } catch {
      // reported below, once it is known not to be our own connection
    }
    if (isOwnConnection(peer.address, peer.port, origDst)) {
      deps.metrics.refused.inc({ reporter: reporterOf(direction), reason: 'loop' });
      loops.refused({ direction, peer: formatHostPort(peer.address, peer.port) });
      socket.resetAndDestroy();
      return;
    }
    active.add(socket);
    // Sockets handed to the HTTP servers by 'connection' never get the servers' own
    // noDelay (applied only at their accept); without it small responses wait for ACKs.
    socket.setNoDelay(true);
    socket.once('close', () => active.delete(socket));
    let conn: AcceptedConnection;
    try {
      conn = { id: nextConnectionId++, direction, socket, peer, origDst: origDst ?? readOriginalDst(socket), security: 'none' };
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
  const bound = await bindDualStack(server, port); // a failure here is the caller's to report
  server.on('error', (err) => deps.log.error({ direction, err: describeError(err) }, 'listener error'));
  return { server, port: bound, active };
}
