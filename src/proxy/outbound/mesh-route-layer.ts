import type { AcceptedConnection, ConnectionOutcome } from '../../pipeline/connection.ts';
import type { Layer } from '../../pipeline/compose.ts';
import type { StackDeps } from '../stack-deps.ts';

/** Marks connections to meshed destinations, so later layers label them and the terminal encrypts them. */
export function meshRouteLayer(deps: Pick<StackDeps, 'identity' | 'peers'>): Layer<AcceptedConnection, ConnectionOutcome> {
  return (next) => async (conn) => {
    const peer = deps.identity() ? deps.peers.lookup(conn.origDst) : undefined;
    return next(peer ? { ...conn, security: 'mutual_tls', upstreamPeer: peer } : conn);
  };
}
