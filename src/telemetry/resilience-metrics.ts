import { Counter, Gauge, type Registry } from 'prom-client';
import type { Direction } from '../pipeline/connection.ts';
import type { ResilienceEvents, TargetEvents } from '../resilience/events.ts';

// Counters of what the resilience layers did (docs/resilience.md lists them). Labels
// stay bounded: the direction, the policy's name (from the configuration), and fixed
// sets of reasons, outcomes and kinds; never an address.

export interface ResilienceMetrics extends ResilienceEvents {
  readonly retries: Counter<string>;
  readonly budgetExhausted: Counter<string>;
  readonly overflows: Counter<string>;
  readonly rateLimited: Counter<string>;
  readonly faults: Counter<string>;
  readonly timeouts: Counter<string>;
  readonly breakerTransitions: Counter<string>;
  readonly breakerRejections: Counter<string>;
  readonly breakers: Gauge<string>;
}

export function createResilienceMetrics(registry: Registry, prefix: string): ResilienceMetrics {
  const registers = [registry];
  const target = ['direction', 'policy'] as const;
  const retries = new Counter({
    name: `${prefix}_upstream_retries_total`,
    help: 'Retries wanted, by why (reason) and whether one was sent (outcome: sent, attempts_exhausted, budget_exhausted, overflow, body_too_large, retry_after_too_long)',
    labelNames: [...target, 'reason', 'outcome'],
    registers,
  });
  const budgetExhausted = new Counter({ name: `${prefix}_retry_budget_exhausted_total`, help: 'Retries refused because the destination retry budget ran out', labelNames: target, registers });
  const overflows = new Counter({ name: `${prefix}_overflows_total`, help: 'Requests or connections refused by a limit (503 UO, or a reset connection)', labelNames: [...target, 'limit'], registers });
  const rateLimited = new Counter({ name: `${prefix}_rate_limited_total`, help: 'Requests refused by a local rate limit (429 RL)', labelNames: target, registers });
  const faults = new Counter({ name: `${prefix}_faults_injected_total`, help: 'Faults injected (kind: delay, abort)', labelNames: [...target, 'kind'], registers });
  const timeouts = new Counter({ name: `${prefix}_upstream_timeouts_total`, help: 'Deadlines that expired (kind: total, per_try)', labelNames: [...target, 'kind'], registers });
  const breakerTransitions = new Counter({
    name: `${prefix}_circuit_breaker_transitions_total`,
    help: 'Circuit breaker state changes of the destinations under a policy, by the state entered (open, half_open, closed)',
    labelNames: [...target, 'state'],
    registers,
  });
  const breakerRejections = new Counter({
    name: `${prefix}_circuit_breaker_rejections_total`,
    help: 'Requests and connections a circuit breaker refused (503 UO circuit_open, or a reset connection)',
    labelNames: target,
    registers,
  });
  // Per policy, not per address (labels stay bounded): how many of its destinations are in
  // each state. Per destination, /clusters shows each breaker.
  const breakers = new Gauge({
    name: `${prefix}_circuit_breakers`,
    help: 'Destinations whose circuit breaker is in each state (closed, open, half_open)',
    labelNames: [...target, 'state'],
    registers,
  });

  const forTarget = (direction: Direction, policy: string): TargetEvents => {
    // The fixed children once per target; the others on the rare paths that count them.
    const exhausted = budgetExhausted.labels({ direction, policy });
    const limited = rateLimited.labels({ direction, policy });
    const rejected = breakerRejections.labels({ direction, policy });
    return {
      retry: (reason, outcome) => {
        retries.inc({ direction, policy, reason, outcome });
        if (outcome === 'budget_exhausted') exhausted.inc();
      },
      overflow: (limit) => overflows.inc({ direction, policy, limit }),
      timeout: (kind) => timeouts.inc({ direction, policy, kind }),
      fault: (kind) => faults.inc({ direction, policy, kind }),
      rateLimited: () => limited.inc(),
      breaker: (from, to) => {
        if (from !== undefined) breakers.dec({ direction, policy, state: from });
        if (to !== undefined) breakers.inc({ direction, policy, state: to });
        if (from !== undefined && to !== undefined) breakerTransitions.inc({ direction, policy, state: to });
      },
      breakerRejected: () => rejected.inc(),
    };
  };
  return { retries, budgetExhausted, overflows, rateLimited, faults, timeouts, breakerTransitions, breakerRejections, breakers, forTarget };
}
