import http2 from 'node:http2';
import net from 'node:net';
import { MeshletError } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import type { Identity } from '../../tls/identity.ts';
import type { PeerLookup } from '../../tls/mesh-peers.ts';
import { MESH_ALPN_H2 } from '../../tls/peer-identity.ts';
import { formatHostPort, type OrigDst } from '../../net/addresses.ts';
import { trackOwnConnection } from '../../net/own-connections.ts';
import { connectMeshTls } from '../tcp/connectors.ts';
import { CONNECTION_WINDOW, sessionMemoryMb, STREAM_WINDOW } from './h2-session.ts';
import type { SessionFactory } from './session-pool.ts';

// Streams on one session are as many as the peer allows: a meshlet peer announces 1000
// (http/options.ts), and the session memory is sized for them.
const SESSION_OPTIONS = { settings: { initialWindowSize: STREAM_WINDOW, enablePush: false }, maxSessionMemory: sessionMemoryMb(1000) } satisfies http2.ClientSessionOptions;

/** A client session to `dst` on the socket `connect` makes (half-open: the pool ends the session when the peer ends the connection). */
function session(dst: OrigDst, connect: () => net.Socket): http2.ClientHttp2Session {
  const s = http2.connect(`http://${formatHostPort(dst.address, dst.port)}`, { ...SESSION_OPTIONS, createConnection: connect });
  // Not before 'connect': node:http2 refuses to change the window of a session still connecting.
  s.once('connect', () => s.setLocalWindowSize(CONNECTION_WINDOW));
  return s;
}

/** h2c with prior knowledge to an app (or a destination outside the mesh). */
export const h2cSessions: SessionFactory = (dst) =>
  session(dst, () => trackOwnConnection(net.connect({ host: dst.address, port: dst.port, noDelay: true, allowHalfOpen: true }), dst));

/** meshlet/h2 over mTLS to the peer sidecar in front of `dst`, verified as `peers` says it must be. */
export function meshSessions(identity: () => Identity | undefined, peers: PeerLookup, log: Logger): SessionFactory {
  return (dst) => {
    const id = identity();
    const peer = peers.lookup(dst);
    if (!id || !peer) throw new MeshletError('MESHLET_ERR_UPSTREAM_CONNECT', `no mesh identity or peer for ${formatHostPort(dst.address, dst.port)}`);
    return session(dst, () => connectMeshTls(id, peer, dst, MESH_ALPN_H2, log));
  };
}
