import type { X509Certificate } from 'node:crypto';
import { MeshletError } from '../errors.ts';
import { spiffeIdOf } from './identity.ts';
import type { MeshPeer } from './mesh-peers.ts';
import { parseSpiffeId } from './spiffe.ts';

/** ALPN protocol that marks meshlet's own mTLS transport between sidecars: one app connection's bytes. */
export const MESH_ALPN_TCP = 'meshlet/tcp';
/** ALPN protocol of meshlet's pooled HTTP/2 between sidecars: many apps' requests, one stream each. */
export const MESH_ALPN_H2 = 'meshlet/h2';
/** ALPN protocol of meshlet's pooled HTTP/1.1 between sidecars: an app's HTTP/1.1 requests, one at a time per connection. */
export const MESH_ALPN_HTTP1 = 'meshlet/http1';

/**
 * The peer's SPIFFE ID, once it is known to match what we expect of it. The chain was
 * already verified by the TLS stack against ca.crt; this checks *who* it is, never a
 * hostname.
 */
export function checkPeerIdentity(cert: X509Certificate | undefined, expected: MeshPeer): string {
  if (!cert) throw new MeshletError('MESHLET_ERR_PEER_IDENTITY', 'peer presented no certificate');
  const id = spiffeIdOf(cert);
  if (!id) throw new MeshletError('MESHLET_ERR_PEER_IDENTITY', 'peer certificate has no single SPIFFE URI SAN');
  if (expected.spiffeId !== undefined) {
    if (id !== expected.spiffeId) throw new MeshletError('MESHLET_ERR_PEER_IDENTITY', `peer is ${id}, expected ${expected.spiffeId}`);
    return id;
  }
  let trustDomain: string;
  try {
    trustDomain = parseSpiffeId(id).trustDomain;
  } catch (err) {
    throw new MeshletError('MESHLET_ERR_PEER_IDENTITY', `peer SPIFFE ID is invalid: ${(err as Error).message}`);
  }
  if (trustDomain !== expected.trustDomain) {
    throw new MeshletError('MESHLET_ERR_PEER_IDENTITY', `peer is ${id}, outside trust domain ${expected.trustDomain}`);
  }
  return id;
}
