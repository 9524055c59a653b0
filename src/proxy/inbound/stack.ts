import { connectionLogLayer, requestLogSink } from '../../telemetry/access-log.ts';
import { exchangeLayer } from '../../telemetry/exchange-layer.ts';
import { httpMetricsSink } from '../../telemetry/http-metrics-sink.ts';
import { tcpMetricsLayer } from '../../telemetry/tcp-metrics-layer.ts';
import type { AcceptedConnection, ConnectionOutcome } from '../../pipeline/connection.ts';
import { detectLayer } from '../detect/detect-layer.ts';
import type { ProxyRequest, ProxyResponse } from '../../pipeline/exchange.ts';
import { appH2, H2Downstream } from '../http/h2-downstream.ts';
import { H2Upstream } from '../http/h2-upstream.ts';
import { Http1Downstream } from '../http/http1-downstream.ts';
import { Http1Upstream } from '../http/http1-upstream.ts';
import { meshHttp1ServerFraming, meshServerFraming } from '../http/mesh-framing.ts';
import { downstreamOptions } from '../http/options.ts';
import { requestIdLayer } from '../http/request-id-layer.ts';
import { h2cSessions } from '../http/session-factories.ts';
import { SessionPool } from '../http/session-pool.ts';
import { tunnelHandler } from '../http/tunnel.ts';
import { loopGuardLayer } from '../loop-guard-layer.ts';
import { compose, type Handler } from '../../pipeline/compose.ts';
import type { StackDeps } from '../stack-deps.ts';
import { plainConnector } from '../tcp/connectors.ts';
import { forwardTcp } from '../tcp/forward.ts';
import { authorizationLayer } from './authorization-layer.ts';
import { inboundMtlsLayer } from './mtls-layer.ts';
import { inboundConnectionLimitLayer, inboundRequestLayer } from '../../resilience/inbound.ts';
import { retryLayer } from '../../resilience/retry.ts';
import { timeoutLayer } from '../../resilience/timeout.ts';

// The inbound recipe (port 15006): a peer connected to this pod's IP and an app port.
// The proxy connects on to that same pod IP and port from the proxy UID, which the
// OUTPUT rules let through, so apps bound to 0.0.0.0 or the pod IP see the connection.
// Apps bound only to 127.0.0.1 are not reachable through the mesh (docs/proxy.md).
export function inboundStack(deps: StackDeps): Handler<AcceptedConnection, ConnectionOutcome> {
  const { config, log, tcpMetrics } = deps;
  const requests = inboundRequests(deps);
  const http1 = new Http1Downstream(requests, tunnelHandler(() => plainConnector, config.inbound.connectTimeout, log), downstreamOptions(config), log);
  const h2 = new H2Downstream(requests, downstreamOptions(config), log);
  deps.parts.servers.inbound.push(http1, h2);
  const fromPeerSidecar = meshServerFraming(deps.workload.metadata);
  const http1FromPeerSidecar = meshHttp1ServerFraming(deps.workload.metadata);

  return compose(
    [
      loopGuardLayer(deps.proxyPorts, deps.localAddresses, tcpMetrics, log),
      // resilience.inbound.maxConnections (all ports, and per port): beyond it, reset before any work.
      inboundConnectionLimitLayer(() => deps.resilience.table.inbound, deps.resilience.inboundEvents, deps.resilience.inboundState),
      // Terminate the peer sidecar's mTLS, or pass plaintext / the app's own TLS (inbound.mtls).
      inboundMtlsLayer({ config: config.inbound, identity: deps.identity, log, metrics: tcpMetrics }),
      authorizationLayer(config.inbound.authorization, log, tcpMetrics),
      // What the (decrypted) connection carries; meshlet/h2 from a peer sidecar is known already.
      detectLayer(config.protocols, config.inbound.detectTimeout, tcpMetrics.detections, log),
      // From here on the connection is accepted: its access log line (opaque TCP) and the TCP metrics.
      connectionLogLayer(deps.accessLog),
      ...(config.metrics.enabled ? [tcpMetricsLayer(tcpMetrics, deps.workload)] : []),
    ],
    (conn) => {
      if (conn.protocol === 'mesh-h2') return h2.serve(conn, fromPeerSidecar);
      if (conn.protocol === 'mesh-http1') return http1.serve(conn, http1FromPeerSidecar);
      if (conn.protocol === 'http1') return http1.serve(conn);
      if (conn.protocol === 'h2') return h2.serve(conn, appH2);
      return forwardTcp(conn, { connectTimeoutMs: config.inbound.connectTimeout, idleTimeoutMs: config.tcp.idleTimeout });
    },
  );
}

// The inbound request recipe: one run per request, spoken to the app in the protocol its
// client used (a peer sidecar says which in meshlet-protocol).
function inboundRequests(deps: StackDeps): Handler<ProxyRequest, ProxyResponse> {
  const { config } = deps;
  const pool = { connectTimeoutMs: config.inbound.connectTimeout, idleTimeoutMs: config.http.upstreamIdleTimeout };
  const http1 = new Http1Upstream(pool);
  const h2cPool = new SessionPool(h2cSessions, pool);
  const h2c = new H2Upstream(h2cPool);
  deps.parts.pools.push(
    { name: 'inbound/http1', direction: 'inbound', protocol: 'http1', mtls: false, source: http1 },
    { name: 'inbound/h2c', direction: 'inbound', protocol: 'h2c', mtls: false, source: h2cPool },
  );
  const { resilience } = deps;
  return compose(
    [
      requestIdLayer(config.http.requestId),
      // Spans, metrics and the access log follow each request to the end of its response,
      // or its failure. The span (SERVER) comes first: it rewrites the trace headers the app
      // sees, so its own calls continue the trace; without an OTLP endpoint it is not there.
      exchangeLayer({
        trace: deps.tracing?.sink('inbound'),
        metrics: config.metrics.enabled ? httpMetricsSink(deps.httpMetrics, 'inbound', deps.workload) : undefined,
        log: requestLogSink(deps.accessLog),
      }),
      // resilience.inbound: concurrent requests (all ports, and per port) and each port's rate limits.
      inboundRequestLayer(() => resilience.table.inbound, resilience.clock, resilience.inboundEvents, resilience.inboundState),
      // resilience.inbound.ports.N: the timeout and retries towards the app on that port
      // (none by default: the caller's sidecar has its own), built once per port.
      resilience.requestLayer('inbound', (target) => [timeoutLayer(target, resilience.clock), retryLayer(target, resilience.clock)], undefined, {
        table: (current) => current.inboundRequests,
        grpcTimeouts: false,
      }),
    ],
    (req) => (req.protocol === 'h2' ? h2c.send(req, req.conn.origDst) : http1.send(req, req.conn.origDst)),
  );
}
