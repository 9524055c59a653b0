import { MeshletError } from '../errors.ts';
import type { Handler, Layer } from '../pipeline/compose.ts';
import { RequestAbort } from '../pipeline/abort.ts';
import { bodyAbort } from '../pipeline/body.ts';
import type { ProxyRequest, ProxyResponse } from '../pipeline/exchange.ts';
import { get } from '../pipeline/headers.ts';
import type { Clock } from './clock.ts';
import type { Target } from './targets.ts';

// Deadlines until the response head: the whole request (all tries, `timeout`, shortened
// by a gRPC client's grpc-timeout) and each try (`perTryTimeout`, in the retry layer).
// Expiry aborts what is under way upstream and answers 504 UT (gRPC DEADLINE_EXCEEDED).
// A response whose head arrived in time streams its body for as long as it takes: the
// idle timeouts (tcp.idleTimeout) end a body that stalls.

const GRPC_UNITS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };

/** grpc-timeout (`100m`, `5S`: at most 8 digits and a unit) in milliseconds; undefined when absent or malformed. */
export function parseGrpcTimeout(value: string | undefined): number | undefined {
  if (value === undefined || value.length < 2 || value.length > 9) return undefined;
  const unit = GRPC_UNITS[value[value.length - 1]!];
  const digits = value.slice(0, -1);
  if (unit === undefined || !/^\d+$/.test(digits)) return undefined;
  // Sub-millisecond deadlines still get a timer: at least 1 ms.
  return Math.max(1, Math.ceil(Number(digits) * unit));
}

/**
 * Runs `next` with a deadline: after `ms` the returned promise rejects with `expired()`
 * and the try is aborted through its own RequestAbort (the client's abort still reaches it).
 */
export function withDeadline(req: ProxyRequest, ms: number, next: Handler<ProxyRequest, ProxyResponse>, clock: Clock, expired: () => MeshletError): Promise<ProxyResponse> {
  const abort = new RequestAbort();
  const outer = req.abort;
  outer.on(() => abort.abort(outer.deadlineExpired));
  const inner: ProxyRequest = { ...req, abort };
  return new Promise((resolve, reject) => {
    let settled = false;
    const timer = clock.after(ms, () => {
      if (settled) return;
      settled = true;
      reject(expired());
      abort.abort(true);
    });
    next(inner).then(
      (res) => {
        if (settled) {
          res.body?.cancel(bodyAbort('the response came after its deadline'));
          return;
        }
        settled = true;
        timer.cancel();
        resolve(res);
      },
      (err: unknown) => {
        if (settled) return;
        settled = true;
        timer.cancel();
        reject(err);
      },
    );
  });
}

export function timeoutError(what: string, ms: number, policy: string): MeshletError {
  return new MeshletError('MESHLET_ERR_UPSTREAM_TIMEOUT', `no response within ${what} ${ms} ms (policy ${policy})`, { upstreamFailure: 'timeout' });
}

/** The whole request's deadline: the policy's `timeout`, or a gRPC client's shorter grpc-timeout. */
export function timeoutLayer(target: Target, clock: Clock): Layer<ProxyRequest, ProxyResponse> {
  const policyMs = target.policy.timeoutMs;
  return (next) => (req) => {
    let ms = policyMs;
    let what = 'the timeout';
    if (req.grpc) {
      const grpc = parseGrpcTimeout(get(req.headers, 'grpc-timeout'));
      if (grpc !== undefined && (ms === 0 || grpc < ms)) {
        ms = grpc;
        what = "the client's grpc-timeout";
      }
    }
    if (ms === 0) return next(req);
    return withDeadline(req, ms, next, clock, () => {
      target.events.timeout('total');
      return timeoutError(what, ms, target.policy.name);
    });
  };
}
