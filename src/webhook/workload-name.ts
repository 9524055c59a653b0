import { isObject, type Json } from '../inject/kube.ts';

// A pod's workload name, bounded (it becomes a metric label): a Deployment's pods are
// named after a ReplicaSet `<deployment>-<pod-template-hash>` and get a random suffix,
// so the pod's own name would be a new label value per pod. At admission the pod has
// only its owner reference and its labels to go by.

export function workloadName(metadata: Json): string | undefined {
  const labels = isObject(metadata.labels) ? metadata.labels : {};
  const owners = Array.isArray(metadata.ownerReferences) ? metadata.ownerReferences.filter(isObject) : [];
  const owner = owners.find((o) => o.controller === true) ?? owners[0];
  if (owner !== undefined && typeof owner.name === 'string') {
    const hash = labels['pod-template-hash'];
    if (owner.kind === 'ReplicaSet' && typeof hash === 'string' && owner.name.endsWith(`-${hash}`)) return owner.name.slice(0, -hash.length - 1);
    // A CronJob's Jobs are `<cronjob>-<scheduled minute>`.
    if (owner.kind === 'Job' && /-\d{8,}$/.test(owner.name)) return owner.name.replace(/-\d{8,}$/, '');
    return owner.name;
  }
  if (typeof metadata.name === 'string' && metadata.name !== '') return metadata.name;
  if (typeof metadata.generateName === 'string' && metadata.generateName !== '') return metadata.generateName.replace(/-$/, '');
  return undefined;
}
