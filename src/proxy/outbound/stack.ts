import { accessLogLayer } from '../../telemetry/access-log.ts';
import { tcpMetricsLayer } from '../../telemetry/tcp-metrics-layer.ts';
import type { AcceptedConnection, ConnectionOutcome } from '../connection.ts';
import { loopGuardLayer } from '../loop-guard-layer.ts';
import { compose, type Handler } from '../pipeline.ts';
import type { StackDeps } from '../stack-deps.ts';
import { mtlsConnector, plainConnector } from '../tcp/connectors.ts';
import { forwardTcp } from '../tcp/forward.ts';
import { meshRouteLayer } from './mesh-route-layer.ts';

// The outbound recipe (port 15001): an app in this pod connected somewhere and netfilter
// sent the connection here. Read top to bottom: the first layer sees the connection first.
export function outboundStack(deps: StackDeps): Handler<AcceptedConnection, ConnectionOutcome> {
  const { config, log, tcpMetrics } = deps;
  const options = { connectTimeoutMs: config.outbound.connectTimeout, idleTimeoutMs: config.tcp.idleTimeout };
  return compose(
    [
      loopGuardLayer(deps.proxyPorts, deps.localAddresses, tcpMetrics, log),
      // Meshed destinations (mesh.peers) are reached over mTLS, everything else as it is.
      meshRouteLayer(deps),
      // From here on the connection is accepted: one access log line and the TCP metrics.
      accessLogLayer(log),
      tcpMetricsLayer(tcpMetrics),
    ],
    (conn) =>
      forwardTcp(conn, options, conn.upstreamPeer ? mtlsConnector(() => deps.identity()!, conn.upstreamPeer, log) : plainConnector),
  );
}
