import { isMeshletError, MeshletError } from '../errors.ts';
import { bodyAbort } from '../pipeline/body.ts';
import type { Handler, Layer } from '../pipeline/compose.ts';
import type { ProxyRequest, ProxyResponse } from '../pipeline/exchange.ts';
import { get } from '../pipeline/headers.ts';
import { backoffMs, retryAfterMs } from './backoff.ts';
import { RetryBudget } from './budget.ts';
import { sleep, type Clock } from './clock.ts';
import type { RetryOutcome, RetryReason } from './events.ts';
import type { RetryPolicy } from './policy.ts';
import { ReplayableBody } from './replay-body.ts';
import type { Target } from './targets.ts';
import { timeoutError, withDeadline } from './timeout.ts';

// Retries, per the destination's policy. What is retried is decided on the error's
// classification (MeshletError.upstreamFailure / unsent, set where it was made) or on the
// response's status, never on a message:
//   - a request that never reached the upstream (connect failure, refused stream, or a
//     peer sidecar's 503 saying it could not reach its app): always, whatever the method,
//     while attempts remain;
//   - a reset, a per-try timeout or a matching status: only when retryOn names it, and
//     only for idempotent methods unless retries.nonIdempotent;
//   - a trailers-only gRPC answer whose grpc-status retryOn names: any method (every gRPC
//     call is a POST; naming the code is the opt-in, as in gRPC's own retry policy).
// Each retry takes from the destination's budget and waits a jittered backoff (or the
// response's Retry-After, when it is within backoffMax). A body is replayed from a
// buffer of at most 64 KiB; a larger one is not retried. Out of attempts or budget, the
// last answer goes back flagged URX.

export const MAX_REPLAY_BYTES = 64 * 1024;

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

const GRPC_CODES: Record<string, 'cancelled' | 'deadline-exceeded' | 'resource-exhausted' | 'internal' | 'unavailable'> = {
  '1': 'cancelled',
  '4': 'deadline-exceeded',
  '8': 'resource-exhausted',
  '13': 'internal',
  '14': 'unavailable',
};

/** Why `err` deserves another try under `policy`; undefined when it does not. */
export function errorReason(err: unknown, req: ProxyRequest, policy: RetryPolicy): RetryReason | undefined {
  if (!isMeshletError(err) || req.abort.aborted) return undefined;
  const failure = err.upstreamFailure;
  if (err.unsent && (failure === 'connect-failure' || failure === 'refused-stream')) return failure;
  const on = policy.retryOn;
  if (!policy.nonIdempotent && !IDEMPOTENT.has(req.method)) return undefined;
  if (failure === 'reset' && on.has('reset')) return 'reset';
  if (failure === 'timeout' && (on.has('5xx') || on.has('gateway-error') || on.has('deadline-exceeded'))) return 'timeout';
  return undefined;
}

/**
 * A peer sidecar's own 503 saying its app could not be reached (or its limit was full):
 * the request never reached the app, so it is as safe to send again as a connect failure
 * of ours. Trusted only from a meshed destination (the answer came over verified mTLS).
 */
function peerNeverReached(res: ProxyResponse, req: ProxyRequest): RetryReason | undefined {
  if (res.status !== 503 || req.conn.upstreamPeer === undefined) return undefined;
  const cause = get(res.headers, 'meshlet-error');
  return cause === 'upstream_connect_failure' ? 'connect-failure' : cause === 'overflow' ? 'overflow' : undefined;
}

/** Why `res` deserves another try under `policy`; undefined when it does not. */
export function responseReason(res: ProxyResponse, req: ProxyRequest, policy: RetryPolicy): RetryReason | undefined {
  const on = policy.retryOn;
  if (req.grpc && res.body === undefined) {
    const code = get(res.headers, 'grpc-status');
    const condition = code === undefined ? undefined : GRPC_CODES[code];
    if (condition !== undefined && on.has(condition)) return 'grpc-status';
  }
  const status = res.status;
  if (status < 500 && !(on.has('retriable-status-codes') && policy.retriableStatusCodes.has(status))) return undefined;
  if (!policy.nonIdempotent && !IDEMPOTENT.has(req.method)) return undefined;
  if (on.has('5xx') && status >= 500) return 'status';
  if (on.has('gateway-error') && status >= 502 && status <= 504) return 'status';
  if (on.has('retriable-status-codes') && policy.retriableStatusCodes.has(status)) return 'status';
  return undefined;
}

/** The same failure, marked so its answer carries URX. */
function exhausted(err: unknown): unknown {
  if (!(err instanceof MeshletError) || err.retriesExhausted) return err;
  return new MeshletError(err.code, err.message, {
    cause: err.cause,
    ...(err.upstreamFailure ? { upstreamFailure: err.upstreamFailure } : {}),
    unsent: err.unsent,
    retriesExhausted: true,
  });
}

/** The retry layer of `target` (with the per-try timeout inside it); nothing at all when the policy has neither. */
export function retryLayer(target: Target, clock: Clock): Layer<ProxyRequest, ProxyResponse> {
  const { retries: policy, perTryTimeoutMs, name } = target.policy;
  if (policy.attempts <= 1 && perTryTimeoutMs === 0) return (next) => next;
  const events = target.events;
  const perTry = (next: Handler<ProxyRequest, ProxyResponse>): Handler<ProxyRequest, ProxyResponse> =>
    perTryTimeoutMs === 0
      ? next
      : (req) =>
          withDeadline(req, perTryTimeoutMs, next, clock, () => {
            events.timeout('per_try');
            return timeoutError('the per-try timeout', perTryTimeoutMs, name);
          });
  if (policy.attempts <= 1) return perTry;

  const budget = new RetryBudget(policy.budget, clock);
  target.state.set('budget', budget);
  const maxRetries = target.policy.limits.maxConcurrentRetries;
  let retriesInFlight = 0;
  target.state.set('retries', { snapshot: () => ({ inFlight: retriesInFlight }) });

  /** Whether another try may go, and if not, why not. */
  const admit = (attempt: number, replay: ReplayableBody | undefined, tooLarge: boolean): RetryOutcome => {
    if (tooLarge || (replay !== undefined && !replay.replayable)) return 'body_too_large';
    if (attempt >= policy.attempts) return 'attempts_exhausted';
    if (maxRetries > 0 && retriesInFlight >= maxRetries) {
      events.overflow('max_concurrent_retries');
      return 'overflow';
    }
    return budget.withdraw() ? 'sent' : 'budget_exhausted';
  };

  return (next) => {
    const tryOnce = perTry(next);
    return async (req) => {
      budget.deposit();
      const body = req.body;
      const tooLarge = body !== undefined && body.length !== undefined && body.length > MAX_REPLAY_BYTES;
      const replay = body === undefined || tooLarge ? undefined : new ReplayableBody(body, MAX_REPLAY_BYTES);
      for (let attempt = 1; ; attempt++) {
        const retry = attempt > 1;
        if (retry) retriesInFlight++;
        let res: ProxyResponse | undefined;
        let err: unknown;
        try {
          res = await tryOnce(replay ? { ...req, body: replay.attempt() } : req);
        } catch (e) {
          err = e;
        } finally {
          if (retry) retriesInFlight--;
        }
        const reason =
          res === undefined ? errorReason(err, req, policy) : (peerNeverReached(res, req) ?? (policy.onResponses ? responseReason(res, req, policy) : undefined));
        if (reason === undefined) return settle(res, err, replay);

        const wait = res === undefined ? undefined : retryAfterMs(res.headers, Date.now());
        const outcome = wait !== undefined && wait > policy.backoffMaxMs ? 'retry_after_too_long' : admit(attempt, replay, tooLarge);
        events.retry(reason, outcome);
        if (outcome !== 'sent') {
          const out = outcome === 'attempts_exhausted' || outcome === 'budget_exhausted' || outcome === 'overflow';
          if (res !== undefined) return settle(out ? { ...res, flag: res.flag === '-' ? 'URX' : res.flag } : res, undefined, replay);
          return settle(undefined, out ? exhausted(err) : err, replay);
        }
        res?.body?.cancel(bodyAbort('the response is retried'));
        if (!(await sleep(clock, wait ?? backoffMs(attempt, policy.backoffBaseMs, policy.backoffMaxMs, clock.random()), req.abort))) {
          return settle(undefined, err ?? new MeshletError('MESHLET_ERR_UPSTREAM_RESET', 'the client went away before the retry'), replay);
        }
      }
    };
  };
}

function settle(res: ProxyResponse | undefined, err: unknown, replay: ReplayableBody | undefined): ProxyResponse {
  if (res !== undefined) {
    replay?.commit();
    return res;
  }
  replay?.abandon(bodyAbort('the request failed upstream'));
  throw err;
}
