import type { Logger } from '../log.ts';
import type { Direction } from '../pipeline/connection.ts';

// What the resilience layers report, for metrics (telemetry/resilience-metrics.ts makes
// prom-client counters of it) and logs. The layers get one TargetEvents per target,
// resolved once when the target's stack is built, never per request.

/** Why a try was retried: the classified failure or the response condition that matched. */
export type RetryReason = 'connect-failure' | 'refused-stream' | 'overflow' | 'reset' | 'timeout' | 'status' | 'grpc-status';

/** What became of a retry that was wanted: sent, or not (and why not). */
export type RetryOutcome = 'sent' | 'attempts_exhausted' | 'budget_exhausted' | 'overflow' | 'body_too_large' | 'retry_after_too_long';

export type LimitKind = 'max_concurrent_requests' | 'max_pending_requests' | 'max_concurrent_retries' | 'max_connections' | 'inbound_max_connections' | 'inbound_max_concurrent_requests';

/** A circuit breaker's state, as the metrics and /clusters name it. */
export type BreakerState = 'closed' | 'open' | 'half_open';

export interface TargetEvents {
  retry(reason: RetryReason, outcome: RetryOutcome): void;
  overflow(limit: LimitKind): void;
  timeout(kind: 'total' | 'per_try'): void;
  fault(kind: 'delay' | 'abort'): void;
  rateLimited(): void;
  /**
   * A destination's breaker went from one state to another; `from` undefined: it was
   * made (closed), `to` undefined: it was forgotten. `where` names the destination (for logs, never a label).
   */
  breaker(from: BreakerState | undefined, to: BreakerState | undefined, where: string): void;
  /** A try the open (or probing) breaker refused. */
  breakerRejected(): void;
}

export interface ResilienceEvents {
  /** `policy` is the policy's name (bounded by the configuration); for inbound ports, `port:N`. */
  forTarget(direction: Direction, policy: string): TargetEvents;
}

const ignore = () => {};
export const noTargetEvents: TargetEvents = { retry: ignore, overflow: ignore, timeout: ignore, fault: ignore, rateLimited: ignore, breaker: ignore, breakerRejected: ignore };
export const noEvents: ResilienceEvents = { forTarget: () => noTargetEvents };

/**
 * `events` with each breaker transition logged as well: opening at warn (requests to the
 * destination now fail fast), half-open and closed at info.
 */
export function withBreakerLog(events: ResilienceEvents, log: Pick<Logger, 'warn' | 'info'>): ResilienceEvents {
  return {
    forTarget: (direction, policy) => {
      const inner = events.forTarget(direction, policy);
      return {
        ...inner,
        breaker: (from, to, destination) => {
          inner.breaker(from, to, destination);
          if (from === undefined || to === undefined) return;
          const fields = { direction, policy, destination, from, to };
          if (to === 'open') log.warn(fields, 'circuit breaker opened: requests to the destination fail fast (503 UO circuit_open)');
          else log.info(fields, to === 'closed' ? 'circuit breaker closed: the probe succeeded' : 'circuit breaker half-open: the next request is the probe');
        },
      };
    },
  };
}
