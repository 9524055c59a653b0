import { execFileSync } from 'node:child_process';
import os from 'node:os';

// The HTTP benchmarks' CPU placement: the load generator on one core, everything a request
// crosses in the pods (the app, both proxies of a pair, a trace sink) on another, as the
// data-path issue's own measurements were made. Left to the scheduler, four busy processes
// on two cores land differently at every start: the same pair measured 7 600 to 10 300
// requests/s and 111 to 154 µs of proxy CPU per request over three starts, against 7 586
// to 7 811 and 103 to 106 µs pinned (a later pinned check: 7 233 to 8 922, so the spread
// narrows without going away). Pinned, a pair's rate is one core divided by what a
// request costs the app and both proxies together, which is the comparison the targets make.

export interface Pinning {
  /** The core of this process and of what it spawns afterwards (h2load, the latency client). */
  readonly load: number;
  /** The core the pods' servers and proxies are moved to. */
  readonly pods: number;
}

/** The placement on this machine: undefined when it has a single core (nothing to separate). */
export function pinning(): Pinning | undefined {
  return os.availableParallelism() >= 2 ? { load: 0, pods: 1 } : undefined;
}

/** Moves every thread of `pid` to `cpus` (a list: `1`, `0-3`); threads made later inherit it. Needs taskset (util-linux). */
function pinProcess(pid: number, cpus: string): void {
  execFileSync('taskset', ['--all-tasks', '--cpu-list', '--pid', cpus, String(pid)], { stdio: 'ignore' });
}

/** This process (and so each load generator it spawns later) to the load core. */
export function pinLoadGenerator(p: Pinning): void {
  pinProcess(process.pid, String(p.load));
}

/** A pod's processes to the pods' core, once they run. */
export function pinToPods(p: Pinning, pids: readonly number[]): void {
  for (const pid of pids) pinProcess(pid, String(p.pods));
}

/** This process back on every core (after a scenario that pinned it). */
export function releaseLoadGenerator(): void {
  pinProcess(process.pid, `0-${os.availableParallelism() - 1}`);
}
