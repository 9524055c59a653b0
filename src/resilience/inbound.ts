import { MeshletError } from '../errors.ts';
import { compose, type Handler, type Layer } from '../pipeline/compose.ts';
import type { AcceptedConnection, ConnectionOutcome } from '../pipeline/connection.ts';
import type { ProxyRequest, ProxyResponse } from '../pipeline/exchange.ts';
import type { Clock } from './clock.ts';
import type { TargetEvents } from './events.ts';
import { ConcurrencyLimit, limitedLayer } from './limits.ts';
import type { InboundPolicies, InboundPortPolicy, RatePolicy } from './policy.ts';
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

function rateLimited(rate: RatePolicy, what: string, waitMs: number, events: TargetEvents): Promise<never> {
  events.rateLimited();
  return Promise.reject(new MeshletError('MESHLET_ERR_RATE_LIMITED', `${what} is limited to ${rate.perSecond} requests per second`, { retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)) }));
}

function rateLimitLayer(policy: InboundPortPolicy, clock: Clock, events: TargetEvents): Layer<ProxyRequest, ProxyResponse> {
  const rate = policy.rateLimit;
  if (rate === undefined) return (next) => next;
  const bucket = new TokenBucket(rate.perSecond, rate.burst, clock);
  const what = `port ${policy.port}`;
  return (next) => (req) => {
    const waitMs = bucket.take();
    return waitMs === 0 ? next(req) : rateLimited(rate, what, waitMs, events);
  };
}

/**
 * The port's per-route rate limits: the first route whose prefix starts the request's
 * path (as sent, not decoded) takes a token of its bucket; a path no route matches passes.
 */
function routeRateLimitLayer(policy: InboundPortPolicy, clock: Clock, events: TargetEvents): Layer<ProxyRequest, ProxyResponse> {
  if (policy.routes.length === 0) return (next) => next;
  const routes = policy.routes.map((r) => ({ ...r, bucket: new TokenBucket(r.rateLimit.perSecond, r.rateLimit.burst, clock), what: `${r.pathPrefix} on port ${policy.port}` }));
  return (next) => (req) => {
    const route = matchRoute(routes, req.path);
    if (route === undefined) return next(req);
    const waitMs = route.bucket.take();
    return waitMs === 0 ? next(req) : rateLimited(route.rateLimit, route.what, waitMs, events);
  };
}

/** The first of `routes` whose prefix starts `path`. */
export function matchRoute<R extends { readonly pathPrefix: string }>(routes: readonly R[], path: string): R | undefined {
  for (const route of routes) if (path.startsWith(route.pathPrefix)) return route;
  return undefined;
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
        // A route's limit first: a request it refuses takes nothing of the port's.
        layers.push(routeRateLimitLayer(policy, clock, events), rateLimitLayer(policy, clock, events));
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
