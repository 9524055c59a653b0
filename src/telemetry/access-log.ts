import { formatHostPort } from '../proxy/addresses.ts';
import type { AcceptedConnection, ConnectionOutcome } from '../proxy/connection.ts';
import type { Layer } from '../proxy/pipeline.ts';
import type { Logger } from '../log.ts';

/** One line per finished connection at debug level (off by default, like Istio's access log). */
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
