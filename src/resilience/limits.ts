import { MeshletError } from '../errors.ts';
import type { RequestAbort } from '../pipeline/abort.ts';
import type { Layer } from '../pipeline/compose.ts';
import type { ProxyRequest, ProxyResponse } from '../pipeline/exchange.ts';
import { onResponseEnd } from './body-end.ts';
import type { LimitKind, TargetEvents } from './events.ts';
import type { Target, TargetStateView } from './targets.ts';

interface Waiter {
  readonly resolve: (admitted: boolean) => void;
  readonly abort: RequestAbort;
  readonly onAbort: () => void;
}

/**
 * At most `max` at once; up to `maxPending` more wait in arrival order, and a slot freed
 * goes straight to the first of them. Beyond that, callers are refused: overload sheds
 * load (503 UO) instead of queueing without end.
 */
export class ConcurrencyLimit implements TargetStateView {
  readonly max: number;
  readonly maxPending: number;
  #inFlight = 0;
  #waiting: Waiter[] = [];
  #overflows = 0;

  constructor(max: number, maxPending: number) {
    this.max = max;
    this.maxPending = maxPending;
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  get pending(): number {
    return this.#waiting.length;
  }

  tryAcquire(): boolean {
    if (this.#inFlight >= this.max) return false;
    this.#inFlight++;
    return true;
  }

  /** Waits in the queue (the caller checked it has room) for a slot: true once it has one, false when the request was aborted first. */
  wait(abort: RequestAbort): Promise<boolean> {
    if (abort.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const waiter: Waiter = {
        resolve,
        abort,
        onAbort: () => {
          const i = this.#waiting.indexOf(waiter);
          if (i >= 0) this.#waiting.splice(i, 1);
          resolve(false);
        },
      };
      abort.on(waiter.onAbort);
      this.#waiting.push(waiter);
    });
  }

  refused(): void {
    this.#overflows++;
  }

  release(): void {
    const next = this.#waiting.shift();
    if (next === undefined) {
      this.#inFlight--;
      return;
    }
    next.abort.off(next.onAbort);
    next.resolve(true); // the slot passes on: in flight stays the same
  }

  snapshot(): Record<string, number> {
    return { inFlight: this.#inFlight, pending: this.#waiting.length, max: this.max, maxPending: this.maxPending, overflows: this.#overflows };
  }
}

export function overflowError(what: string, limit: number, where: string): MeshletError {
  return new MeshletError('MESHLET_ERR_OVERFLOW', `${what} (${limit}) reached for ${where}`);
}

/**
 * Runs each request within `limit`: waits for a slot while the queue has room, else
 * refuses it with 503 UO. A request holds its slot until its response ends.
 */
export function limitedLayer(limit: ConcurrencyLimit, kind: LimitKind, events: TargetEvents, where: string): Layer<ProxyRequest, ProxyResponse> {
  return (next) => {
    const run = async (req: ProxyRequest): Promise<ProxyResponse> => {
      let res: ProxyResponse;
      try {
        res = await next(req);
      } catch (err) {
        limit.release();
        throw err;
      }
      return onResponseEnd(res, () => limit.release());
    };
    return async (req) => {
      if (limit.tryAcquire()) return run(req);
      if (limit.pending < limit.maxPending) {
        if (await limit.wait(req.abort)) return run(req);
        throw new MeshletError('MESHLET_ERR_UPSTREAM_RESET', 'the client went away while its request waited for a slot');
      }
      limit.refused();
      const queued = limit.maxPending > 0;
      events.overflow(queued ? 'max_pending_requests' : kind);
      throw overflowError(queued ? `the queue of max pending requests (${limit.maxPending}) behind` : kind.replaceAll('_', ' '), limit.max, where);
    };
  };
}

/**
 * A destination's connection limit (its policy's limits.maxConnections), made once per
 * destination: an HTTP/1.1 pool that finds no idle connection and the limit reached makes
 * the request wait for one, up to `maxPending` requests; beyond, it is refused (503 UO).
 */
export interface ConnectionLimit {
  readonly max: number;
  readonly maxPending: number;
  /** A request was refused: the queue was full. */
  overflow(): void;
}

/** The target's maxConnections for the HTTP/1.1 pools; undefined when it has none. */
export function connectionLimit(target: Target): ConnectionLimit | undefined {
  const { maxConnections: max, maxPendingRequests: maxPending } = target.policy.limits;
  if (max === 0) return undefined;
  let overflows = 0;
  target.state.set('connections', { snapshot: () => ({ max, maxPending, overflows }) });
  return {
    max,
    maxPending,
    overflow: () => {
      overflows++;
      target.events.overflow('max_connections');
    },
  };
}

/** The destination's maxConcurrentRequests / maxPendingRequests; nothing when it has none. */
export function destinationLimitLayer(target: Target): Layer<ProxyRequest, ProxyResponse> {
  const { maxConcurrentRequests, maxPendingRequests } = target.policy.limits;
  if (maxConcurrentRequests === 0) return (next) => next;
  const limit = new ConcurrencyLimit(maxConcurrentRequests, maxPendingRequests);
  target.state.set('limits', limit);
  return limitedLayer(limit, 'max_concurrent_requests', target.events, `policy ${target.policy.name}`);
}
