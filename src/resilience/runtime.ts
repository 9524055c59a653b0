import { compose, type Handler, type Layer } from '../pipeline/compose.ts';
import type { AcceptedConnection, Direction } from '../pipeline/connection.ts';
import { backoffMs } from './backoff.ts';
import { Breakers, type EndpointBreaker } from './breaker.ts';
import { ConcurrencyLimit } from './limits.ts';
import { RetryBudget } from './budget.ts';
import type { ProxyRequest, ProxyResponse } from '../pipeline/exchange.ts';
import { systemClock, type Clock } from './clock.ts';
import { noEvents, type ResilienceEvents, type TargetEvents } from './events.ts';
import type { InboundState } from './inbound.ts';
import { isInert, PolicyTable } from './policy.ts';
import type { Config } from '../config/schema.ts';

export interface ConnectPolicy {
  readonly connectTimeoutMs: number;
  /** After `failed` attempts: the wait before another, or undefined for none. */
  readonly retryConnect: ((failed: number) => number | undefined) | undefined;
  readonly budget: RetryBudget | undefined;
  /** The destination's circuit breaker, shared with its HTTP requests; undefined when its policy has none. */
  readonly breaker: EndpointBreaker | undefined;
  /** Opaque TCP connections open to the destination (limits.maxConnections); undefined when it has no limit. */
  readonly connections: TcpConnectionLimit | undefined;
}

/** limits.maxConnections for opaque TCP: a connection beyond it is reset (flag UO), as Envoy's TCP proxy does. */
export interface TcpConnectionLimit {
  /** Takes a place for a connection; false (and counted as an overflow) when there is none. */
  acquire(): boolean;
  release(): void;
}

function tcpConnectionLimit(target: Target): TcpConnectionLimit | undefined {
  const max = target.policy.limits.maxConnections;
  if (max === 0) return undefined;
  const limit = new ConcurrencyLimit(max, 0);
  target.state.set('tcpConnections', limit);
  return {
    acquire: () => {
      if (limit.tryAcquire()) return true;
      limit.refused();
      target.events.overflow('max_connections');
      return false;
    },
    release: () => limit.release(),
  };
}

function connectPolicyOf(target: Target, clock: Clock, breakers: Breakers): ConnectPolicy {
  const { connectTimeoutMs, retries } = target.policy;
  const breaker = breakers.forTarget(target);
  const connections = tcpConnectionLimit(target);
  if (retries.attempts <= 1) return { connectTimeoutMs, retryConnect: undefined, budget: undefined, breaker, connections };
  const budget = new RetryBudget(retries.budget, clock);
  target.state.set('budget', budget);
  const events = target.events;
  const retryConnect = (failed: number): number | undefined => {
    const outcome = failed >= retries.attempts ? 'attempts_exhausted' : budget.withdraw() ? 'sent' : 'budget_exhausted';
    events.retry('connect-failure', outcome);
    return outcome === 'sent' ? backoffMs(failed, retries.backoffBaseMs, retries.backoffMaxMs, clock.random()) : undefined;
  };
  return { connectTimeoutMs, retryConnect, budget, breaker, connections };
}

export function policyTable(config: Config): PolicyTable {
  return new PolicyTable(config.resilience, config.outbound.connectTimeout);
}
import { Targets, type ResilienceStateView, type Target, type TargetSnapshot } from './targets.ts';

/**
 * The policies in force and the per-destination state built from them. A reload swaps
 * the table: requests that started keep the stack they started with, the next ones get
 * stacks (and budgets, limits) built for the new policies; no connection is touched.
 */
export class ResilienceRuntime implements ResilienceStateView {
  readonly clock: Clock;
  readonly events: ResilienceEvents;
  readonly inboundEvents: TargetEvents;
  readonly inboundState: InboundState = { views: new Map() };
  #table: PolicyTable;
  readonly #views: Array<() => TargetSnapshot[]> = [() => this.#connectTargets?.targets() ?? []];
  #connectTable: PolicyTable | undefined;
  #connectTargets: Targets<ConnectPolicy> | undefined;
  #breakers: Breakers;

  constructor(table: PolicyTable, events: ResilienceEvents, clock: Clock = systemClock) {
    this.#table = table;
    this.events = events;
    this.clock = clock;
    this.#breakers = new Breakers(clock);
    this.inboundEvents = events.forTarget('inbound', 'inbound');
  }

  /** The runtime for `config`'s resilience policies (connect timeout default: outbound.connectTimeout). */
  static fromConfig(config: Config, events: ResilienceEvents = noEvents, clock: Clock = systemClock): ResilienceRuntime {
    return new ResilienceRuntime(policyTable(config), events, clock);
  }

  get table(): PolicyTable {
    return this.#table;
  }

  update(table: PolicyTable): void {
    this.#table = table;
    // Fresh breakers for the new policies, as budgets and counters are fresh; the old ones
    // stop counting in the metrics (requests under way may still report to them).
    this.#breakers.dispose();
    this.#breakers = new Breakers(this.clock);
  }

  /** The circuit breakers of the policies in force: one per destination, shared by its HTTP and TCP paths. */
  get breakers(): Breakers {
    return this.#breakers;
  }

  /** host:port → its breaker's state, for /clusters (the worst when policies differ for one destination). */
  breakerStates(): ReadonlyMap<string, string> {
    const rank = { closed: 0, half_open: 1, open: 2 } as const;
    const out = new Map<string, 'closed' | 'half_open' | 'open'>();
    for (const [destination, breaker] of this.#breakers.entries()) {
      const seen = out.get(destination);
      if (seen === undefined || rank[breaker.state] > rank[seen]) out.set(destination, breaker.state);
    }
    return out;
  }

  /**
   * The request layer that runs each request through its target's stack, built by
   * `recipe` once per target. With no policy that does anything, requests pass straight
   * on (gRPC ones still get their grpc-timeout honoured).
   */
  requestLayer(
    direction: Direction,
    recipe: (target: Target) => ReadonlyArray<Layer<ProxyRequest, ProxyResponse>>,
    /** The upstream call for a target (e.g. with its connect timeout); the next handler when absent. */
    terminal?: (target: Target, next: Handler<ProxyRequest, ProxyResponse>) => Handler<ProxyRequest, ProxyResponse>,
    /**
     * `table`: which policies (the outbound ones by default); `grpcTimeouts`: whether gRPC
     * requests go through the stack even when no policy does anything (to honour grpc-timeout).
     */
    options: { table?: (current: PolicyTable) => PolicyTable; grpcTimeouts?: boolean } = {},
  ): Layer<ProxyRequest, ProxyResponse> {
    const select = options.table ?? ((current: PolicyTable) => current);
    const grpcTimeouts = options.grpcTimeouts ?? true;
    return (next) => {
      let table: PolicyTable | undefined;
      let targets: Targets<Handler<ProxyRequest, ProxyResponse>> | undefined;
      let inert = false;
      this.#views.push(() => targets?.targets() ?? []);
      return (req) => {
        const current = select(this.#table);
        if (current !== table) {
          table = current;
          targets = new Targets(current, direction, (target) => compose(recipe(target), terminal ? terminal(target, next) : next), this.events);
          inert = current.policies.every((p) => isInert(p, current.baseConnectTimeoutMs));
        }
        if (inert && !(grpcTimeouts && req.grpc)) return next(req);
        return targets!.forConnection(req.conn, req.authority)(req);
      };
    };
  }

  /**
   * Opaque TCP to `conn`'s destination: the policy's connect timeout, and connect
   * retries (nothing of the client's is sent before the connection is made) within its
   * attempts and budget. One object per destination, counted per connection.
   */
  connectPolicy(conn: AcceptedConnection): ConnectPolicy {
    const current = this.#table;
    if (current !== this.#connectTable) {
      this.#connectTable = current;
      const targets = new Targets(current, conn.direction, (target) => connectPolicyOf(target, this.clock, this.#breakers), this.events);
      this.#connectTargets = targets;
    }
    const policy = this.#connectTargets!.forConnection(conn, undefined);
    policy.budget?.deposit();
    return policy;
  }

  targets(): TargetSnapshot[] {
    const inbound: TargetSnapshot[] =
      this.inboundState.views.size === 0
        ? []
        : [{ direction: 'inbound', policy: 'inbound', destination: '*', state: Object.fromEntries([...this.inboundState.views].map(([k, v]) => [k, v.snapshot()])) }];
    return [...this.#views.flatMap((view) => view()), ...inbound];
  }
}
