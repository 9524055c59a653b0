import type { MachineInfo } from './lib/machine.ts';

// What a benchmark scenario is. Each scenario (bench/l4.ts: opaque TCP; bench/l7.ts:
// HTTP/1.1, HTTP/2 and gRPC with nginx/haproxy baselines) builds its own pods, measures, tears down, and returns
// its figures as data (for the JSON) and tables (for the markdown report).

export interface BenchOptions {
  /** Fewer runs and smaller transfers, for smoke-checking the benchmark itself. */
  quick: boolean;
  /** Measured runs per mode (the reported figure is the median). */
  runs: number;
  /** Bulk transfer size in bytes. */
  sizeBytes: number;
  /** Write size of the bulk-transfer client. */
  chunkBytes: number;
  /** Request/response exchanges per latency run. */
  pings: number;
  /** Request (= response) size of each exchange. */
  msgBytes: number;
  /** New connections per connection-rate run (each one request/response, then closed). */
  conns: number;
  /** Connections the connection-rate client keeps open at once. */
  concurrency: number;
  /** Time limit of one connection-rate run: no new connection starts after it. */
  connSeconds: number;
  /** Address family the client uses to reach the server. */
  family: 4 | 6;
  /** The l7 scenario: load generator on one core, the pods' processes on another (bench/lib/pinning.ts). */
  pinned: boolean;
  /** The l7 scenario's modes to run (all when undefined); a subset gets a reduced report. */
  l7Modes?: string[];
}

export interface BenchContext {
  options: BenchOptions;
  machine: MachineInfo;
  /** Progress on stderr (stdout carries only the final markdown). */
  log(message: string): void;
  /**
   * Call before each round of runs. On a shared machine (--wait-quiet) it waits, for a
   * few seconds at most, until other work pauses; otherwise it returns at once.
   */
  settle(): Promise<void>;
}

export interface Table {
  title?: string;
  headers: string[];
  rows: string[][];
}

export interface ScenarioResult {
  name: string;
  title: string;
  /** Headline figures, flat, for dashboards and comparisons between runs. */
  summary: Record<string, number | string | boolean | null>;
  /** Rendered in the markdown in this order. */
  tables: Table[];
  /** Bullet points under the tables: method, caveats, warnings. */
  notes: string[];
  /** Everything measured, per run, for the JSON. */
  data: unknown;
}

export interface Scenario {
  name: string;
  title: string;
  run(ctx: BenchContext): Promise<ScenarioResult>;
}
