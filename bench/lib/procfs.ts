// Per-process resource readings from /proc, for processes this run started.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

let clockTicks: number | undefined;

/** USER_HZ, the unit of utime/stime in /proc/<pid>/stat (100 on practically every Linux). */
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** Resident set size in bytes (VmRSS), or undefined once the process is gone. */
export function rssBytes(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

export interface CpuTime {
  /** Seconds in user space (JavaScript, V8, libuv). */
  user: number;
  /** Seconds in the kernel on the process's behalf (syscalls: socket reads and writes). */
  system: number;
}

/** CPU time the process has used so far, or undefined once it is gone. */
export function cpuTime(pid: number): CpuTime | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may contain spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of the whole line, i.e. 11 and 12 after ')'.
    return { user: Number(fields[11]) / ticksPerSecond(), system: Number(fields[12]) / ticksPerSecond() };
  } catch {
    return undefined;
  }
}

export function cmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return [];
  }
}

/**
 * The process whose command line matches, starting at `pid` and searching its
 * descendants: `ip netns exec` and `setpriv` exec in place, so normally `pid` itself is
 * the node process; this guards against a wrapper that forks instead.
 */
export function findProcess(pid: number, match: (argv: string[]) => boolean): number | undefined {
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift()!;
    if (match(cmdline(p))) return p;
    try {
      for (const task of readdirSync(`/proc/${p}/task`)) {
        const children = readFileSync(`/proc/${p}/task/${task}/children`, 'utf8').trim();
        if (children) queue.push(...children.split(' ').map(Number));
      }
    } catch {
      // gone
    }
  }
  return undefined;
}

/** The pids of a process's descendants (children first), read from /proc; empty once it is gone. */
export function descendants(pid: number): number[] {
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift()!;
    try {
      for (const task of readdirSync(`/proc/${p}/task`)) {
        const children = readFileSync(`/proc/${p}/task/${task}/children`, 'utf8').trim();
        if (!children) continue;
        for (const c of children.split(' ').map(Number)) {
          out.push(c);
          queue.push(c);
        }
      }
    } catch {
      // gone
    }
  }
  return out;
}

/** Samples the RSS of some processes every `intervalMs` until stopped; keeps the maximum of each. */
export class RssSampler {
  readonly #pids: Map<string, number>;
  readonly #max = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;

  constructor(pids: Map<string, number>) {
    this.#pids = pids;
  }

  start(intervalMs = 50): this {
    this.sample();
    this.#timer = setInterval(() => this.sample(), intervalMs);
    return this;
  }

  sample(): void {
    for (const [name, pid] of this.#pids) {
      const rss = rssBytes(pid);
      if (rss !== undefined && rss > (this.#max.get(name) ?? 0)) this.#max.set(name, rss);
    }
  }

  /** Stops sampling (after one last sample) and returns the maximum RSS seen per process. */
  stop(): Map<string, number> {
    clearInterval(this.#timer);
    this.sample();
    return new Map(this.#max);
  }
}

/** CPU time used by each process between construction and `read()` (clock-tick resolution, 10 ms). */
export class CpuMeter {
  readonly #pids: Map<string, number>;
  readonly #start = new Map<string, CpuTime | undefined>();

  constructor(pids: Map<string, number>) {
    this.#pids = pids;
    for (const [name, pid] of pids) this.#start.set(name, cpuTime(pid));
  }

  read(): Map<string, CpuTime> {
    const out = new Map<string, CpuTime>();
    for (const [name, pid] of this.#pids) {
      const now = cpuTime(pid);
      const start = this.#start.get(name);
      out.set(name, now && start ? { user: now.user - start.user, system: now.system - start.system } : { user: Number.NaN, system: Number.NaN });
    }
    return out;
  }
}

/** Whole-machine CPU jiffies from /proc/stat: busy (everything but idle and iowait), of which irq+softirq, and total. */
export interface SystemCpu {
  busy: number;
  /** Interrupt and softirq time: with veth pairs and a bridge, mostly the network stack's receive work. */
  irq: number;
  total: number;
}

export function systemCpu(): SystemCpu {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already in user/nice)
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  return { busy: total - idle, irq: (v[5] ?? 0) + (v[6] ?? 0), total };
}

/** Fraction of all cores busy between two systemCpu() readings. */
export function busyFraction(from: SystemCpu, to: SystemCpu): number {
  const total = to.total - from.total;
  return total > 0 ? (to.busy - from.busy) / total : Number.NaN;
}

/** Fraction of all cores in interrupt/softirq context between two systemCpu() readings. */
export function irqFraction(from: SystemCpu, to: SystemCpu): number {
  const total = to.total - from.total;
  return total > 0 ? (to.irq - from.irq) / total : Number.NaN;
}
