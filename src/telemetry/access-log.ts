import { formatHostPort } from '../net/addresses.ts';
import type { AcceptedConnection, ConnectionOutcome } from '../pipeline/connection.ts';
import type { Layer } from '../pipeline/compose.ts';
import type { Logger } from '../log.ts';

/**
 * One line per finished connection at debug level (off by default, like Istio's access
 * log). It sits after the layers that refuse connections (they log those themselves),
 * so it sees the connection as they left it: security and the peer's identity.
 */
export function accessLogLayer(log: Logger): Layer<AcceptedConnection, ConnectionOutcome> {
  return (next) => async (conn) => {
    if (!log.isLevelEnabled('debug')) return next(conn);
    const started = performance.now();
    const outcome = await next(conn);
    log.debug(
      {
        direction: conn.direction,
        conn: conn.id,
        peer: formatHostPort(conn.peer.address, conn.peer.port),
        dst: formatHostPort(conn.origDst.address, conn.origDst.port),
        security: conn.security,
        ...(conn.peerPrincipal ? { principal: conn.peerPrincipal } : {}),
        ...(conn.upstreamPeer ? { expected: conn.upstreamPeer.spiffeId ?? `trust domain ${conn.upstreamPeer.trustDomain}` } : {}),
        received: outcome.receivedBytes,
        sent: outcome.sentBytes,
        flag: outcome.flag,
        reason: outcome.reason,
        durationMs: Math.round(performance.now() - started),
      },
      'connection',
    );
    return outcome;
  };
}
