import { accessLogLayer } from '../../telemetry/access-log.ts';
import { tcpMetricsLayer } from '../../telemetry/tcp-metrics-layer.ts';
import type { AcceptedConnection, ConnectionOutcome } from '../connection.ts';
import { loopGuardLayer } from '../loop-guard-layer.ts';
import { compose, type Handler } from '../pipeline.ts';
import type { StackDeps } from '../stack-deps.ts';
import { forwardTcp } from '../tcp/forward.ts';

// The outbound recipe (port 15001): an app in this pod connected somewhere and netfilter
// sent the connection here. Read top to bottom: the first layer sees the connection first.
export function outboundStack(deps: StackDeps): Handler<AcceptedConnection, ConnectionOutcome> {
  const { config, log, tcpMetrics } = deps;
  return compose(
    [
      accessLogLayer(log),
      loopGuardLayer(deps.proxyPorts, deps.localAddresses, tcpMetrics, log),
      tcpMetricsLayer(tcpMetrics),
    ],
    // Opaque TCP to the original destination; protocol detection and mTLS come in front of this.
    (conn) => forwardTcp(conn, { connectTimeoutMs: config.outbound.connectTimeout, idleTimeoutMs: config.tcp.idleTimeout }),
  );
}
