import { MESHLET_BIN, type Pod, type SpawnedProcess } from '../../src/testbed/netns.ts';
import type { Container, Json, PodTemplate, Probe } from '../../src/inject/kube.ts';
import { eventually } from '../e2e/l7-common.ts';

// Runs an injected pod template in a network-namespace pod roughly the way kubelet
// does: init containers in order, each to completion, except restartable ones (native
// sidecars), which are started and must pass their startup probe before the next;
// then the containers; probes from another namespace (kubelet's vantage point, outside
// the pod). What it cannot do, and stands in for:
//   - images: `meshlet ...` runs this repository's bin/meshlet.js; an app image runs
//     what `apps` maps it to;
//   - volumes: an env value equal to a volume's mountPath is replaced by the host
//     directory `mounts` gives for it (the identity Secret);
//   - capabilities: processes run as the container's runAsUser/runAsGroup (root for
//     0), not with exactly its capability set.

export interface KubeletOptions {
  readonly pod: Pod;
  /** Where kubelet's probes come from: another namespace on the same segment. */
  readonly node: Pod;
  readonly template: PodTemplate;
  /** Values of the downward API's fieldRefs: metadata.name, metadata.namespace, ... */
  readonly downward: Readonly<Record<string, string>>;
  /** mountPath → host directory. */
  readonly mounts: Readonly<Record<string, string>>;
  /** image → argv (the app's command). */
  readonly apps: Readonly<Record<string, string[]>>;
}

export interface RunningPod {
  readonly processes: ReadonlyMap<string, SpawnedProcess>;
  /** HTTP status of a probe from the node, or an error text. */
  probe(probe: Probe): Promise<number | string>;
}

export async function runPod(options: KubeletOptions): Promise<RunningPod> {
  const { pod, template } = options;
  const processes = new Map<string, SpawnedProcess>();
  const running: RunningPod = { processes, probe: (p) => probeFromNode(options, p) };
  for (const container of template.spec.initContainers ?? []) {
    if (container.restartPolicy === 'Always') {
      processes.set(container.name, start(options, container));
      if (container.startupProbe) await passes(running, container, container.startupProbe);
      continue;
    }
    const result = await pod.run(argv(options, container), { ...user(container), env: env(options, container), timeoutMs: 60_000 });
    if (result.code !== 0) throw new Error(`init container ${container.name} exited ${result.code}: ${result.stderr}`);
  }
  for (const container of template.spec.containers) {
    processes.set(container.name, start(options, container));
    if (container.startupProbe) await passes(running, container, container.startupProbe);
  }
  return running;
}

function start(options: KubeletOptions, container: Container): SpawnedProcess {
  return options.pod.spawn(argv(options, container), { ...user(container), env: env(options, container) });
}

async function passes(pod: RunningPod, container: Container, probe: Probe): Promise<void> {
  let last: number | string = '';
  const ok = await eventually(async () => (last = await pod.probe(probe)) === 200, `${container.name} startup`, 20_000);
  if (!ok) throw new Error(`${container.name}: startup probe never passed (last: ${last})`);
}

function argv(options: KubeletOptions, container: Container): string[] {
  const command = (container.command as string[] | undefined) ?? [];
  if (command[0] === 'meshlet') return [process.execPath, MESHLET_BIN, ...command.slice(1)];
  const app = options.apps[container.image ?? ''];
  if (!app) throw new Error(`no stand-in for image ${container.image}`);
  return app;
}

function user(container: Container): { uid?: number; gid?: number } {
  const sc = container.securityContext ?? {};
  const uid = sc.runAsUser;
  if (uid === undefined || uid === 0) return {};
  return { uid, gid: (sc.runAsGroup as number | undefined) ?? uid };
}

function env(options: KubeletOptions, container: Container): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { PATH: process.env.PATH };
  for (const variable of (container.env as Json[] | undefined) ?? []) {
    const name = variable.name as string;
    const from = (variable.valueFrom as { fieldRef?: { fieldPath: string } } | undefined)?.fieldRef?.fieldPath;
    const value = from !== undefined ? (options.downward[from] ?? '') : String(variable.value ?? '');
    out[name] = options.mounts[value] ?? value;
  }
  return out;
}

async function probeFromNode(options: KubeletOptions, probe: Probe): Promise<number | string> {
  const { pod, node } = options;
  if (probe.httpGet) {
    const port = probe.httpGet.port;
    const url = `http://${pod.ipv4}:${port}${probe.httpGet.path ?? '/'}`;
    const r = await node.run(['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '2', url]);
    return r.code === 0 ? Number(r.stdout) : `curl exit ${r.code}`;
  }
  if (probe.tcpSocket) {
    const r = await node.run(['bash', '-c', `exec 3<>/dev/tcp/${pod.ipv4}/${probe.tcpSocket.port}`]);
    return r.code === 0 ? 200 : `connect failed: ${r.stderr.trim()}`;
  }
  return 'unsupported probe';
}
