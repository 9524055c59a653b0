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
import { meshClientFraming, meshHttp1ClientFraming } from '../http/mesh-framing.ts';
import { downstreamOptions } from '../http/options.ts';
import { requestIdLayer } from '../http/request-id-layer.ts';
import { h2cSessions, meshSessions } from '../http/session-factories.ts';
import { SessionPool } from '../http/session-pool.ts';
import { tunnelHandler } from '../http/tunnel.ts';
import { loopGuardLayer } from '../loop-guard-layer.ts';
import { compose, type Handler } from '../../pipeline/compose.ts';
import type { StackDeps } from '../stack-deps.ts';
import { meshHttp1Connector, mtlsConnector, plainConnector, type Connector } from '../tcp/connectors.ts';
import { forwardTcp } from '../tcp/forward.ts';
import { meshRouteLayer } from './mesh-route-layer.ts';
import { breakerLayer } from '../../resilience/breaker.ts';
import { faultLayer } from '../../resilience/fault.ts';
import { connectionLimit, destinationLimitLayer, type ConnectionLimit } from '../../resilience/limits.ts';
import { retryLayer } from '../../resilience/retry.ts';
import { timeoutLayer } from '../../resilience/timeout.ts';

// The outbound recipe (port 15001): an app in this pod connected somewhere and netfilter
// sent the connection here. Read top to bottom: the first layer sees the connection first.
export function outboundStack(deps: StackDeps): Handler<AcceptedConnection, ConnectionOutcome> {
  const { config, log, tcpMetrics } = deps;
  // Opaque bytes (and WebSocket after its upgrade) to a meshed destination: mTLS meshlet/tcp, one connection each.
  const connectorFor = (conn: AcceptedConnection): Connector => (conn.upstreamPeer ? mtlsConnector(() => deps.identity()!, conn.upstreamPeer, log) : plainConnector);

  const requests = outboundRequests(deps);
  const http1 = new Http1Downstream(requests, tunnelHandler(connectorFor, config.outbound.connectTimeout, log), downstreamOptions(config), log);
  const h2 = new H2Downstream(requests, downstreamOptions(config), log);
  deps.parts.servers.outbound.push(http1, h2);

  return compose(
    [
      loopGuardLayer(deps.proxyPorts, deps.localAddresses, tcpMetrics, log),
      // Opaque TCP, HTTP/1.x or HTTP/2, from protocols.ports, protocols.opaquePorts or the first bytes.
      detectLayer(config.protocols, config.outbound.detectTimeout, tcpMetrics.detections, log),
      // Meshed destinations (mesh.peers) are reached over mTLS, everything else as it is.
      meshRouteLayer(deps),
      // From here on the connection is accepted: its access log line (opaque TCP) and the TCP metrics.
      connectionLogLayer(deps.accessLog),
      ...(config.metrics.enabled ? [tcpMetricsLayer(tcpMetrics, deps.workload)] : []),
    ],
    (conn) => {
      if (conn.protocol === 'http1') return http1.serve(conn);
      if (conn.protocol === 'h2') return h2.serve(conn, appH2);
      // The destination's policy: its connect timeout, connect retries within its attempts
      // and budget, its circuit breaker (counting connect failures; open: reset, UO) and
      // its connection limit (beyond it: reset, UO).
      const { connectTimeoutMs, retryConnect, breaker, connections } = deps.resilience.connectPolicy(conn);
      const forward = () => forwardTcp(conn, { connectTimeoutMs, idleTimeoutMs: config.tcp.idleTimeout, retryConnect, breaker }, connectorFor(conn));
      if (connections === undefined) return forward();
      if (!connections.acquire()) {
        conn.socket.resetAndDestroy();
        return Promise.resolve({ receivedBytes: 0, sentBytes: 0, flag: 'UO', reason: 'overflow' });
      }
      return forward().finally(connections.release);
    },
  );
}

// The outbound request recipe: one run per HTTP request of the app. Requests to meshed
// destinations go over pooled mTLS to the peer sidecar: HTTP/1.1 ones as HTTP/1.1
// (meshlet/http1, one request at a time per connection, sessions resumed), HTTP/2 and
// gRPC ones as streams of one HTTP/2 connection per destination (meshlet/h2). Others go
// as the app sent them, over pooled connections.
function outboundRequests(deps: StackDeps): Handler<ProxyRequest, ProxyResponse> {
  const { config, log } = deps;
  const pool = { connectTimeoutMs: config.outbound.connectTimeout, idleTimeoutMs: config.http.upstreamIdleTimeout };
  const http1 = new Http1Upstream(pool);
  const h2cPool = new SessionPool(h2cSessions, pool);
  const h2c = new H2Upstream(h2cPool);
  const meshPool = new SessionPool(meshSessions(deps.identity, deps.peers, log), pool);
  const mesh = new H2Upstream(meshPool, meshClientFraming(deps.workload.metadata));
  const meshHttp1 = new Http1Upstream({ ...pool, connector: meshHttp1Connector(deps.identity, deps.peers, log), framing: meshHttp1ClientFraming(deps.workload.metadata) });
  deps.parts.pools.push(
    { name: 'outbound/http1', direction: 'outbound', protocol: 'http1', mtls: false, source: http1 },
    { name: 'outbound/h2c', direction: 'outbound', protocol: 'h2c', mtls: false, source: h2cPool },
    { name: 'outbound/mesh-http1', direction: 'outbound', protocol: 'meshlet/http1', mtls: true, source: meshHttp1 },
    { name: 'outbound/mesh-h2', direction: 'outbound', protocol: 'meshlet/h2', mtls: true, source: meshPool },
  );
  const { clock } = deps.resilience;
  // HTTP/2 (h2c, meshlet/h2) uses one connection per destination: the connection limit is the HTTP/1.1 pools'.
  const send = (req: ProxyRequest, connectTimeoutMs: number, limit?: ConnectionLimit): Promise<ProxyResponse> => {
    const dst = req.conn.origDst;
    if (req.conn.upstreamPeer) return req.protocol === 'http1' ? meshHttp1.send(req, dst, connectTimeoutMs, limit) : mesh.send(req, dst, connectTimeoutMs);
    return req.protocol === 'h2' ? h2c.send(req, dst, connectTimeoutMs) : http1.send(req, dst, connectTimeoutMs, limit);
  };
  return compose(
    [
      requestIdLayer(config.http.requestId),
      // Spans, metrics and the access log follow each request to the end of its response,
      // or its failure. The span (CLIENT) comes first: it rewrites the trace headers
      // sent on, so the next hop continues the trace; without an OTLP endpoint it is not there.
      exchangeLayer({
        trace: deps.tracing?.sink('outbound'),
        metrics: config.metrics.enabled ? httpMetricsSink(deps.httpMetrics, 'outbound', deps.workload) : undefined,
        log: requestLogSink(deps.accessLog),
      }),
      // Per destination (the first of resilience.destinations that matches, else
      // resilience.defaults), built once per destination: fault injection, the whole
      // request's deadline, the destination's limits, retries with their budget and per-try
      // deadline, then the destination's circuit breaker around the upstream call (each try
      // counts; an open breaker answers 503 UO and nothing goes upstream).
      deps.resilience.requestLayer(
        'outbound',
        (target) => [
          faultLayer(target, clock),
          timeoutLayer(target, clock),
          destinationLimitLayer(target),
          retryLayer(target, clock),
          breakerLayer(target, deps.resilience.breakers),
        ],
        // The destination's connect timeout and connection limit, when its policy sets them.
        (target, next) => {
          const limit = connectionLimit(target);
          const { connectTimeoutMs } = target.policy;
          return connectTimeoutMs === config.outbound.connectTimeout && limit === undefined ? next : (req) => send(req, connectTimeoutMs, limit);
        },
      ),
    ],
    (req) => send(req, config.outbound.connectTimeout),
  );
}
