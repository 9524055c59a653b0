import { MutatingWebhookConfiguration } from 'kubernetes-models/admissionregistration.k8s.io/v1';
import { DaemonSet, Deployment, ReplicaSet, StatefulSet } from 'kubernetes-models/apps/v1';
import { CronJob, Job } from 'kubernetes-models/batch/v1';
import { ConfigMap, Namespace, Pod, Secret, Service, ServiceAccount } from 'kubernetes-models/v1';

// Kubernetes objects checked against the API's OpenAPI schema, with kubernetes-models'
// generated validators: types, required fields, enums and formats, which is what an API
// server's schema check rejects. What it does not catch: unknown fields (the schema
// allows them; only a server with fieldValidation=Strict refuses them) and the API
// server's own validation rules (names, port ranges, a sidecar's restartPolicy only on
// init containers).

interface Validatable {
  validate(): void;
}
type ModelClass = new (data: never) => Validatable;

const MODELS: Readonly<Record<string, ModelClass>> = {
  'v1/Pod': Pod,
  'v1/Service': Service,
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/Namespace': Namespace,
  'v1/ServiceAccount': ServiceAccount,
  'apps/v1/Deployment': Deployment,
  'apps/v1/StatefulSet': StatefulSet,
  'apps/v1/DaemonSet': DaemonSet,
  'apps/v1/ReplicaSet': ReplicaSet,
  'batch/v1/Job': Job,
  'batch/v1/CronJob': CronJob,
  'admissionregistration.k8s.io/v1/MutatingWebhookConfiguration': MutatingWebhookConfiguration,
};

/** Custom resources, whose schemas kubernetes-models does not have (they come with their CRDs). */
export const NO_SCHEMA: readonly string[] = ['cert-manager.io/v1/Certificate', 'cert-manager.io/v1/Issuer', 'cert-manager.io/v1/ClusterIssuer'];

type Obj = Record<string, unknown>;

export function typeOf(object: Obj): string {
  return `${String(object.apiVersion)}/${String(object.kind)}`;
}

/**
 * Throws, naming the object and the schema errors, unless `object` (a List: each item)
 * is valid; returns the types it checked. A type that is neither in MODELS nor in
 * NO_SCHEMA is an error too, so a new kind in a fixture cannot go unchecked silently.
 */
export function validateObject(object: Obj, where = ''): string[] {
  const type = typeOf(object);
  const name = `${where}${type} ${String((object.metadata as Obj | undefined)?.name ?? '(no name)')}`;
  if (type === 'v1/List') {
    if (!Array.isArray(object.items)) throw new Error(`${name}: items is not an array`);
    return object.items.flatMap((item, i) => validateObject(item as Obj, `${name}, item ${i}: `));
  }
  if (NO_SCHEMA.includes(type)) return [];
  const Model = MODELS[type];
  if (Model === undefined) throw new Error(`${name}: no schema for ${type} here (add its model to test/helpers/kube-schema.ts)`);
  try {
    new Model(structuredClone(object) as never).validate();
  } catch (err) {
    throw new Error(`${name}: ${(err as Error).message}`);
  }
  return [type];
}
