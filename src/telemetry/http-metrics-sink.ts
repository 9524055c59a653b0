import type { AcceptedConnection, Direction } from '../pipeline/connection.ts';
import type { WorkloadMetadata } from '../pipeline/exchange.ts';
import type { ExchangeSink, FinishedExchange } from './exchange-layer.ts';
import type { HttpLabels, HttpMetrics, HttpSeries } from './http-metrics.ts';
import { reporterOf } from './tcp-metrics.ts';
import type { LocalWorkload } from './workload.ts';
import { peerPrincipalOf, UNKNOWN, workloadLabels } from './workload-labels.ts';


/**
 * Records each finished exchange in the HTTP metrics of one side (outbound reports as
 * `source`, inbound as `destination`). Finding a request's series walks four small maps,
 * by what varies least to most: the connection's peer principal, the peer workload (one
 * object per peer, decoded once), the authority, then code, gRPC status and flag folded
 * into one number. Label objects are only built the first time a combination is seen.
 */
export function httpMetricsSink(metrics: HttpMetrics, direction: Direction, local: LocalWorkload): ExchangeSink {
  const reporter = reporterOf(direction);
  const active = metrics.active;
  const resolver = new SeriesResolver(metrics, direction, local);
  return {
    started: () => {
      active[reporter]++;
    },
    finished: (ex) => {
      active[reporter]--;
      const series = resolver.seriesOf(ex);
      series.requests++;
      series.duration.observe(ex.durationMs);
      series.requestBytes.observe(ex.requestBytes);
      series.responseBytes.observe(ex.responseBytes);
    },
  };
}

/** Caches cleared when they reach this size: they only ever hold what a peer can vary. */
const MAX_ENTRIES = 256;

/** A principal's (and security mode's) entries, by peer workload. */
type ByPeer = Map<WorkloadMetadata | undefined, ByAuthority>;
type ByAuthority = Map<string, Route>;

/** Everything but the outcome is known: series by outcome key (outcomeKey). */
interface Route {
  readonly labels: Omit<HttpLabels, 'response_code' | 'grpc_response_status' | 'response_flags' | 'request_protocol'>;
  readonly http: Map<number, HttpSeries>;
  readonly grpc: Map<number, HttpSeries>;
}

class SeriesResolver {
  readonly #metrics: HttpMetrics;
  readonly #direction: Direction;
  readonly #local: LocalWorkload;
  /** By connection_security_policy, then principal. */
  readonly #plain = new Map<string, ByPeer>();
  readonly #mtls = new Map<string, ByPeer>();
  readonly #flags = new Map<string, number>([['-', 0]]);
  /** The last route found, and what found it: most requests of a sidecar go where the one before went. */
  #last: { principal: string; mtls: boolean; peer: WorkloadMetadata | undefined; authority: string; route: Route } | undefined;
  /** The last series found: in which of a route's maps, under which outcome key. */
  #lastSeriesMap: Map<number, HttpSeries> | undefined;
  #lastKey = -1;
  #lastSeries: HttpSeries | undefined;

  constructor(metrics: HttpMetrics, direction: Direction, local: LocalWorkload) {
    this.#metrics = metrics;
    this.#direction = direction;
    this.#local = local;
  }

  seriesOf(ex: FinishedExchange): HttpSeries {
    const conn = ex.req.conn;
    const principal = peerPrincipalOf(conn) ?? '';
    const mtls = conn.security === 'mutual_tls';
    const authority = ex.req.authority;
    // Compared with the last request's rather than hashed for a map (callgrind: about 900
    // instructions a request). The HTTP/1.1 parser hands out one string for the same
    // authority, so this is mostly an identity check; HTTP/2's are compared in full.
    const last = this.#last;
    const route =
      last !== undefined && last.authority === authority && last.peer === ex.peer && last.principal === principal && last.mtls === mtls
        ? last.route
        : this.#find(conn, mtls, principal, ex.peer, authority);
    const key = this.#outcomeKey(ex);
    const bySeries = ex.req.grpc ? route.grpc : route.http;
    // Most requests end as the one before did: their series is the last one found.
    if (bySeries === this.#lastSeriesMap && key === this.#lastKey) return this.#lastSeries!;
    let series = bySeries.get(key);
    if (series === undefined) {
      series = this.#metrics.series({
        ...route.labels,
        request_protocol: ex.req.grpc ? 'grpc' : 'http',
        response_code: String(ex.status),
        grpc_response_status: ex.grpcStatus,
        response_flags: ex.flag,
      });
      bySeries.set(key, series);
    }
    this.#lastSeriesMap = bySeries;
    this.#lastKey = key;
    this.#lastSeries = series;
    return series;
  }

  #find(conn: AcceptedConnection, mtls: boolean, principal: string, peer: WorkloadMetadata | undefined, authority: string): Route {
    const byPrincipal = mtls ? this.#mtls : this.#plain;
    // Looked up without closures: this runs whenever the route changes, the makers only on a miss.
    const byPeer = byPrincipal.get(principal) ?? put(byPrincipal, principal, new Map());
    const byAuthority = byPeer.get(peer) ?? put(byPeer, peer, new Map());
    const route = byAuthority.get(authority) ?? put(byAuthority, authority, this.#route(conn, principal, peer, authority));
    this.#last = { principal, mtls, peer, authority, route };
    return route;
  }

  /** Code, flag and gRPC status as one number; a gRPC status that is not 0–16 is one value of its own. */
  #outcomeKey(ex: FinishedExchange): number {
    // '-' (no flag) is 0 without a lookup: a map keyed by strings compares them in V8's runtime.
    let flag = ex.flag === '-' ? 0 : this.#flags.get(ex.flag);
    if (flag === undefined) this.#flags.set(ex.flag, (flag = this.#flags.size));
    const grpc = ex.grpcStatus === '' ? 0 : GRPC_CODES.get(ex.grpcStatus) ?? 18;
    return (flag * 1000 + ex.status) * 32 + grpc;
  }

  #route(conn: AcceptedConnection, peerPrincipal: string, peer: WorkloadMetadata | undefined, authority: string): Route {
    const service = serviceOf(authority, this.#direction === 'inbound' ? this.#local.metadata.namespace : '');
    return {
      labels: {
        reporter: reporterOf(this.#direction),
        ...workloadLabels(this.#direction, this.#local, peer, peerPrincipal),
        destination_service: service.host,
        destination_service_name: service.name,
        destination_service_namespace: service.namespace,
        connection_security_policy: conn.security,
      },
      http: new Map(),
      grpc: new Map(),
    };
  }
}

/** grpc-status values 0–16, as they are written, to 1–17. */
const GRPC_CODES = new Map(Array.from({ length: 17 }, (_, i) => [String(i), i + 1] as const));

/** Adds an entry to a cache, emptying it first when it is full. */
function put<K, V>(map: Map<K, V>, key: K, value: V): V {
  if (map.size >= MAX_ENTRIES) map.clear();
  map.set(key, value);
  return value;
}

/**
 * destination_service from the request's authority: its host, without the port. Its
 * name and namespace are the first two labels of a Kubernetes service name
 * (`cart.shop.svc.cluster.local`, `cart.shop`); a bare name (`cart`) is in `namespace`
 * (this pod's, inbound); an IP address names no service.
 */
export function serviceOf(authority: string, namespace: string): { host: string; name: string; namespace: string } {
  const host = hostOf(authority).toLowerCase();
  if (host === '') return { host: UNKNOWN, name: UNKNOWN, namespace: UNKNOWN };
  if (host.startsWith('[') || /^[\d.]+$/.test(host)) return { host, name: host, namespace: UNKNOWN };
  const [name = host, ns] = host.split('.', 2);
  return { host, name, namespace: ns || namespace || UNKNOWN };
}

function hostOf(authority: string): string {
  if (authority.startsWith('[')) {
    const end = authority.indexOf(']');
    return end === -1 ? authority : authority.slice(0, end + 1);
  }
  const colon = authority.lastIndexOf(':');
  return colon === -1 ? authority : authority.slice(0, colon);
}
