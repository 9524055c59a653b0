import type { AcceptedConnection, Direction } from '../pipeline/connection.ts';
import { formatHostPort, type OrigDst } from '../net/addresses.ts';
import type { ResilienceEvents, TargetEvents } from './events.ts';
import type { Policy, PolicyTable } from './policy.ts';

// Per-destination state and the stacks built for it: a target is one destination (the
// original destination address and port) under one policy. Its handler is built once,
// when its first request arrives, and kept; what the layers keep per destination (the
// retry budget, the limits' counters, the circuit breaker) lives on it.

/** What a layer keeps per destination, read by the admin server's /clusters. */
export interface TargetStateView {
  /** e.g. `{ inFlight: 3, pending: 0 }` for the limits, `{ requests, retries, available }` for the budget. */
  snapshot(): Record<string, number | string>;
}

export interface Target {
  readonly direction: Direction;
  readonly policy: Policy;
  readonly dst: OrigDst;
  readonly events: TargetEvents;
  /** State the layers register by name ('budget', 'limits', 'retries', 'breaker'). */
  readonly state: Map<string, TargetStateView>;
}

/** One destination's state, as /clusters lists it. */
export interface TargetSnapshot {
  readonly direction: Direction;
  readonly policy: string;
  readonly destination: string;
  readonly state: Record<string, Record<string, number | string>>;
}

/** What the admin server reads: per-destination state, read-only. */
export interface ResilienceStateView {
  targets(): TargetSnapshot[];
  /** host:port → the state of its circuit breaker, for the destinations that have one. */
  breakerStates(): ReadonlyMap<string, string>;
}

interface Memo<H> {
  authority: string | undefined;
  handler: H;
}

const TARGET_LIMIT = 10_000;

/**
 * The handlers of every target seen, built by `build` on first use. Requests find theirs
 * through a memo on the connection (the destination never changes on a connection, and
 * the authority rarely does), so the usual request costs one WeakMap lookup.
 */
export class Targets<H> {
  readonly table: PolicyTable;
  readonly #direction: Direction;
  readonly #build: (target: Target) => H;
  readonly #events: ResilienceEvents;
  readonly #byPolicy = new Map<Policy, Map<string, { target: Target; handler: H }>>();
  readonly #byConn = new WeakMap<AcceptedConnection, Memo<H>>();
  #count = 0;

  constructor(table: PolicyTable, direction: Direction, build: (target: Target) => H, events: ResilienceEvents) {
    this.table = table;
    this.#direction = direction;
    this.#build = build;
    this.#events = events;
  }

  /** The handler for a request on `conn` to `authority` (undefined for opaque TCP). */
  forConnection(conn: AcceptedConnection, authority: string | undefined): H {
    const memo = this.#byConn.get(conn);
    // The flag first: two equal authorities are two strings (one per request), and V8
    // compares substrings of a parsed head in its runtime (about 500 instructions a request).
    if (memo !== undefined && (!this.table.byAuthority || memo.authority === authority)) return memo.handler;
    const handler = this.forDestination(authority, conn.origDst);
    if (memo !== undefined) {
      memo.authority = authority;
      memo.handler = handler;
    } else {
      this.#byConn.set(conn, { authority, handler });
    }
    return handler;
  }

  forDestination(authority: string | undefined, dst: OrigDst): H {
    const policy = this.table.resolve(authority, dst);
    let targets = this.#byPolicy.get(policy);
    if (targets === undefined) this.#byPolicy.set(policy, (targets = new Map()));
    let entry = targets.get(dst.key);
    if (entry === undefined) {
      // A proxy that talks to ever new destinations starts afresh rather than grow without bound.
      if (this.#count >= TARGET_LIMIT) this.#forgetAll();
      const target: Target = { direction: this.#direction, policy, dst, events: this.#events.forTarget(this.#direction, policy.name), state: new Map() };
      entry = { target, handler: this.#build(target) };
      targets.set(dst.key, entry);
      this.#count++;
    }
    return entry.handler;
  }

  targets(): TargetSnapshot[] {
    const out: TargetSnapshot[] = [];
    for (const targets of this.#byPolicy.values()) {
      for (const { target } of targets.values()) {
        out.push({
          direction: target.direction,
          policy: target.policy.name,
          destination: formatHostPort(target.dst.address, target.dst.port),
          state: Object.fromEntries([...target.state].map(([name, view]) => [name, view.snapshot()])),
        });
      }
    }
    return out;
  }

  #forgetAll(): void {
    this.#byPolicy.clear();
    this.#count = 0;
  }
}
