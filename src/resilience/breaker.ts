import { EventEmitter } from 'node:events';
import CircuitBreaker from 'opossum';
import type { BreakerFailureOn } from '../config/resilience-schema.ts';
import { isMeshletError, MeshletError } from '../errors.ts';
import { formatHostPort } from '../net/addresses.ts';
import type { Layer } from '../pipeline/compose.ts';
import type { ProxyRequest, ProxyResponse } from '../pipeline/exchange.ts';
import { get } from '../pipeline/headers.ts';
import type { Clock } from './clock.ts';
import type { BreakerState, TargetEvents } from './events.ts';
import type { BreakerPolicy, Policy } from './policy.ts';
import type { Target, TargetStateView } from './targets.ts';

// One circuit breaker per destination (original destination address and port, under one
// policy), shared by its HTTP requests and its opaque TCP connects. opossum holds the
// state (closed, open, half-open), the timer that ends an open period, the single
// half-open probe and the rolling window of counts. The hot path does not go through
// opossum's fire(), which makes several promises, a timer and two events per call:
// while closed a try is admitted on one field read and its outcome reported
// synchronously; only when not closed does admission go through fire(), so that
// opossum decides whether this try is the probe or is refused.

/** What a try came to, as a breaker sees it: a kind of failure, or nothing to count against the destination. */
export type TryOutcome = BreakerFailureOn | 'success' | 'ignored';

/** One admitted try; report its outcome once. */
export interface BreakerTicket {
  report(outcome: TryOutcome): void;
}

const BUCKETS = 10;

/**
 * A probe with no outcome after this long counts as failed, so a probe stuck on an
 * upstream that never answers (and a policy without a timeout) cannot hold the breaker
 * half-open, refusing everything, for as long as its client waits. opossum's own default.
 */
export const PROBE_TIMEOUT_MS = 10_000;

/** The probe's failure as opossum sees it (a rejection of the guarded call). */
class ProbeFailed extends Error {}

const guarded = (run: () => Promise<void>): Promise<void> => run();
const ignore = () => {};

export class EndpointBreaker implements TargetStateView, BreakerTicket {
  readonly policy: BreakerPolicy;
  /** host:port, as /clusters names it. */
  readonly destination: string;
  readonly #cb: CircuitBreaker<[() => Promise<void>], void>;
  readonly #clock: Clock;
  readonly #events: TargetEvents;
  readonly #message: string;
  readonly #rotate = new EventEmitter();
  readonly #bucketMs: number;
  readonly #byRate: boolean;
  #bucketStart: number;
  #state: BreakerState = 'closed';
  #consecutive = 0;
  /** Times opened since it was last closed: the exponent of the open duration's backoff. */
  #opens = 0;
  #rejections = 0;
  #live = true;

  /** `destination`: host:port, for logs and messages. */
  constructor(policy: BreakerPolicy, clock: Clock, events: TargetEvents, destination: string, policyName: string) {
    this.policy = policy;
    this.#clock = clock;
    this.#events = events;
    this.destination = destination;
    this.#message = `the circuit breaker of ${destination} (policy ${policyName})`;
    this.#bucketMs = policy.windowMs / BUCKETS;
    this.#byRate = policy.errorPercent > 0;
    this.#bucketStart = clock.now();
    this.#cb = new CircuitBreaker(guarded, {
      name: destination,
      // Only probes (and refused tries) go through fire(): this bounds the probe alone. The
      // requests' deadlines are the timeout layers'.
      timeout: PROBE_TIMEOUT_MS,
      resetTimeout: policy.openMs,
      errorThresholdPercentage: policy.errorPercent,
      volumeThreshold: policy.minRequests,
      rollingCountTimeout: policy.windowMs,
      rollingCountBuckets: BUCKETS,
      rollingPercentilesEnabled: false,
      // No interval timers per destination: the window is rotated from the clock as counts arrive.
      enableSnapshots: false,
      rotateBucketController: this.#rotate,
    });
    // Before opossum's own 'open' listener starts its timer: this open period's length.
    // opossum reads options.resetTimeout when the timer starts, and has no other way to
    // vary it (its typings omit `options`; the unit test notices if that ever changes).
    const options = (this.#cb as unknown as { options: { resetTimeout: number } }).options;
    this.#cb.prependListener('open', () => {
      this.#opens++;
      options.resetTimeout = openDurationMs(policy, this.#opens);
    });
    this.#cb.on('open', () => this.#enter('open'));
    this.#cb.on('halfOpen', () => this.#enter('half_open'));
    this.#cb.on('close', () => {
      this.#opens = 0;
      this.#enter('closed');
    });
    this.#cb.on('reject', () => {
      this.#rejections++;
      if (this.#live) this.#events.breakerRejected();
    });
    events.breaker(undefined, 'closed', destination);
  }

  get state(): BreakerState {
    return this.#state;
  }

  /**
   * A ticket for one try, or undefined when the breaker refuses it (open, or half-open
   * with its probe out). While closed the ticket is the breaker itself: nothing is made.
   */
  admit(): BreakerTicket | undefined {
    if (this.#state === 'closed') return this;
    let probe: BreakerTicket | undefined;
    // opossum runs the guarded call at once when it admits it (the probe), so `probe` is set
    // on return; when it refuses, the returned promise is rejected and nothing ran.
    this.#cb
      .fire(
        () =>
          new Promise<void>((resolve, reject) => {
            probe = { report: (outcome) => (this.#counts(outcome) ? reject(new ProbeFailed(outcome)) : resolve()) };
          }),
      )
      .catch(ignore);
    return probe;
  }

  /** The outcome of a try admitted while closed. Outcomes that arrive after it opened tell nothing new and are dropped. */
  report(outcome: TryOutcome): void {
    if (this.#state !== 'closed' || outcome === 'ignored') return;
    if (this.#byRate) this.#tick();
    if (!this.#counts(outcome)) {
      this.#consecutive = 0;
      if (this.#byRate) this.#cb.emit('fire');
      return;
    }
    if (this.#byRate) {
      this.#cb.emit('fire');
      this.#cb.emit('failure');
    }
    const { consecutiveFailures, errorPercent, minRequests } = this.policy;
    if (consecutiveFailures > 0 && ++this.#consecutive >= consecutiveFailures) {
      this.#cb.open();
      return;
    }
    if (this.#byRate) {
      const { fires, failures } = this.#window();
      if (fires >= minRequests && failures * 100 > errorPercent * fires) this.#cb.open();
    }
  }

  /** The answer to a try the breaker refused: 503 UO, circuit_open. */
  openError(): MeshletError {
    return new MeshletError('MESHLET_ERR_CIRCUIT_OPEN', `${this.#message} is ${this.#state === 'open' ? 'open' : 'half-open, its probe under way'}`);
  }

  snapshot(): Record<string, number | string> {
    const { fires, failures } = this.#window();
    return { state: this.#state, consecutiveFailures: this.#consecutive, windowRequests: fires, windowFailures: failures, rejections: this.#rejections, opens: this.#opens };
  }

  /** Forgotten (a reload, or too many destinations): its state no longer counts in the metrics. */
  dispose(): void {
    if (!this.#live) return;
    this.#events.breaker(this.#state, undefined, this.destination);
    this.#live = false;
  }

  #counts(outcome: TryOutcome): boolean {
    if (outcome === 'success' || outcome === 'ignored') return false;
    const on = this.policy.failureOn;
    return on.has(outcome) || (outcome === 'gateway-error' && on.has('5xx'));
  }

  #enter(state: BreakerState): void {
    const from = this.#state;
    if (from === state) return;
    this.#state = state;
    this.#consecutive = 0;
    if (this.#live) this.#events.breaker(from, state, this.destination);
  }

  /** Rotates opossum's window for the buckets that ended since the last count. */
  #tick(): void {
    const elapsed = this.#clock.now() - this.#bucketStart;
    if (elapsed < this.#bucketMs) return;
    const ended = Math.floor(elapsed / this.#bucketMs);
    for (let i = Math.min(ended, BUCKETS); i > 0; i--) this.#rotate.emit('rotate');
    this.#bucketStart += ended * this.#bucketMs;
  }

  #window(): { fires: number; failures: number } {
    this.#tick();
    let fires = 0;
    let failures = 0;
    for (const bucket of this.#cb.status.window) {
      fires += bucket.fires;
      failures += bucket.failures;
    }
    return { fires, failures };
  }
}

/** How long the `opens`-th open period in a row lasts: openDuration doubled each time, at most maxOpenDuration. */
export function openDurationMs(policy: BreakerPolicy, opens: number): number {
  return Math.min(policy.maxOpenMs, policy.openMs * 2 ** Math.min(30, Math.max(0, opens - 1)));
}

const BREAKER_LIMIT = 10_000;

/**
 * The breakers of one policy table, one per (policy, destination), made on first use.
 * The HTTP request stack and the opaque TCP connect path of a destination find the same one.
 */
export class Breakers {
  readonly #clock: Clock;
  readonly #byPolicy = new Map<Policy, Map<string, EndpointBreaker>>();
  #count = 0;

  constructor(clock: Clock) {
    this.#clock = clock;
  }

  /** The target's breaker (kept on it as its 'breaker' state), or undefined when its policy has none. */
  forTarget(target: Target): EndpointBreaker | undefined {
    const policy = target.policy.breaker;
    if (policy === undefined) return undefined;
    let byDst = this.#byPolicy.get(target.policy);
    if (byDst === undefined) this.#byPolicy.set(target.policy, (byDst = new Map()));
    let breaker = byDst.get(target.dst.key);
    if (breaker === undefined) {
      // A proxy that talks to ever new destinations starts afresh rather than grow without bound.
      if (this.#count >= BREAKER_LIMIT) this.dispose();
      breaker = new EndpointBreaker(policy, this.#clock, target.events, formatHostPort(target.dst.address, target.dst.port), target.policy.name);
      byDst.set(target.dst.key, breaker);
      this.#count++;
    }
    target.state.set('breaker', breaker);
    return breaker;
  }

  /** Every breaker, with its destination as /clusters names it (`host:port`). */
  *entries(): Generator<[string, EndpointBreaker]> {
    for (const byDst of this.#byPolicy.values()) for (const breaker of byDst.values()) yield [breaker.destination, breaker];
  }

  dispose(): void {
    for (const byDst of this.#byPolicy.values()) for (const breaker of byDst.values()) breaker.dispose();
    this.#byPolicy.clear();
    this.#count = 0;
  }
}

/** What an error that ended a try says about the destination. */
export function errorOutcome(err: unknown, req: ProxyRequest): TryOutcome {
  // Aborted: by a deadline of ours (the upstream was too slow) or by the client (it says nothing).
  if (req.abort.aborted) return req.abort.deadlineExpired ? 'timeout' : 'ignored';
  if (!isMeshletError(err)) return 'ignored';
  switch (err.upstreamFailure) {
    case 'connect-failure':
      return 'connect-failure';
    case 'reset':
      return 'reset';
    case 'timeout':
      return 'timeout';
    // An upstream that does not speak HTTP is answered 502: a gateway error.
    case 'protocol':
      return 'gateway-error';
    // A refused stream is a live server declining more work (RFC 9113 8.7), not a failing one.
    default:
      return 'ignored';
  }
}

/** What a response head says about the destination (502–504 are also 5xx: see #counts). */
export function statusOutcome(status: number): TryOutcome {
  if (status < 500) return 'success';
  return status >= 502 && status <= 504 ? 'gateway-error' : '5xx';
}

/**
 * The same for a gRPC call's answer: a trailers-only UNAVAILABLE (14) is the upstream's 503,
 * INTERNAL (13) its 500 (gRPC's own mapping of HTTP statuses). A status in the trailers of
 * a response with a body comes after the head, when the try has been counted.
 */
export function responseOutcome(req: ProxyRequest, res: ProxyResponse): TryOutcome {
  if (res.status !== 200 || !req.grpc || res.body !== undefined) return statusOutcome(res.status);
  const code = get(res.headers, 'grpc-status');
  return code === '14' ? 'gateway-error' : code === '13' ? '5xx' : 'success';
}

/**
 * The target's circuit breaker around the upstream call (innermost: each try counts, and
 * a refused try never leaves). Refused: 503 UO `circuit_open` (gRPC UNAVAILABLE). Nothing
 * at all when the policy has no breaker.
 */
export function breakerLayer(target: Target, breakers: Breakers): Layer<ProxyRequest, ProxyResponse> {
  const breaker = breakers.forTarget(target);
  if (breaker === undefined) return (next) => next;
  return (next) => (req) => {
    const ticket = breaker.admit();
    if (ticket === undefined) return Promise.reject(breaker.openError());
    return next(req).then(
      (res) => {
        ticket.report(responseOutcome(req, res));
        return res;
      },
      (err: unknown) => {
        ticket.report(errorOutcome(err, req));
        throw err;
      },
    );
  };
}
