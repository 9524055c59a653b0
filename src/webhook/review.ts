import { isMeshletError } from '../errors.ts';
import { isObject, type Json, type PodTemplate } from '../inject/kube.ts';
import { injectPod } from '../inject/pod.ts';
import type { InjectSettings } from '../inject/settings.ts';
import { workloadName } from './workload-name.ts';

// One AdmissionReview (admission.k8s.io/v1) in, its answer out: the injection as a
// JSON patch for a Pod being created, or "allowed, unchanged" for anything else. No
// I/O here, so the whole decision is testable without a server.

export const API_VERSION = 'admission.k8s.io/v1';

/** Namespaces never injected, whatever their labels say: the control plane, and meshlet's own (a broken webhook must not block its own repair). */
export interface Scope {
  readonly ownNamespace: string;
}

const NEVER = ['kube-system', 'kube-public', 'kube-node-lease'];

/** The pod label that opts a pod out (or, outside labelled namespaces, in: see deploy/webhook.yaml). */
export const INJECT_LABEL = 'meshlet.io/inject';

export interface AdmissionAnswer {
  /** HTTP status: 200 for any review answered (even denied), 400 for a body that is not one. */
  readonly status: number;
  readonly body: Json;
  /** For the log line. */
  readonly outcome: string;
}

export function answerReview(body: unknown, settings: InjectSettings, scope: Scope): AdmissionAnswer {
  if (!isObject(body) || body.apiVersion !== API_VERSION || body.kind !== 'AdmissionReview' || !isObject(body.request)) {
    return { status: 400, body: { error: `expected an AdmissionReview of ${API_VERSION} with a request` }, outcome: 'bad request' };
  }
  const request = body.request;
  const uid = request.uid;
  if (typeof uid !== 'string' || uid === '') return { status: 400, body: { error: 'request.uid is missing' }, outcome: 'bad request' };
  const respond = (response: Json, outcome: string): AdmissionAnswer => ({
    status: 200,
    body: { apiVersion: API_VERSION, kind: 'AdmissionReview', response: { uid, ...response } },
    outcome,
  });
  const allow = (why: string, warning?: string) => respond({ allowed: true, ...(warning ? { warnings: [warning] } : {}) }, `unchanged: ${why}`);

  const kind = isObject(request.kind) ? request.kind : {};
  if (kind.kind !== 'Pod' || (kind.group ?? '') !== '' || request.operation !== 'CREATE' || (request.subResource ?? '') !== '') {
    return allow('not the creation of a Pod');
  }
  const namespace = typeof request.namespace === 'string' ? request.namespace : '';
  if (NEVER.includes(namespace) || namespace === scope.ownNamespace) return allow(`namespace ${namespace} is never injected`);
  const pod = request.object;
  if (!isObject(pod) || !isObject(pod.spec) || !Array.isArray(pod.spec.containers)) {
    return { status: 400, body: { error: 'request.object is not a Pod with spec.containers' }, outcome: 'bad request' };
  }
  const metadata = isObject(pod.metadata) ? pod.metadata : {};
  const labels = isObject(metadata.labels) ? metadata.labels : {};
  const name = typeof metadata.name === 'string' && metadata.name !== '' ? metadata.name : `${String(metadata.generateName ?? '')}*`;
  const where = `Pod ${namespace}/${name}`;
  if (labels[INJECT_LABEL] === 'false') return allow(`label ${INJECT_LABEL}=false`);
  // Istio does the same: a host-network pod's traffic is the node's; it runs unmeshed.
  if (pod.spec.hostNetwork === true) return allow('hostNetwork', `meshlet: ${where} uses hostNetwork: true and was not injected`);
  try {
    const result = injectPod(pod as PodTemplate, { where, workloadName: workloadName(metadata) }, settings);
    if (!result.changed) return allow(result.reason);
    const patch = Buffer.from(JSON.stringify(result.ops)).toString('base64');
    const warnings = (result.warnings ?? []).map((w) => `meshlet: ${where}: ${w}`);
    return respond({ allowed: true, patchType: 'JSONPatch', patch, ...(warnings.length > 0 ? { warnings } : {}) }, 'injected');
  } catch (err) {
    // A pod meshlet refuses (UID 1337, a name clash, a bad annotation) is denied with
    // the reason, which the ReplicaSet's events and `kubectl apply` show, rather than run
    // unmeshed in a namespace that asked for the mesh.
    if (!isMeshletError(err)) throw err;
    return respond({ allowed: false, status: { code: 400, reason: 'BadRequest', message: `meshlet: ${err.message}` } }, `denied: ${err.message}`);
  }
}
