import type { AcceptedConnection, Direction } from '../pipeline/connection.ts';
import type { WorkloadMetadata } from '../pipeline/exchange.ts';
import type { LocalWorkload } from './workload.ts';

// Istio's labels for the two workloads of a request or connection: this pod on one side
// (source outbound, destination inbound), the peer on the other.

export const UNKNOWN = 'unknown';

export const WORKLOAD_LABELS = [
  'source_workload',
  'source_workload_namespace',
  'source_principal',
  'source_app',
  'source_version',
  'source_canonical_service',
  'source_canonical_revision',
  'destination_workload',
  'destination_workload_namespace',
  'destination_principal',
  'destination_app',
  'destination_version',
  'destination_canonical_service',
  'destination_canonical_revision',
] as const;

export type WorkloadLabels = Record<(typeof WORKLOAD_LABELS)[number], string>;

/** Both sides' labels; `unknown` for what is not known, as Istio writes it. */
export function workloadLabels(direction: Direction, local: LocalWorkload, peer: WorkloadMetadata | undefined, peerPrincipal: string): WorkloadLabels {
  const self = side(local.metadata, local.principal);
  const other = side(peer, peerPrincipal);
  const [source, destination] = direction === 'outbound' ? [self, other] : [other, self];
  return {
    source_workload: source.workload,
    source_workload_namespace: source.namespace,
    source_principal: source.principal,
    source_app: source.app,
    source_version: source.version,
    source_canonical_service: source.canonicalService,
    source_canonical_revision: source.canonicalRevision,
    destination_workload: destination.workload,
    destination_workload_namespace: destination.namespace,
    destination_principal: destination.principal,
    destination_app: destination.app,
    destination_version: destination.version,
    destination_canonical_service: destination.canonicalService,
    destination_canonical_revision: destination.canonicalRevision,
  };
}

function side(meta: WorkloadMetadata | undefined, principal: string) {
  const known = (v: string | undefined) => v || UNKNOWN;
  return {
    workload: known(meta?.name),
    namespace: known(meta?.namespace),
    principal: known(principal),
    app: known(meta?.app),
    version: known(meta?.version),
    // Istio's canonical service and revision: the app label, else the workload; the version, else `latest`.
    canonicalService: known(meta?.app || meta?.name),
    canonicalRevision: meta?.version || 'latest',
  };
}

/** The other side's SPIFFE ID: verified by the inbound mTLS layer; outbound, the one the destination was required to present. */
export function peerPrincipalOf(conn: AcceptedConnection): string | undefined {
  return conn.direction === 'inbound' ? conn.peerPrincipal : conn.upstreamPeer?.spiffeId;
}
