import { X509Certificate } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { MeshletError } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import type { Identity } from '../../tls/identity.ts';
import type { MeshPeer } from '../../tls/mesh-peers.ts';
import { checkPeerIdentity, MESH_ALPN_TCP } from '../../tls/peer-identity.ts';
import { formatHostPort, type OrigDst } from '../../net/addresses.ts';
import { trackOwnConnection } from '../../net/own-connections.ts';

/** An upstream connection being made, and the event that says it is ready for bytes. */
export interface Upstream {
  readonly socket: net.Socket;
  readonly readyEvent: 'connect' | 'secureConnect';
}

export type Connector = (dst: OrigDst) => Upstream;

export const plainConnector: Connector = (dst) => ({
  socket: trackOwnConnection(net.connect({ host: dst.address, port: dst.port, allowHalfOpen: true, noDelay: true })),
  readyEvent: 'connect',
});

/**
 * mTLS to a meshed destination: TLS 1.3, our certificate, one of meshlet's ALPN
 * protocols; the server is verified by chain against ca.crt and by SPIFFE ID against
 * what `peer` expects, never by hostname. A server that does not agree to the ALPN is
 * not a sidecar, and the socket is destroyed with an error before it is ready.
 */
export function connectMeshTls(identity: Identity, peer: MeshPeer, dst: OrigDst, alpn: string, log: Logger): tls.TLSSocket {
  // allowHalfOpen is honoured by tls.connect (it is handed to the TLSSocket) but missing from its types.
  const options: tls.ConnectionOptions & { allowHalfOpen: boolean } = {
    host: dst.address,
    port: dst.port,
    secureContext: identity.secureContext,
    ALPNProtocols: [alpn],
    minVersion: 'TLSv1.3',
    rejectUnauthorized: true,
    allowHalfOpen: true,
    checkServerIdentity: (_host, cert) => {
      try {
        checkPeerIdentity(new X509Certificate(cert.raw), peer);
        return undefined;
      } catch (err) {
        return err as Error;
      }
    },
  };
  const socket = trackOwnConnection(tls.connect(options));
  socket.setNoDelay(true);
  let stage: 'tcp' | 'handshake' | 'secure' = 'tcp';
  socket.once('connect', () => (stage = 'handshake'));
  socket.prependOnceListener('secureConnect', () => {
    if (socket.alpnProtocol !== alpn) socket.destroy(new MeshletError('MESHLET_ERR_PEER_IDENTITY', `peer did not accept ALPN ${alpn}`));
    else stage = 'secure';
  });
  socket.once('error', (err) => {
    if (stage !== 'handshake') return; // refusals are the caller's to report; later errors are resets
    log.warn({ dst: formatHostPort(dst.address, dst.port), expected: peer.spiffeId ?? `trust domain ${peer.trustDomain}`, err: err.message }, 'outbound mTLS handshake failed');
  });
  return socket;
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
  return (dst) => ({ socket: connectMeshTls(identity(), peer, dst, MESH_ALPN_TCP, log), readyEvent: 'secureConnect' });
}
