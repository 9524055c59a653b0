import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { run } from '../../src/testbed/exec.ts';
import { MESHLET_BIN, type Pod, type SpawnedProcess, type Testbed } from '../../src/testbed/netns.ts';
import type { Container, Json, PodTemplate, Probe } from '../../src/inject/kube.ts';
import { eventually } from '../e2e/l7-common.ts';
import { podman, runArgs } from './podman.ts';

// Runs an injected pod template in a network-namespace pod roughly the way kubelet
// does: init containers in order, each to completion, except restartable ones (native
// sidecars), which are started and must pass their startup probe before the next;
// then the containers; probes from another namespace (kubelet's vantage point, outside
// the pod). What it cannot do, and stands in for:
//   - images: `meshlet ...` runs this repository's bin/meshlet.js; an app image runs
//     what `apps` maps it to; unless the image is one of `containerImages`, built by
//     scripts/build-images.sh, which runs as a container (test/helpers/podman.ts) with
//     the spec's user, capabilities, read-only root and volume mounts;
//   - volumes: an env value equal to a volume's mountPath is replaced by the host
//     directory `mounts` gives for it (the identity Secret), which a container mounts;
//   - capabilities: processes run as the container's runAsUser/runAsGroup (root for
//     0), not with exactly its capability set (containers: with exactly it).

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
  /** Images run as containers with podman, and the testbed that tracks their processes. */
  readonly containerImages?: readonly string[];
  readonly testbed?: Testbed;
}

export interface RunningPod {
  readonly processes: ReadonlyMap<string, SpawnedProcess>;
  /** Names of the containers run with podman. */
  readonly containers: readonly string[];
  /** HTTP status of a probe from the node, or an error text. */
  probe(probe: Probe): Promise<number | string>;
  /** Removes the pod's podman containers (killing the podman client would leave them running). */
  close(): Promise<void>;
}

export async function runPod(options: KubeletOptions): Promise<RunningPod> {
  const { pod, template } = options;
  const processes = new Map<string, SpawnedProcess>();
  const containers: string[] = [];
  const running: RunningPod = {
    processes,
    containers,
    probe: (p) => probeFromNode(options, p),
    close: async () => {
      if (containers.length === 0) return;
      // --time 0: SIGKILL, no drain; the pod is going away.
      const removed = await run(podman(['rm', '--force', '--ignore', '--time', '0', ...containers.splice(0)]), { timeoutMs: 60_000 });
      if (removed.code !== 0) throw new Error(`podman rm: ${removed.stderr}`);
    },
  };
  try {
    for (const container of template.spec.initContainers ?? []) {
      if (container.restartPolicy === 'Always') {
        processes.set(container.name, start(options, container, containers));
        if (container.startupProbe) await passes(running, container, container.startupProbe);
        continue;
      }
      const result = inContainer(options, container)
        ? await run(podman(runArgs(containerRun(options, container, containers))), { timeoutMs: 120_000 })
        : await pod.run(argv(options, container), { ...user(container), env: env(options, container), timeoutMs: 60_000 });
      if (result.code !== 0) throw new Error(`init container ${container.name} exited ${result.code}: ${result.stderr}`);
    }
    for (const container of template.spec.containers) {
      processes.set(container.name, start(options, container, containers));
      if (container.startupProbe) await passes(running, container, container.startupProbe);
    }
  } catch (err) {
    await running.close();
    throw err;
  }
  return running;
}

function inContainer(options: KubeletOptions, container: Container): boolean {
  return options.containerImages?.includes(container.image ?? '') === true;
}

function start(options: KubeletOptions, container: Container, containers: string[]): SpawnedProcess {
  if (!inContainer(options, container)) return options.pod.spawn(argv(options, container), { ...user(container), env: env(options, container) });
  if (options.testbed === undefined) throw new Error('containerImages needs the testbed, which tracks the podman processes');
  const command = podman(runArgs(containerRun(options, container, containers)));
  return options.testbed.track(spawn(command[0]!, command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] }));
}

function containerRun(options: KubeletOptions, container: Container, containers: string[]) {
  const name = `${options.pod.netns}-${container.name}-${randomBytes(2).toString('hex')}`;
  containers.push(name);
  return { name, image: container.image!, netns: options.pod.netns, container, env: downwardEnv(options, container), mounts: options.mounts };
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

/** The container's env with the downward API's values filled in. */
function downwardEnv(options: KubeletOptions, container: Container): Record<string, string> {
  const out: Record<string, string> = {};
  for (const variable of (container.env as Json[] | undefined) ?? []) {
    const from = (variable.valueFrom as { fieldRef?: { fieldPath: string } } | undefined)?.fieldRef?.fieldPath;
    out[variable.name as string] = from !== undefined ? (options.downward[from] ?? '') : String(variable.value ?? '');
  }
  return out;
}

/** For a process on the host: mount paths replaced by the host directories. */
function env(options: KubeletOptions, container: Container): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { PATH: process.env.PATH };
  for (const [name, value] of Object.entries(downwardEnv(options, container))) out[name] = options.mounts[value] ?? value;
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
