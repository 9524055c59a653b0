// What /clusters shows: the destinations the proxy keeps upstream connections to, read
// from the pools themselves when asked. The pools live in src/proxy/http; each offers a
// read-only snapshot in these shapes, so the admin server never reaches into them.

/** One destination of one pool. */
export interface DestinationSnapshot {
  /** host:port (the original destination). */
  readonly destination: string;
  /** Connections (HTTP/1.1) or sessions (HTTP/2) open to it. */
  readonly connections: number;
  /** Of those, the ones idle in the pool (HTTP/1.1); HTTP/2 sessions are shared, so always 0 there. */
  readonly idle: number;
  /** HTTP/2 only: streams open on the session. */
  readonly streams?: number;
  /** HTTP/1.1 under a connection limit (limits.maxConnections): requests waiting for a connection, when any. */
  readonly waiting?: number;
}

/** A pool that can describe itself; taking a snapshot must not change it. */
export interface PoolSnapshotSource {
  snapshot(): DestinationSnapshot[];
}

export interface NamedPool {
  /** e.g. `outbound/http1`, `outbound/mesh-h2`. */
  readonly name: string;
  readonly direction: 'inbound' | 'outbound';
  /** What the pool speaks upstream: `http1`, `h2c`, `meshlet/http1`, `meshlet/h2`. */
  readonly protocol: string;
  readonly mtls: boolean;
  readonly source: PoolSnapshotSource;
}

export interface ClusterEntry extends DestinationSnapshot {
  readonly pool: string;
  readonly direction: 'inbound' | 'outbound';
  readonly protocol: string;
  readonly mtls: boolean;
  /**
   * The state of the destination's circuit breaker (`closed`, `open`, `half_open`); null
   * when its policy has none (the default) or it has had no request since the last reload.
   */
  readonly breaker: string | null;
}

/** Every destination of every pool, sorted by pool then destination (stable output to diff). */
export function clusterEntries(pools: readonly NamedPool[], breakers: ReadonlyMap<string, string> = new Map()): ClusterEntry[] {
  const entries: ClusterEntry[] = [];
  for (const pool of pools) {
    for (const d of pool.source.snapshot()) {
      // Breakers are outbound only (the inbound side talks to its own app).
      const breaker = pool.direction === 'outbound' ? (breakers.get(d.destination) ?? null) : null;
      entries.push({ pool: pool.name, direction: pool.direction, protocol: pool.protocol, mtls: pool.mtls, ...d, breaker });
    }
  }
  return entries.sort((a, b) => (a.pool === b.pool ? a.destination.localeCompare(b.destination) : a.pool.localeCompare(b.pool)));
}
