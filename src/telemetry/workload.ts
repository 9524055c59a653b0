import type { WorkloadMetadata } from '../pipeline/exchange.ts';
import { namespaceOf } from '../tls/spiffe.ts';

/** What this pod is, for its own side of the metric labels and for its peers. */
export interface LocalWorkload {
  /** Told to peer sidecars (meshlet-peer-metadata). */
  readonly metadata: WorkloadMetadata;
  /** This pod's SPIFFE ID when it has an identity; '' otherwise. */
  readonly principal: string;
}

export interface WorkloadSettings {
  readonly name: string;
  readonly namespace: string;
  readonly app: string;
  readonly version: string;
  readonly pod: string;
}

/**
 * The local workload, resolved once at start: the configured name, else the one the pod's
 * name implies; the configured namespace, else the one in the SPIFFE ID. A name equal to
 * the pod's is derived too: meshlet inject sets the name to metadata.name when the owner
 * is not known at admission, and a pod's name would make a new series per pod.
 */
export function localWorkload(settings: WorkloadSettings, spiffeId: string | undefined): LocalWorkload {
  const fromId = (spiffeId && namespaceOf(spiffeId)) || '';
  return {
    metadata: Object.freeze({
      name: !settings.name || settings.name === settings.pod ? workloadOfPod(settings.pod || settings.name) : settings.name,
      namespace: settings.namespace || fromId,
      app: settings.app,
      version: settings.version,
    }),
    principal: spiffeId ?? '',
  };
}

// Kubernetes names a controller's pods `<owner>-<suffix>` with suffixes drawn from an
// alphabet without vowels (so no word is ever spelt): a ReplicaSet (and so a Deployment's
// pods) `<deployment>-<pod-template-hash>-<5>`, a ReplicaSet, DaemonSet or Job
// `<owner>-<5>`, a StatefulSet `<owner>-<ordinal>`. Nothing else can be told from the name
// alone; the owner references would need the API server, which the sidecar does not call.
const SAFE = '[bcdfghjklmnpqrstvwxz2456789]';
const DEPLOYMENT = new RegExp(`^(.+)-${SAFE}{6,10}-${SAFE}{5}$`);
const GENERATED = new RegExp(`^(.+)-${SAFE}{5}$`);
const STATEFUL = /^(.+)-\d+$/;

/** The workload (Deployment, StatefulSet, DaemonSet, Job) that owns a pod of this name; the pod's name when none can be told. */
export function workloadOfPod(pod: string): string {
  const match = DEPLOYMENT.exec(pod) ?? GENERATED.exec(pod) ?? STATEFUL.exec(pod);
  return match ? match[1]! : pod;
}
