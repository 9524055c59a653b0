import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Container, Json } from '../../src/inject/kube.ts';
import { REPO_ROOT } from '../../src/testbed/netns.ts';

// The images scripts/build-images.sh builds, run with podman the way a container runtime
// runs a pod's container: in the pod's network namespace, with the user, capabilities,
// root filesystem and mounts of the container's spec. Two things of this machine are
// worked around, neither of which a node has: cgroups are in hybrid mode (v1
// controllers and a v2 hierarchy with controllers), which crun refuses, so podman runs
// in a private mount namespace without the v2 mount and without cgroups of its own; and
// the process may not raise resource limits (no CAP_SYS_RESOURCE), which podman's
// defaults for root do, so the container gets this process's limits.
//
// The root filesystem is the image's own directory in the containers storage (`podman
// image mount`), read-only for a container with readOnlyRootFilesystem and otherwise
// under a throwaway overlay (`--rootfs DIR:O`), with the image's Env and WorkingDir
// passed on: with the vfs driver, `podman run IMAGE` copies the whole image for every
// container, about 10 s here, where this takes under 2.

const VERSION = (JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
export const IMAGES = { init: `localhost/meshlet-init:${VERSION}`, proxy: `localhost/meshlet-proxy:${VERSION}` } as const;
/** Where build-images.sh puts them; podman needs to be told (it remembers its first driver otherwise). */
const DRIVER = process.env.STORAGE_DRIVER ?? 'vfs';
const PODMAN = '/usr/bin/podman';

interface ImageRoot {
  readonly dir: string;
  readonly env: readonly string[];
  readonly workdir: string;
}

const roots = new Map<string, ImageRoot>();

/** The image's files (mounted once per process; vfs "mounts" are plain directories) and the config a runtime applies. */
function imageRoot(image: string): ImageRoot {
  let root = roots.get(image);
  if (root === undefined) {
    const run = (args: string[]) => execFileSync(podman(args)[0]!, podman(args).slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
    const config = JSON.parse(run(['image', 'inspect', '--format', '{{json .Config}}', image])) as { Env?: string[]; WorkingDir?: string };
    root = { dir: run(['image', 'mount', image]), env: config.Env ?? [], workdir: config.WorkingDir || '/' };
    roots.set(image, root);
  }
  return root;
}

/** Why the images cannot be run here, or undefined when they can: podman, and images built from this checkout's sources. */
export function podmanUnavailable(images: readonly string[]): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (podman with network namespaces)';
  if (!existsSync(PODMAN)) return 'needs podman (apt-get install podman)';
  const build = 'scripts/build-images.sh builds them; it needs buildah and debootstrap';
  const source = execFileSync('bash', [path.join(REPO_ROOT, 'scripts/build-images.sh'), '--source-hash'], { encoding: 'utf8' }).trim();
  for (const image of images) {
    let label: string;
    try {
      label = execFileSync(PODMAN, ['--storage-driver', DRIVER, 'image', 'inspect', '--format', '{{index .Labels "meshlet.source"}}', image], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {
      return `image ${image} is not built (${build})`;
    }
    if (label !== source) return `image ${image} was built from other sources (${label}, this checkout is ${source}): run scripts/build-images.sh again`;
  }
  try {
    const probe = podman(['run', '--rm', '--network', 'none', '--cgroups', 'disabled', ...ulimits(), '--rootfs', `${imageRoot(images[0]!).dir}:O`, '/usr/local/bin/node', '-e', '0']);
    execFileSync(probe[0]!, probe.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    return `podman cannot run a container here: ${String((err as { stderr?: unknown }).stderr ?? err).trim().split('\n').at(-1)}`;
  }
  return undefined;
}

/** argv for `podman <args>` on this machine (see above). */
export function podman(args: readonly string[]): string[] {
  const script = 'if mountpoint -q /sys/fs/cgroup/unified; then umount /sys/fs/cgroup/unified; fi; exec "$0" --storage-driver "$1" "${@:2}"';
  return ['unshare', '--mount', '--propagation', 'private', 'bash', '-c', script, PODMAN, DRIVER, ...args];
}

/** The soft limit this process has, which the container may have too. */
function limit(name: string): number {
  const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith(name));
  const soft = line?.slice(26).trim().split(/\s+/)[0];
  return soft === undefined || soft === 'unlimited' ? 1024 : Number(soft);
}

/** This process's limits (crun could set no more; its default process limit is above what it may set here). */
function ulimits(): string[] {
  const files = limit('Max open files');
  const processes = Math.min(limit('Max processes'), 32_768);
  return ['--ulimit', `nofile=${files}:${files}`, '--ulimit', `nproc=${processes}:${processes}`];
}

export interface ContainerRun {
  readonly name: string;
  readonly image: string;
  /** The pod: /run/netns/<netns>. */
  readonly netns: string;
  readonly container: Container;
  /** Environment, resolved (the downward API's values filled in). */
  readonly env: Readonly<Record<string, string>>;
  /** Volume mounts: mountPath → host directory. */
  readonly mounts: Readonly<Record<string, string>>;
  /** Arguments after the container's command. */
  readonly extraArgs?: readonly string[];
  /** Capabilities beyond the container's own (e.g. for `meshlet init --validate`). */
  readonly extraCapabilities?: readonly string[];
}

/** `podman run` for one container of a pod spec, in the foreground; its exit code is the container's. */
export function runArgs(run: ContainerRun): string[] {
  const c = run.container;
  const sc = (c.securityContext ?? {}) as Json;
  const caps = ((sc.capabilities as Json | undefined)?.add as string[] | undefined) ?? [];
  const root = imageRoot(run.image);
  const readOnly = sc.readOnlyRootFilesystem === true;
  const args = ['run', '--rm', '--name', run.name, '--network', `ns:/run/netns/${run.netns}`, '--cgroups', 'disabled', ...ulimits()];
  args.push('--rootfs', '--workdir', root.workdir);
  for (const variable of root.env) args.push('--env', variable);
  const drop = ((sc.capabilities as Json | undefined)?.drop as string[] | undefined) ?? [];
  if (drop.includes('ALL')) args.push('--cap-drop', 'all');
  for (const cap of [...caps, ...(run.extraCapabilities ?? [])]) args.push('--cap-add', cap);
  if (sc.runAsUser !== undefined) args.push('--user', `${String(sc.runAsUser)}:${String(sc.runAsGroup ?? sc.runAsUser)}`);
  if (readOnly) args.push('--read-only', '--read-only-tmpfs=false');
  if (sc.allowPrivilegeEscalation === false) args.push('--security-opt', 'no-new-privileges');
  for (const mount of (c.volumeMounts as Json[] | undefined) ?? []) {
    const host = run.mounts[mount.mountPath as string];
    if (host === undefined) throw new Error(`${c.name}: no host directory for ${String(mount.mountPath)}`);
    args.push('--volume', `${host}:${String(mount.mountPath)}:${mount.readOnly === true ? 'ro' : 'rw'}`);
  }
  for (const [name, value] of Object.entries(run.env)) args.push('--env', `${name}=${value}`);
  // Injected containers always have a command; with --rootfs there is no image entry point to fall back on.
  const command = (c.command as string[] | undefined) ?? [];
  if (command.length === 0) throw new Error(`${c.name}: no command`);
  // With --rootfs the first argument is the root filesystem instead of an image.
  args.push(readOnly ? root.dir : `${root.dir}:O`, ...command, ...((c.args as string[] | undefined) ?? []), ...(run.extraArgs ?? []));
  return args;
}
