import { MeshletError } from '../errors.ts';
import { IDENTITY_VOLUME, INIT_NAME, PROXY_NAME } from './containers.ts';
import { pointer, type Operation } from './json-patch.ts';
import { isObject, PROBE_KINDS, type PodTemplate, type Probe } from './kube.ts';
import type { InjectStatus, PodResult, Target } from './pod.ts';
import { STATUS_ANNOTATION } from './settings.ts';

// `meshlet uninject`: the inverse of injectPod, read from the status annotation that
// inject wrote. Containers and volumes are found by name, not by position, so a pod
// edited since (a container added, another image) still loses exactly meshlet's parts.

export function uninjectPod(template: PodTemplate, target: Target): PodResult {
  const annotations = template.metadata?.annotations ?? {};
  const text = annotations[STATUS_ANNOTATION];
  if (text === undefined) return { changed: false, reason: 'not injected' };
  const status = readStatus(text, target.where);
  const spec = template.spec;
  const ops: Operation[] = [];

  for (const list of ['containers', 'initContainers'] as const) {
    (spec[list] ?? []).forEach((container, index) => {
      for (const kind of PROBE_KINDS) {
        const original = status.probes[`${list}/${container.name}/${kind}`];
        if (original !== undefined) ops.push({ op: 'replace', path: pointer('/spec', list, index, kind), value: original });
      }
    });
  }
  ops.push(...removeNamed('/spec/initContainers', spec.initContainers, [INIT_NAME, PROXY_NAME], status.created.includes('initContainers')));
  ops.push(...removeNamed('/spec/containers', spec.containers, [PROXY_NAME], false));
  ops.push(...removeNamed('/spec/volumes', spec.volumes, [IDENTITY_VOLUME], status.created.includes('volumes')));

  const ours = [...status.annotations, STATUS_ANNOTATION];
  const othersLeft = Object.keys(annotations).some((k) => !ours.includes(k));
  const metadataOthers = Object.keys(template.metadata ?? {}).some((k) => k !== 'annotations');
  if (status.created.includes('metadata') && !othersLeft && !metadataOthers) ops.push({ op: 'remove', path: '/metadata' });
  else if (status.created.includes('annotations') && !othersLeft) ops.push({ op: 'remove', path: '/metadata/annotations' });
  else for (const key of ours) if (Object.hasOwn(annotations, key)) ops.push({ op: 'remove', path: pointer('/metadata/annotations', key) });
  return { changed: true, ops };
}

/** Removes the items called `names`, last first so indices stay right; the whole list when inject created it and nothing else is left. */
function removeNamed(path: string, items: ReadonlyArray<{ name: string }> | undefined, names: readonly string[], created: boolean): Operation[] {
  if (items === undefined) return [];
  const indices = items.flatMap((item, i) => (names.includes(item.name) ? [i] : []));
  if (created && indices.length === items.length) return [{ op: 'remove', path }];
  return indices.reverse().map((i) => ({ op: 'remove', path: pointer(path, i) }));
}

function readStatus(text: string, where: string): InjectStatus {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = undefined;
  }
  const ok =
    isObject(value) &&
    value.version === 1 &&
    Array.isArray(value.annotations) &&
    value.annotations.every((a) => typeof a === 'string') &&
    Array.isArray(value.created) &&
    value.created.every((c) => typeof c === 'string') &&
    isObject(value.probes) &&
    Object.values(value.probes).every(isObject);
  if (!ok) throw new MeshletError('MESHLET_ERR_INJECT', `${where}: annotation ${STATUS_ANNOTATION} is not what meshlet inject writes (version 1 JSON); cannot tell what to remove`);
  return value as unknown as InjectStatus & { probes: Record<string, Probe> };
}
