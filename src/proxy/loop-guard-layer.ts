import type { AcceptedConnection, ConnectionOutcome } from '../pipeline/connection.ts';
import { isSelfDestination, type LocalAddresses } from './loop-guard.ts';
import type { Layer } from '../pipeline/compose.ts';
import type { Logger } from '../log.ts';
import { reporterOf, type TcpMetrics } from '../telemetry/tcp-metrics.ts';

/** Refuses (resets) and counts connections whose original destination is the proxy itself. */
export function loopGuardLayer(
  proxyPorts: ReadonlySet<number>,
  local: LocalAddresses,
  metrics: TcpMetrics,
  log: Logger,
): Layer<AcceptedConnection, ConnectionOutcome> {
  return (next) => async (conn) => {
    if (!isSelfDestination(conn.origDst, conn.socket, proxyPorts, local)) return next(conn);
    metrics.refused.inc({ reporter: reporterOf(conn.direction), reason: 'loop' });
    log.warn(
      { direction: conn.direction, peer: `${conn.peer.address}:${conn.peer.port}`, dst: `${conn.origDst.address}:${conn.origDst.port}` },
      'refused a connection addressed to the proxy itself (not redirected, or a redirect loop)',
    );
    conn.socket.resetAndDestroy();
    return { receivedBytes: 0, sentBytes: 0, flag: 'NR', reason: 'loop' };
  };
}
