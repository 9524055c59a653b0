import type { AcceptedConnection, ConnectionOutcome } from '../pipeline/connection.ts';
import type { Layer } from '../pipeline/compose.ts';
import { reporterOf, type TcpMetrics } from './tcp-metrics.ts';

/** Counts a connection when it enters the stack and its bytes and flag when it ends. */
export function tcpMetricsLayer(metrics: TcpMetrics): Layer<AcceptedConnection, ConnectionOutcome> {
  return (next) => async (conn) => {
    const reporter = reporterOf(conn.direction);
    const labels = { reporter, connection_security_policy: conn.security };
    metrics.opened.inc(labels);
    metrics.active[reporter]++;
    let outcome: ConnectionOutcome;
    try {
      outcome = await next(conn);
    } finally {
      metrics.active[reporter]--;
    }
    metrics.closed.inc({ ...labels, response_flags: outcome.flag });
    metrics.sentBytes.inc(labels, outcome.sentBytes);
    metrics.receivedBytes.inc(labels, outcome.receivedBytes);
    return outcome;
  };
}
