import { compose, type Handler, type Layer } from '../pipeline/compose.ts';
import type { Direction } from '../pipeline/connection.ts';
import type { ProxyRequest, ProxyResponse } from '../pipeline/exchange.ts';
import { systemClock, type Clock } from './clock.ts';
import { noEvents, type ResilienceEvents, type TargetEvents } from './events.ts';
import type { InboundState } from './inbound.ts';
import { isInert, PolicyTable } from './policy.ts';
import type { Config } from '../config/schema.ts';

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
  readonly #views: Array<() => TargetSnapshot[]> = [];

  constructor(table: PolicyTable, events: ResilienceEvents, clock: Clock = systemClock) {
    this.#table = table;
    this.events = events;
    this.clock = clock;
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
  }

  /**
   * The request layer that runs each request through its target's stack, built by
   * `recipe` once per target. With no policy that does anything, requests pass straight
   * on (gRPC ones still get their grpc-timeout honoured).
   */
  requestLayer(direction: Direction, recipe: (target: Target) => ReadonlyArray<Layer<ProxyRequest, ProxyResponse>>): Layer<ProxyRequest, ProxyResponse> {
    return (next) => {
      let table: PolicyTable | undefined;
      let targets: Targets<Handler<ProxyRequest, ProxyResponse>> | undefined;
      let inert = false;
      this.#views.push(() => targets?.targets() ?? []);
      return (req) => {
        const current = this.#table;
        if (current !== table) {
          table = current;
          targets = new Targets(current, direction, (target) => compose(recipe(target), next), this.events);
          inert = current.policies.every(isInert);
        }
        if (inert && !req.grpc) return next(req);
        return targets!.forConnection(req.conn, req.authority)(req);
      };
    };
  }

  targets(): TargetSnapshot[] {
    const inbound: TargetSnapshot[] =
      this.inboundState.views.size === 0
        ? []
        : [{ direction: 'inbound', policy: 'inbound', destination: '*', state: Object.fromEntries([...this.inboundState.views].map(([k, v]) => [k, v.snapshot()])) }];
    return [...this.#views.flatMap((view) => view()), ...inbound];
  }
}
