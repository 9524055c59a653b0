import type { Direction } from '../pipeline/connection.ts';

// What the resilience layers report, for metrics (telemetry/resilience-metrics.ts makes
// prom-client counters of it) and logs. The layers get one TargetEvents per target,
// resolved once when the target's stack is built, never per request.

/** Why a try was retried: the classified failure or the response condition that matched. */
export type RetryReason = 'connect-failure' | 'refused-stream' | 'overflow' | 'reset' | 'timeout' | 'status' | 'grpc-status';

/** What became of a retry that was wanted: sent, or not (and why not). */
export type RetryOutcome = 'sent' | 'attempts_exhausted' | 'budget_exhausted' | 'overflow' | 'body_too_large' | 'retry_after_too_long';

export type LimitKind = 'max_concurrent_requests' | 'max_pending_requests' | 'max_concurrent_retries' | 'max_connections' | 'inbound_max_connections' | 'inbound_max_concurrent_requests';

export interface TargetEvents {
  retry(reason: RetryReason, outcome: RetryOutcome): void;
  overflow(limit: LimitKind): void;
  timeout(kind: 'total' | 'per_try'): void;
  fault(kind: 'delay' | 'abort'): void;
  rateLimited(): void;
}

export interface ResilienceEvents {
  /** `policy` is the policy's name (bounded by the configuration); for inbound ports, `port:N`. */
  forTarget(direction: Direction, policy: string): TargetEvents;
}

const ignore = () => {};
export const noTargetEvents: TargetEvents = { retry: ignore, overflow: ignore, timeout: ignore, fault: ignore, rateLimited: ignore };
export const noEvents: ResilienceEvents = { forTarget: () => noTargetEvents };
