import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { run, runOk, type RunResult } from './exec.ts';

// Pods built from network namespaces, for the end-to-end tests, the demo and the
// benchmarks. Each pod has an eth0 veth plugged into a bridge that lives in its own
// namespace; addresses exist only inside these namespaces and there is no default
// route, so nothing a test sends can leave the machine.

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const MESHLET_BIN = path.join(REPO_ROOT, 'bin/meshlet.js');
/** The compiled build (`npm run dist`), what a sidecar image runs; the benchmarks measure it. */
export const MESHLET_DIST_BIN = path.join(REPO_ROOT, 'dist/cli.js');
export const PROXY_UID = 1337;
export const APP_UID = 1000;

export interface RunAs {
  uid?: number;
  gid?: number;
}

export interface SpawnedProcess {
  child: ChildProcess;
  /** Resolves with everything the process wrote to stdout once a line matches. */
  waitForLine(match: RegExp, timeoutMs?: number): Promise<string>;
  output(): { stdout: string; stderr: string };
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** Why pods cannot be built here, or undefined when they can. */
export function testbedUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces and iptables)';
  for (const tool of ['/usr/sbin/ip', '/usr/sbin/iptables', '/usr/bin/setpriv']) {
    if (!existsSync(tool)) return `needs ${path.basename(tool)} (apt-get install iproute2 iptables util-linux)`;
  }
  return undefined;
}

/**
 * The environment for processes in a pod: the caller's, less NODE_OPTIONS, through which
 * a test runner injects its own hooks (they can't write their files as another user).
 * tap adds it back to whatever it spawns, so argv() also unsets it inside the pod.
 */
function podEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const { NODE_OPTIONS: _, ...rest } = env;
  return rest;
}

/** How a pod's proxy is run when not plainly (a profiler's benchmark). */
export interface ProxyUnder {
  prefix?: string[];
  nodeArgs?: string[];
  readyTimeoutMs?: number;
}

/** The command line that runs `script` with `args` on this Node, as `under` says. */
export function nodeCommandUnder(under: ProxyUnder, script: string, args: string[]): string[] {
  return [...(under.prefix ?? []), process.execPath, ...(under.nodeArgs ?? []), script, ...args];
}

export class Pod {
  readonly name: string;
  readonly netns: string;
  readonly ipv4: string;
  readonly ipv6: string;
  readonly #testbed: Testbed;

  constructor(testbed: Testbed, name: string, netns: string, index: number, subnet: number) {
    this.#testbed = testbed;
    this.name = name;
    this.netns = netns;
    this.ipv4 = `10.${subnet}.0.${index + 2}`;
    this.ipv6 = `fd00:${subnet.toString(16)}::${(index + 2).toString(16)}`;
  }

  /** argv prefixed so it runs inside this pod, as the given user (root when none). */
  argv(command: string[], as: RunAs = {}): string[] {
    const prefix = ['ip', 'netns', 'exec', this.netns, 'env', '-u', 'NODE_OPTIONS'];
    if (as.uid === undefined) return [...prefix, ...command];
    const gid = as.gid ?? as.uid;
    return [...prefix, 'setpriv', `--reuid=${as.uid}`, `--regid=${gid}`, '--clear-groups', '--', ...command];
  }

  run(command: string[], options: RunAs & { input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
    return run(this.argv(command, options), { input: options.input, timeoutMs: options.timeoutMs ?? 60_000, env: podEnv(options.env) });
  }

  runOk(command: string[], options: RunAs & { input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
    return runOk(this.argv(command, options), { input: options.input, timeoutMs: options.timeoutMs ?? 60_000, env: podEnv(options.env) });
  }

  /** A node process (the pinned runtime) inside this pod. */
  node(args: string[], options: RunAs & { env?: NodeJS.ProcessEnv } = {}): SpawnedProcess {
    return this.spawn([process.execPath, ...args], options);
  }

  spawn(command: string[], options: RunAs & { env?: NodeJS.ProcessEnv } = {}): SpawnedProcess {
    const argv = this.argv(command, options);
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: podEnv(options.env) });
    return this.#testbed.track(child);
  }

  /** `meshlet init` in this pod, as root, the way the init container runs it. */
  init(args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
    return this.run([process.execPath, MESHLET_BIN, 'init', ...args], { env: { ...process.env, ...env } });
  }

  /**
   * `meshlet proxy` (from `bin`) in this pod as the proxy UID; resolves once it reports ready.
   * `prefix` runs it under another program (a profiler), which may need longer to be ready;
   * `nodeArgs` are node's own flags (NODE_OPTIONS does not reach a pod).
   */
  async startProxy(env: NodeJS.ProcessEnv = {}, args: string[] = [], bin = MESHLET_BIN, under: ProxyUnder = {}): Promise<SpawnedProcess> {
    const proxy = this.spawn(nodeCommandUnder(under, bin, ['proxy', ...args]), { uid: PROXY_UID, env: { ...process.env, ...env } });
    await proxy.waitForLine(/"msg":"ready"/, under.readyTimeoutMs ?? 20_000);
    return proxy;
  }

  iptablesSave(family: 4 | 6 = 4): Promise<string> {
    return this.runOk([family === 4 ? 'iptables-save' : 'ip6tables-save']).then((r) => r.stdout);
  }
}

export class Testbed {
  readonly id: string;
  readonly pods: Pod[] = [];
  readonly #switchNs: string;
  readonly #children = new Set<ChildProcess>();
  #exitHook = () => this.#destroySync();

  private constructor(id: string) {
    this.id = id;
    this.#switchNs = `ml${id}-net`;
  }

  /** Pods named by `names`, on one L2 segment, each with an IPv4 and an IPv6 address. */
  static async create(names: string[], options: { subnet?: number } = {}): Promise<Testbed> {
    const tb = new Testbed(randomBytes(3).toString('hex'));
    process.once('exit', tb.#exitHook);
    const subnet = options.subnet ?? 44;
    try {
      await runOk(['ip', 'netns', 'add', tb.#switchNs]);
      await runOk(['ip', '-n', tb.#switchNs, 'link', 'add', 'br0', 'type', 'bridge']);
      await runOk(['ip', '-n', tb.#switchNs, 'link', 'set', 'br0', 'up']);
      for (const [index, name] of names.entries()) {
        const netns = `ml${tb.id}-${name}`;
        const pod = new Pod(tb, name, netns, index, subnet);
        await runOk(['ip', 'netns', 'add', netns]);
        tb.pods.push(pod);
        const hostSide = `v${index}`;
        await runOk(['ip', '-n', netns, 'link', 'set', 'lo', 'up']);
        await runOk(['ip', '-n', netns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', hostSide, 'netns', tb.#switchNs]);
        await runOk(['ip', '-n', tb.#switchNs, 'link', 'set', hostSide, 'master', 'br0', 'up']);
        await runOk(['ip', '-n', netns, 'addr', 'add', `${pod.ipv4}/24`, 'dev', 'eth0']);
        await runOk(['ip', '-n', netns, 'addr', 'add', `${pod.ipv6}/64`, 'dev', 'eth0', 'nodad']);
        await runOk(['ip', '-n', netns, 'link', 'set', 'eth0', 'up']);
      }
    } catch (err) {
      await tb.destroy();
      throw err;
    }
    return tb;
  }

  pod(name: string): Pod {
    const pod = this.pods.find((p) => p.name === name);
    if (!pod) throw new Error(`no pod ${name} in testbed ${this.id}`);
    return pod;
  }

  track(child: ChildProcess): SpawnedProcess {
    this.#children.add(child);
    let stdout = '';
    let stderr = '';
    const waiters: Array<() => void> = [];
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      for (const w of waiters.splice(0)) w();
    });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exited = new Promise<void>((resolve) => child.once('close', () => {
      this.#children.delete(child);
      for (const w of waiters.splice(0)) w();
      resolve();
    }));
    return {
      child,
      output: () => ({ stdout, stderr }),
      waitForLine: (match, timeoutMs = 10_000) =>
        new Promise((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`timed out waiting for ${match}; stdout: ${stdout.slice(-2000)} stderr: ${stderr.slice(-2000)}`)), timeoutMs);
          const check = () => {
            const line = stdout.split('\n').find((l) => match.test(l));
            if (line !== undefined) {
              clearTimeout(timer);
              resolve(line);
            } else if (child.exitCode !== null || child.signalCode !== null) {
              clearTimeout(timer);
              reject(new Error(`process exited (${child.exitCode ?? child.signalCode}) before ${match}; stderr: ${stderr.slice(-2000)} stdout: ${stdout.slice(-2000)}`));
            } else {
              waiters.push(check);
            }
          };
          check();
        }),
      stop: async (signal = 'SIGTERM') => {
        if (child.exitCode === null && child.signalCode === null) child.kill(signal);
        await exited;
      },
    };
  }

  async destroy(): Promise<void> {
    process.removeListener('exit', this.#exitHook);
    for (const child of this.#children) child.kill('SIGKILL');
    // Processes inside a namespace keep it alive; give them a moment to go.
    await Promise.all([...this.#children].map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('close', r)))));
    for (const ns of [...this.pods.map((p) => p.netns), this.#switchNs]) {
      await run(['ip', 'netns', 'del', ns]);
    }
  }

  #destroySync(): void {
    for (const child of this.#children) child.kill('SIGKILL');
    for (const ns of [...this.pods.map((p) => p.netns), this.#switchNs]) {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      } catch {
        // already gone
      }
    }
  }
}
