import { MeshletError } from '../errors.ts';
import { compose, type Handler, type Layer } from '../pipeline/compose.ts';
import type { AcceptedConnection, ConnectionOutcome } from '../pipeline/connection.ts';
import type { ProxyRequest, ProxyResponse } from '../pipeline/exchange.ts';
import type { Clock } from './clock.ts';
import type { TargetEvents } from './events.ts';
import { ConcurrencyLimit, limitedLayer } from './limits.ts';
import type { InboundPolicies, InboundPortPolicy } from './policy.ts';
import { TokenBucket } from './rate-limit.ts';
import type { TargetStateView } from './targets.ts';

// What this pod's apps accept through the inbound listener (resilience.inbound): at most
// so many connections and requests at once, in all and per app port, and a local rate
// limit per port. Over a limit a connection is reset and a request answered 503 UO; over
// the rate, 429 RL with Retry-After. Shedding keeps the proxy's memory flat under
// overload instead of queueing what the app cannot take anyway.

export interface InboundState {
  /** Per-port state for /clusters. */
  readonly views: Map<string, TargetStateView>;
}

/** Resets connections beyond resilience.inbound.maxConnections (all ports) or ports.N.maxConnections. */
export function inboundConnectionLimitLayer(policies: () => InboundPolicies, events: TargetEvents, state: InboundState): Layer<AcceptedConnection, ConnectionOutcome> {
  let total = 0;
  const perPort = new Map<number, number>();
  state.views.set('connections', { snapshot: () => ({ total, ...Object.fromEntries([...perPort].map(([port, n]) => [`port ${port}`, n])) }) });
  return (next) => async (conn) => {
    const p = policies();
    const port = conn.origDst.port;
    const portMax = p.perPortConnections ? (p.port(port)?.maxConnections ?? 0) : 0;
    if (p.maxConnections === 0 && portMax === 0) return next(conn);
    const onPort = perPort.get(port) ?? 0;
    if ((p.maxConnections > 0 && total >= p.maxConnections) || (portMax > 0 && onPort >= portMax)) {
      events.overflow(portMax > 0 && onPort >= portMax ? 'max_connections' : 'inbound_max_connections');
      conn.socket.resetAndDestroy();
      return { receivedBytes: 0, sentBytes: 0, flag: 'UO', reason: 'overflow' };
    }
    total++;
    perPort.set(port, onPort + 1);
    try {
      return await next(conn);
    } finally {
      total--;
      const left = (perPort.get(port) ?? 1) - 1;
      if (left === 0) perPort.delete(port);
      else perPort.set(port, left);
    }
  };
}

function rateLimitLayer(policy: InboundPortPolicy, clock: Clock, events: TargetEvents): Layer<ProxyRequest, ProxyResponse> {
  const rate = policy.rateLimit;
  if (rate === undefined) return (next) => next;
  const bucket = new TokenBucket(rate.perSecond, rate.burst, clock);
  return (next) => (req) => {
    const waitMs = bucket.take();
    if (waitMs === 0) return next(req);
    events.rateLimited();
    return Promise.reject(
      new MeshletError('MESHLET_ERR_RATE_LIMITED', `port ${policy.port} is limited to ${rate.perSecond} requests per second`, { retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)) }),
    );
  };
}

/** The inbound request limits and rate limits, rebuilt when the policies change (hot reload). */
export function inboundRequestLayer(policies: () => InboundPolicies, clock: Clock, events: TargetEvents, state: InboundState): Layer<ProxyRequest, ProxyResponse> {
  return (next) => {
    let built: InboundPolicies | undefined;
    let shared: Handler<ProxyRequest, ProxyResponse> = next;
    let ports = new Map<number, Handler<ProxyRequest, ProxyResponse>>();
    const rebuild = (p: InboundPolicies) => {
      built = p;
      ports = new Map();
      state.views.delete('requests');
      for (const key of [...state.views.keys()]) if (key.startsWith('port ')) state.views.delete(key);
      if (p.maxConcurrentRequests > 0) {
        const limit = new ConcurrencyLimit(p.maxConcurrentRequests, 0);
        state.views.set('requests', limit);
        shared = limitedLayer(limit, 'inbound_max_concurrent_requests', events, 'the inbound listener')(next);
      } else {
        shared = next;
      }
    };
    const forPort = (p: InboundPolicies, port: number) => {
      const policy = p.port(port);
      const layers: Layer<ProxyRequest, ProxyResponse>[] = [];
      if (policy !== undefined) {
        layers.push(rateLimitLayer(policy, clock, events));
        if (policy.maxConcurrentRequests > 0) {
          const limit = new ConcurrencyLimit(policy.maxConcurrentRequests, 0);
          state.views.set(`port ${port}`, limit);
          layers.push(limitedLayer(limit, 'max_concurrent_requests', events, `inbound port ${port}`));
        }
      }
      const handler = compose(layers, shared);
      ports.set(port, handler);
      return handler;
    };
    return (req) => {
      const p = policies();
      if (p !== built) rebuild(p);
      if (!p.perPortRequests) return shared(req);
      const port = req.conn.origDst.port;
      return (ports.get(port) ?? forPort(p, port))(req);
    };
  };
}
