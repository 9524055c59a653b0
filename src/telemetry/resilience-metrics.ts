import { Counter, type Registry } from 'prom-client';
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

  const forTarget = (direction: Direction, policy: string): TargetEvents => {
    // The fixed children once per target; the others on the rare paths that count them.
    const exhausted = budgetExhausted.labels({ direction, policy });
    const limited = rateLimited.labels({ direction, policy });
    return {
      retry: (reason, outcome) => {
        retries.inc({ direction, policy, reason, outcome });
        if (outcome === 'budget_exhausted') exhausted.inc();
      },
      overflow: (limit) => overflows.inc({ direction, policy, limit }),
      timeout: (kind) => timeouts.inc({ direction, policy, kind }),
      fault: (kind) => faults.inc({ direction, policy, kind }),
      rateLimited: () => limited.inc(),
    };
  };
  return { retries, budgetExhausted, overflows, rateLimited, faults, timeouts, forTarget };
}
