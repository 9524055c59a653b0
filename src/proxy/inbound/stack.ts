import { accessLogLayer } from '../../telemetry/access-log.ts';
import { tcpMetricsLayer } from '../../telemetry/tcp-metrics-layer.ts';
import type { AcceptedConnection, ConnectionOutcome } from '../connection.ts';
import { loopGuardLayer } from '../loop-guard-layer.ts';
import { compose, type Handler } from '../pipeline.ts';
import type { StackDeps } from '../stack-deps.ts';
import { forwardTcp } from '../tcp/forward.ts';
import { authorizationLayer } from './authorization-layer.ts';
import { inboundMtlsLayer } from './mtls-layer.ts';

// The inbound recipe (port 15006): a peer connected to this pod's IP and an app port.
// The proxy connects on to that same pod IP and port from the proxy UID, which the
// OUTPUT rules let through, so apps bound to 0.0.0.0 or the pod IP see the connection.
// Apps bound only to 127.0.0.1 are not reachable through the mesh (docs/proxy.md).
export function inboundStack(deps: StackDeps): Handler<AcceptedConnection, ConnectionOutcome> {
  const { config, log, tcpMetrics } = deps;
  return compose(
    [
      loopGuardLayer(deps.proxyPorts, deps.localAddresses, tcpMetrics, log),
      // Terminate the peer sidecar's mTLS, or pass plaintext / the app's own TLS (inbound.mtls).
      inboundMtlsLayer({ config: config.inbound, identity: deps.identity, log, metrics: tcpMetrics }),
      authorizationLayer(config.inbound.authorization, log, tcpMetrics),
      // From here on the connection is accepted: one access log line and the TCP metrics.
      accessLogLayer(log),
      tcpMetricsLayer(tcpMetrics),
    ],
    (conn) => forwardTcp(conn, { connectTimeoutMs: config.inbound.connectTimeout, idleTimeoutMs: config.tcp.idleTimeout }),
  );
}
