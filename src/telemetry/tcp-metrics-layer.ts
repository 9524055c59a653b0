import type { AcceptedConnection, ConnectionOutcome } from '../pipeline/connection.ts';
import type { Layer } from '../pipeline/compose.ts';
import { reporterOf, type TcpMetrics, type TcpSeries } from './tcp-metrics.ts';
import type { LocalWorkload } from './workload.ts';
import { peerPrincipalOf, workloadLabels } from './workload-labels.ts';

/** Principals a layer remembers before starting over; they are verified identities, so few. */
const MAX_PRINCIPALS = 256;

/**
 * Counts a connection when it enters the stack and its bytes and flag when it ends. Its
 * labels (this workload and the peer's principal; an opaque connection carries no peer
 * metadata, so the peer's workload is `unknown`) are resolved once per principal.
 */
export function tcpMetricsLayer(metrics: TcpMetrics, local: LocalWorkload): Layer<AcceptedConnection, ConnectionOutcome> {
  const plain = new Map<string, TcpSeries>();
  const mtls = new Map<string, TcpSeries>();
  const seriesOf = (conn: AcceptedConnection): TcpSeries => {
    const byPrincipal = conn.security === 'mutual_tls' ? mtls : plain;
    const principal = peerPrincipalOf(conn) ?? '';
    let series = byPrincipal.get(principal);
    if (!series) {
      if (byPrincipal.size >= MAX_PRINCIPALS) byPrincipal.clear();
      series = metrics.series({
        reporter: reporterOf(conn.direction),
        ...workloadLabels(conn.direction, local, undefined, principal),
        connection_security_policy: conn.security,
      });
      byPrincipal.set(principal, series);
    }
    return series;
  };
  return (next) => async (conn) => {
    const reporter = reporterOf(conn.direction);
    const series = seriesOf(conn);
    series.opened++;
    metrics.active[reporter]++;
    let outcome: ConnectionOutcome;
    try {
      outcome = await next(conn);
    } finally {
      metrics.active[reporter]--;
    }
    series.closed(outcome.flag).value++;
    series.sentBytes += outcome.sentBytes;
    series.receivedBytes += outcome.receivedBytes;
    return outcome;
  };
}
