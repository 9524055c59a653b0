import { X509Certificate } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { MeshletError } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import type { Identity } from '../../tls/identity.ts';
import type { MeshPeer, PeerLookup } from '../../tls/mesh-peers.ts';
import { checkPeerIdentity, MESH_ALPN_HTTP1, MESH_ALPN_TCP } from '../../tls/peer-identity.ts';
import { formatHostPort, type OrigDst } from '../../net/addresses.ts';
import { trackOwnConnection } from '../../net/own-connections.ts';
import type { ReadInto } from '../../net/read-into.ts';

/** An upstream connection being made, and the event that says it is ready for bytes. */
export interface Upstream {
  readonly socket: net.Socket;
  readonly readyEvent: 'connect' | 'secureConnect';
}

/** Opens a connection to `dst`; with `readInto`, its bytes are read as ReadInto says. */
export type Connector = (dst: OrigDst, readInto?: ReadInto) => Upstream;

export const plainConnector: Connector = (dst, readInto) => ({
  socket: trackOwnConnection(net.connect({ host: dst.address, port: dst.port, allowHalfOpen: true, noDelay: true, ...(readInto ? { onread: readInto } : {}) }), dst),
  readyEvent: 'connect',
});

/**
 * mTLS to a meshed destination: TLS 1.3, our certificate, one of meshlet's ALPN
 * protocols; the server is verified by chain against ca.crt and by SPIFFE ID against
 * what `peer` expects, never by hostname. A server that does not agree to the ALPN is
 * not a sidecar, and the socket is destroyed with an error before it is ready.
 */
export function connectMeshTls(identity: Identity, peer: MeshPeer, dst: OrigDst, alpn: string, log: Logger, sessions?: TlsSessions, readInto?: ReadInto): tls.TLSSocket {
  const sessionKey = sessions ? `${alpn}|${dst.address}|${dst.port}|${peer.spiffeId ?? peer.trustDomain}` : '';
  const session = sessions?.get(identity, sessionKey);
  // allowHalfOpen is honoured by tls.connect (it is handed to the TLSSocket) but missing from its types.
  const options: tls.ConnectionOptions & { allowHalfOpen: boolean } = {
    host: dst.address,
    port: dst.port,
    secureContext: identity.secureContext,
    ALPNProtocols: [alpn],
    minVersion: 'TLSv1.3',
    rejectUnauthorized: true,
    allowHalfOpen: true,
    ...(session ? { session } : {}),
    ...(readInto ? { onread: readInto } : {}),
    checkServerIdentity: (_host, cert) => {
      try {
        checkPeerIdentity(new X509Certificate(cert.raw), peer);
        return undefined;
      } catch (err) {
        return err as Error;
      }
    },
  };
  const socket = trackOwnConnection(tls.connect(options), dst);
  socket.setNoDelay(true);
  if (sessions) socket.on('session', (ticket: Buffer) => sessions.set(identity, sessionKey, ticket));
  let stage: 'tcp' | 'handshake' | 'secure' = 'tcp';
  socket.once('connect', () => (stage = 'handshake'));
  socket.prependOnceListener('secureConnect', () => {
    if (socket.alpnProtocol !== alpn) socket.destroy(new MeshletError('MESHLET_ERR_PEER_IDENTITY', `peer did not accept ALPN ${alpn}`));
    else {
      stage = 'secure';
      if (sessions) log.debug({ dst: formatHostPort(dst.address, dst.port), alpn, resumed: socket.isSessionReused() }, 'pooled mTLS connection to a peer sidecar');
    }
  });
  socket.once('error', (err) => {
    if (stage !== 'handshake') return; // refusals are the caller's to report; later errors are resets
    log.warn({ dst: formatHostPort(dst.address, dst.port), expected: peer.spiffeId ?? `trust domain ${peer.trustDomain}`, err: err.message }, 'outbound mTLS handshake failed');
  });
  return socket;
}

/**
 * TLS sessions to resume, per identity and destination: a new pooled connection to a peer
 * sidecar then skips the certificate exchange and signatures of a full handshake (about
 * 8 ms of proxy CPU here). A rotated identity starts afresh, so the peer sees the new
 * certificate on the next connection.
 */
export class TlsSessions {
  #identity: Identity | undefined;
  #sessions = new Map<string, Buffer>();
  readonly #max: number;

  constructor(max = 1024) {
    this.#max = max;
  }

  get(identity: Identity, key: string): Buffer | undefined {
    return identity === this.#identity ? this.#sessions.get(key) : undefined;
  }

  set(identity: Identity, key: string, session: Buffer): void {
    if (identity !== this.#identity) {
      this.#identity = identity;
      this.#sessions = new Map();
    }
    if (this.#sessions.size >= this.#max && !this.#sessions.has(key)) this.#sessions.clear();
    this.#sessions.set(key, session);
  }
}

/**
 * Whether an error code means the mTLS handshake with a peer did not succeed: a
 * certificate, chain or TLS failure, or the peer's SPIFFE ID or ALPN (MeshletError codes
 * from the checks above). Shared by the L4 and the HTTP paths so both call it the same.
 */
export function isMtlsHandshakeFailure(code: string): boolean {
  return code.startsWith('ERR_SSL') || code.startsWith('ERR_TLS') || code.startsWith('MESHLET_ERR') || /CERT|SELF_SIGNED|UNABLE_TO/.test(code);
}

/**
 * One app connection carried over its own mTLS connection (ALPN meshlet/tcp). The
 * identity is read per connection, so a rotation applies to the next connection and
 * leaves open ones alone.
 */
export function mtlsConnector(identity: () => Identity, peer: MeshPeer, log: Logger): Connector {
  return (dst, readInto) => ({ socket: connectMeshTls(identity(), peer, dst, MESH_ALPN_TCP, log, undefined, readInto), readyEvent: 'secureConnect' });
}

/** Pooled HTTP/1.1 to the peer sidecar in front of a meshed destination (ALPN meshlet/http1), resuming TLS sessions. */
export function meshHttp1Connector(identity: () => Identity | undefined, peers: PeerLookup, log: Logger): Connector {
  const sessions = new TlsSessions();
  return (dst, readInto) => {
    const id = identity();
    const peer = peers.lookup(dst);
    if (!id || !peer) throw new MeshletError('MESHLET_ERR_UPSTREAM_CONNECT', `no mesh identity or peer for ${formatHostPort(dst.address, dst.port)}`);
    return { socket: connectMeshTls(id, peer, dst, MESH_ALPN_HTTP1, log, sessions, readInto), readyEvent: 'secureConnect' };
  };
}
