import { MeshletError } from '../errors.ts';
import { identityVolume, IDENTITY_VOLUME, initContainer, INIT_NAME, proxyContainer, PROXY_NAME, PROXY_UID } from './containers.ts';
import { pointer, type Operation } from './json-patch.ts';
import type { Container, PodTemplate, Probe } from './kube.ts';
import { rewriteProbes } from './probes.ts';
import { podSettings, STATUS_ANNOTATION, type InjectSettings } from './settings.ts';

// Injection into one pod template, as a JSON patch relative to the template (`/spec`,
// `/metadata`): the same patch the webhook returns for a Pod, and the one `meshlet
// inject` applies under a Deployment's /spec/template. Everything inject adds is
// recorded in the meshlet.io/status annotation, which makes injecting again a no-op
// and lets uninject remove exactly that.

export interface Target {
  /** For messages: `Deployment shop/cart`, `List item 2: Pod web`. */
  readonly where: string;
  /** The workload's name when the manifest says it (a Deployment's); else the pod's own at run time. */
  readonly workloadName?: string | undefined;
}

/** What the status annotation records. */
export interface InjectStatus {
  readonly version: 1;
  readonly mode: InjectSettings['sidecarMode'];
  /** Annotation keys inject added (besides this one). */
  readonly annotations: readonly string[];
  /** Fields that did not exist before and were created whole: `metadata`, `annotations`, `initContainers`, `volumes`. */
  readonly created: readonly string[];
  /** `<list>/<container>/<kind>` → the app's probe as it was. */
  readonly probes: Readonly<Record<string, Probe>>;
}

export type PodResult =
  | { readonly changed: false; readonly reason: string }
  | { readonly changed: true; readonly ops: Operation[]; readonly warnings?: readonly string[] };

/**
 * Said whenever probes are rewritten: kubectl then shows probes the user did not write,
 * and the app's liveness now also depends on the sidecar answering on 15020.
 */
export const APP_PROBES_WARNING =
  "the app's probes now go to the sidecar's /app-health/... on 15020, which runs them against the app over localhost (docs/kubernetes.md, \"Probes under strict mTLS\"); annotate meshlet.io/rewrite-app-probes: \"false\" to keep them as they were";

const PROMETHEUS = { 'prometheus.io/scrape': 'true', 'prometheus.io/port': '15020', 'prometheus.io/path': '/stats/prometheus' };

export function injectPod(template: PodTemplate, target: Target, base: InjectSettings): PodResult {
  const annotations = template.metadata?.annotations ?? {};
  if (Object.hasOwn(annotations, STATUS_ANNOTATION)) return { changed: false, reason: 'already injected' };
  const decision = podSettings(base, annotations);
  if (!decision.inject) return { changed: false, reason: decision.reason };
  const { settings } = decision;
  const spec = template.spec;
  refuse(template, target.where);

  const ops: Operation[] = [];
  const created: string[] = [];
  const probes: Record<string, Probe> = {};
  let appProbes: Record<string, unknown> | undefined;
  // Probes first, while the containers are at their original indices.
  if (settings.rewriteAppProbes ?? settings.mtls === 'strict') {
    for (const list of ['containers', 'initContainers'] as const) {
      (spec[list] ?? []).forEach((container, index) => {
        for (const r of rewriteProbes(container, target.where)) {
          ops.push({ op: 'replace', path: pointer('/spec', list, index, r.kind), value: r.rewritten });
          probes[`${list}/${container.name}/${r.kind}`] = r.original;
          appProbes = { ...appProbes, [r.path]: r.check };
        }
      });
    }
  }

  const init = initContainer(settings);
  const proxy = proxyContainer({ settings, workloadName: target.workloadName, appProbes });
  if (settings.sidecarMode === 'native') {
    // The proxy before the app's own init containers, so they are meshed too.
    if (spec.initContainers === undefined) {
      ops.push({ op: 'add', path: '/spec/initContainers', value: [init, proxy] });
      created.push('initContainers');
    } else {
      ops.push({ op: 'add', path: '/spec/initContainers/0', value: init }, { op: 'add', path: '/spec/initContainers/1', value: proxy });
    }
  } else {
    // Classic: no proxy runs during init, so interception starts after the app's own
    // init containers, which keep the network as it was.
    if (spec.initContainers === undefined) {
      ops.push({ op: 'add', path: '/spec/initContainers', value: [init] });
      created.push('initContainers');
    } else {
      ops.push({ op: 'add', path: '/spec/initContainers/-', value: init });
    }
    ops.push({ op: 'add', path: '/spec/containers/0', value: proxy });
  }
  const volume = identityVolume(settings, spec);
  if (spec.volumes === undefined) {
    ops.push({ op: 'add', path: '/spec/volumes', value: [volume] });
    created.push('volumes');
  } else {
    ops.push({ op: 'add', path: '/spec/volumes/-', value: volume });
  }

  const added: Record<string, string> = {};
  if (settings.prometheus && !Object.hasOwn(annotations, 'prometheus.io/scrape')) Object.assign(added, PROMETHEUS);
  const metadata = template.metadata;
  if (metadata === undefined) created.push('metadata', 'annotations');
  else if (metadata.annotations === undefined) created.push('annotations');
  const status: InjectStatus = { version: 1, mode: settings.sidecarMode, annotations: Object.keys(added), created, probes };
  added[STATUS_ANNOTATION] = JSON.stringify(status);
  if (metadata === undefined) ops.push({ op: 'add', path: '/metadata', value: { annotations: added } });
  else if (metadata.annotations === undefined) ops.push({ op: 'add', path: '/metadata/annotations', value: added });
  else for (const [key, value] of Object.entries(added)) ops.push({ op: 'add', path: pointer('/metadata/annotations', key), value });
  return { changed: true, ops, ...(appProbes !== undefined ? { warnings: [APP_PROBES_WARNING] } : {}) };
}

/** Pods meshlet must not touch, with the object and container named. */
function refuse(template: PodTemplate, where: string): void {
  const spec = template.spec;
  if (spec.hostNetwork === true) {
    throw new MeshletError('MESHLET_ERR_INJECT', `${where}: uses hostNetwork: true; its traffic is the node's, which meshlet must not intercept (annotate it ${'meshlet.io/inject: "false"'})`);
  }
  const all: Array<[string, Container]> = [...(spec.initContainers ?? []).map((c) => ['init container', c] as [string, Container]), ...spec.containers.map((c) => ['container', c] as [string, Container])];
  for (const [what, c] of all) {
    if (c.name === INIT_NAME || c.name === PROXY_NAME) {
      throw new MeshletError('MESHLET_ERR_INJECT', `${where}: already has ${what === 'container' ? 'a container' : 'an init container'} named ${c.name}, the name of meshlet's own; rename it`);
    }
    const uid = c.securityContext?.runAsUser ?? spec.securityContext?.runAsUser;
    const gid = (c.securityContext?.runAsGroup ?? spec.securityContext?.runAsGroup) as number | undefined;
    if (uid === PROXY_UID || gid === PROXY_UID) {
      const field = uid === PROXY_UID ? 'UID' : 'GID';
      throw new MeshletError('MESHLET_ERR_INJECT', `${where}: ${what} ${c.name} runs as ${field} ${PROXY_UID}, the proxy's: its traffic would bypass the proxy; run it as another ${field}`);
    }
  }
  if ((spec.volumes ?? []).some((v) => v.name === IDENTITY_VOLUME)) {
    throw new MeshletError('MESHLET_ERR_INJECT', `${where}: already has a volume named ${IDENTITY_VOLUME}, the name of meshlet's own; rename it`);
  }
}
