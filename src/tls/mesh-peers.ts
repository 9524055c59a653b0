import net from 'node:net';
import type { Config } from '../config/schema.ts';
import type { OrigDst } from '../net/addresses.ts';

/** What the outbound proxy expects of a meshed destination's identity. */
export interface MeshPeer {
  /** The exact SPIFFE ID the destination must present, when configured. */
  readonly spiffeId?: string;
  /** Otherwise any identity of this trust domain. */
  readonly trustDomain: string;
}

/**
 * Which destinations are meshed. The static implementation reads `mesh.peers`; discovery
 * from Kubernetes will be another implementation of the same interface.
 */
export interface PeerLookup {
  lookup(dst: OrigDst): MeshPeer | undefined;
}

interface Entry {
  readonly addresses: net.BlockList;
  readonly ports: ReadonlySet<number> | undefined;
  readonly peer: MeshPeer;
}

export class StaticPeers implements PeerLookup {
  readonly #entries: readonly Entry[];

  constructor(peers: Config['mesh']['peers'], ownTrustDomain: string) {
    this.#entries = peers.map((p) => {
      const addresses = new net.BlockList();
      for (const cidr of p.cidrs) {
        const [address = '', bits] = cidr.split('/');
        const type = net.isIPv6(address) ? 'ipv6' : 'ipv4';
        addresses.addSubnet(address, bits === undefined ? (type === 'ipv6' ? 128 : 32) : Number(bits), type);
      }
      const trustDomain = p.spiffeId ? new URL(p.spiffeId).host : (p.trustDomain ?? ownTrustDomain);
      return { addresses, ports: p.ports ? new Set(p.ports) : undefined, peer: { trustDomain, ...(p.spiffeId ? { spiffeId: p.spiffeId } : {}) } };
    });
  }

  /** The first entry matching the destination's address and port decides. */
  lookup(dst: OrigDst): MeshPeer | undefined {
    const type = dst.family === 6 ? 'ipv6' : 'ipv4';
    return this.#entries.find((e) => (!e.ports || e.ports.has(dst.port)) && e.addresses.check(dst.address, type))?.peer;
  }
}
