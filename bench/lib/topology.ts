// The pods the benchmarks run in. Each testbed has a client pod `a` and a server pod `b`
// on its own bridge, and the L4 scenario builds three of them in the same run:
//   direct    — no rules, no proxies: the app's connection goes straight to the server;
//   plaintext — `meshlet init` rules and a `meshlet proxy` in both pods, no identities:
//               the client's connection goes a:15001 (outbound) → b:15006 (inbound) →
//               server, opaque TCP between the sidecars;
//   mtls      — the same, with identities from `meshlet ca` and mesh-wide strict mTLS:
//               a:15001 originates TLS 1.3 (ECDSA P-256) to b:15006, which terminates it.
// All are the same topology (veth pairs on a bridge, each in its own namespaces), so the
// only differences between them are the mesh and its encryption. The direct testbed has
// no netfilter rules at all, which is a cleaner baseline than an excluded port in a
// meshed one.
import { existsSync } from 'node:fs';
import { APP_UID, MESHLET_DIST_BIN, Testbed, type Pod, type ProxyUnder, type SpawnedProcess } from '../../src/testbed/netns.ts';
import { findProcess } from './procfs.ts';

export type Mode = 'direct' | 'plaintext' | 'mtls';

export interface ProxyHandle {
  pod: string;
  /** Pid of the proxy's node process (for /proc readings). */
  pid: number;
  process: SpawnedProcess;
}

export interface Topology {
  mode: Mode;
  testbed: Testbed;
  client: Pod;
  server: Pod;
  proxies: ProxyHandle[];
}

export interface TopologyOptions {
  /** Second octet of the pods' IPv4 addresses (10.<subnet>.0.x), so reports and logs tell the testbeds apart. */
  subnet: number;
  /** Extra environment for each pod's `meshlet proxy` (MESHLET_* configuration), by pod name. */
  proxyEnv?: (pod: Pod) => NodeJS.ProcessEnv;
  /** A program to run a pod's proxy under (a profiler: its argv before node's), node flags, and how long that proxy may take to be ready. */
  proxyUnder?: (pod: Pod) => ProxyUnder | undefined;
}

export async function createTopology(mode: Mode, options: TopologyOptions): Promise<Topology> {
  const testbed = await Testbed.create(['a', 'b'], { subnet: options.subnet });
  try {
    const topology: Topology = { mode, testbed, client: testbed.pod('a'), server: testbed.pod('b'), proxies: [] };
    if (mode !== 'direct') {
      for (const pod of [topology.client, topology.server]) {
        const result = await pod.init();
        if (result.code !== 0) throw new Error(`meshlet init failed in pod ${pod.name} (exit ${result.code}): ${result.stderr.trim() || result.stdout.trim()}`);
        // The compiled build, as a sidecar image runs it (`npm run bench` builds it first).
        if (!existsSync(MESHLET_DIST_BIN)) throw new Error(`${MESHLET_DIST_BIN} is missing: run npm run dist (npm run bench does)`);
        const proc = await pod.startProxy(options.proxyEnv?.(pod) ?? {}, [], MESHLET_DIST_BIN, options.proxyUnder?.(pod));
        const pid = findProcess(proc.child.pid!, (argv) => argv.includes(MESHLET_DIST_BIN) && argv.includes('proxy') && !argv.includes('setpriv'));
        if (pid === undefined) throw new Error(`cannot find the proxy's node process in pod ${pod.name}`);
        topology.proxies.push({ pod: pod.name, pid, process: proc });
      }
    }
    return topology;
  } catch (err) {
    await testbed.destroy();
    throw err;
  }
}

/** A long-running app server in a pod, as the app UID; resolves with its first JSON line. */
export async function startAppServer(pod: Pod, args: string[]): Promise<{ process: SpawnedProcess; pid: number; ready: Record<string, unknown> }> {
  const proc = pod.node(args, { uid: APP_UID });
  const line = await proc.waitForLine(/^\{/, 20_000);
  const pid = findProcess(proc.child.pid!, (argv) => argv[0] === process.execPath) ?? proc.child.pid!;
  return { process: proc, pid, ready: JSON.parse(line) as Record<string, unknown> };
}

/** Sum of a Prometheus counter's samples whose labels contain all of `labels`. */
export function counterSum(exposition: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of exposition.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const labelText = m[2] ?? '';
    if (Object.entries(labels).every(([k, v]) => labelText.includes(`${k}="${v}"`))) sum += Number(m[3]);
  }
  return sum;
}

/** The proxy's metrics, fetched from inside its pod the way Prometheus would scrape them. */
export async function scrapeMetrics(pod: Pod): Promise<string> {
  const r = await pod.runOk(['curl', '-sS', '--max-time', '5', 'http://127.0.0.1:15020/stats/prometheus']);
  return r.stdout;
}
