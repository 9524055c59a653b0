import { MeshletError } from '../errors.ts';
import { pointer, rebase, type Operation } from './json-patch.ts';
import { isObject, type Json, type PodTemplate } from './kube.ts';
import { injectPod, type PodResult, type Target } from './pod.ts';
import type { InjectSettings } from './settings.ts';
import { uninjectPod } from './uninject.ts';

// Where the pod template lives in each kind that has one, and List objects, whose
// items are objects in their own right. Every other kind is left alone.

export const TEMPLATE_PATHS: Readonly<Record<string, readonly string[]>> = {
  Pod: [],
  Deployment: ['spec', 'template'],
  StatefulSet: ['spec', 'template'],
  DaemonSet: ['spec', 'template'],
  ReplicaSet: ['spec', 'template'],
  Job: ['spec', 'template'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template'],
};

export const WORKLOAD_KINDS: readonly string[] = Object.keys(TEMPLATE_PATHS);

/** What happened to one pod template, for the command's summary on stderr. */
export interface Outcome {
  readonly where: string;
  readonly changed: boolean;
  readonly reason?: string;
  readonly warnings?: readonly string[];
}

export type PodEdit = (template: PodTemplate, target: Target) => PodResult;

export const injectEdit = (settings: InjectSettings): PodEdit => (template, target) => injectPod(template, target, settings);
export const uninjectEdit: PodEdit = uninjectPod;

/** The patch for one object (and, for a List, each item), with an outcome per pod template. */
export function editObject(object: Json, where: string, edit: PodEdit, outcomes: Outcome[], base = ''): Operation[] {
  const kind = typeof object.kind === 'string' ? object.kind : undefined;
  if (kind !== undefined && kind.endsWith('List') && Array.isArray(object.items)) {
    return object.items.flatMap((item, i) => (isObject(item) ? editObject(item, `${where}, item ${i}`, edit, outcomes, pointer(base, 'items', i)) : []));
  }
  if (kind === undefined || !Object.hasOwn(TEMPLATE_PATHS, kind)) return [];
  const path = TEMPLATE_PATHS[kind]!;
  const metadata = isObject(object.metadata) ? object.metadata : {};
  const name = typeof metadata.name === 'string' ? metadata.name : undefined;
  const namespace = typeof metadata.namespace === 'string' ? `${metadata.namespace}/` : '';
  const label = `${where}: ${kind} ${namespace}${name ?? '(no name)'}`;
  let template: unknown = object;
  for (const key of path) template = isObject(template) ? template[key] : undefined;
  if (!isObject(template) || !isObject(template.spec) || !Array.isArray(template.spec.containers)) {
    throw new MeshletError('MESHLET_ERR_MANIFEST', `${label}: no pod spec with containers at ${['', ...path, 'spec', 'containers'].join('.').slice(1) || 'spec.containers'}`);
  }
  const result = edit(template as PodTemplate, { where: label, workloadName: name });
  outcomes.push(result.changed ? { where: label, changed: true, ...(result.warnings ? { warnings: result.warnings } : {}) } : { where: label, changed: false, reason: result.reason });
  return result.changed ? rebase(pointer(base, ...path), result.ops) : [];
}
