// The meshed pairs' configuration, shared by the scenarios: identities made in the run
// with the real `meshlet ca`, and the MESHLET_* environment of mesh-wide strict mTLS.
import type { IdentityStore, IssuedIdentity } from '../../src/testbed/identities.ts';

export const TRUST_DOMAIN = 'cluster.local';

/** A pair's identities, from one root CA made with `meshlet ca` in the run (ECDSA P-256). */
export interface BenchIdentities {
  /** The CA's directory (ca.crt, ca.key; root-only), for anything else the run must sign. */
  caDir: string;
  client: IssuedIdentity;
  server: IssuedIdentity;
}

export async function issueIdentities(store: IdentityStore): Promise<BenchIdentities> {
  const caDir = await store.ca('ca', TRUST_DOMAIN);
  const issue = (sa: string) => store.issue(caDir, `spiffe://${TRUST_DOMAIN}/ns/bench/sa/${sa}`, { name: sa });
  return { caDir, client: await issue('client'), server: await issue('server') };
}

/**
 * Mesh-wide strict mTLS: each proxy has its pod's identity, carries traffic to the other
 * pod over mTLS expecting that pod's exact SPIFFE ID, and accepts only mTLS inbound.
 * Pods a and b of a testbed on `subnet` (10.<subnet>.0.2 and .3).
 */
export function mtlsEnv(ids: BenchIdentities, subnet: number): (pod: { name: string }) => NodeJS.ProcessEnv {
  const address = (index: number) => [`10.${subnet}.0.${index + 2}/32`, `fd00:${subnet.toString(16)}::${(index + 2).toString(16)}/128`];
  return (pod) => {
    const self = pod.name === 'a' ? ids.client : ids.server;
    const other = pod.name === 'a' ? ids.server : ids.client;
    return {
      MESHLET_IDENTITY_DIR: self.dir,
      // YAML (JSON is YAML): quoted, so IPv6 addresses need no care.
      MESHLET_MESH_PEERS: JSON.stringify([{ cidrs: address(pod.name === 'a' ? 1 : 0), spiffeId: other.spiffeId }]),
      MESHLET_INBOUND_MTLS: 'strict',
    };
  };
}
