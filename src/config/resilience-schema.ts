import { z } from 'zod';
import { cidr, duration, port, portKey, showValue, wholeNumber } from './fields.ts';

// `resilience:` — how long to wait, when to retry, how much load to accept, per
// destination (docs/resilience.md). `defaults` holds every field with its default; each
// entry of `destinations` overrides some of them for the destinations it matches (the
// first that matches wins); `inbound` limits what this pod's apps are sent, per port.
// A timeout of 0s and a limit of 0 mean "none".

/** What a retry may be for (docs/resilience.md); a request that never reached the upstream is always retried. */
export const RETRY_ON = [
  'connect-failure',
  'refused-stream',
  'reset',
  '5xx',
  'gateway-error',
  'retriable-status-codes',
  'cancelled',
  'deadline-exceeded',
  'internal',
  'resource-exhausted',
  'unavailable',
] as const;
export type RetryOn = (typeof RETRY_ON)[number];

/** What a circuit breaker counts as a failure of its destination (docs/resilience.md). */
export const BREAKER_FAILURE_ON = ['connect-failure', 'reset', 'timeout', '5xx', 'gateway-error'] as const;
export type BreakerFailureOn = (typeof BREAKER_FAILURE_ON)[number];

const percent = z
  .number({ error: (issue) => `expected a percentage (0–100), got ${showValue(issue.input)}` })
  .refine((n) => n >= 0 && n <= 100, { error: (issue) => `${showValue(issue.input)} is out of range 0–100` });

const count = (what: string) => wholeNumber(what, 0, 1_000_000);

const AUTHORITY = /^(\*|\*\.[a-z0-9_.-]+|[a-z0-9_.-]+|\[[0-9a-f:.]+\])(:\d{1,5})?$/i;

/** `host`, `host:port`, `*.suffix[:port]` or `*`; a name without a port matches every port. */
const authorityPattern = z.string().superRefine((text, ctx) => {
  const port = AUTHORITY.exec(text)?.[2];
  if (!AUTHORITY.test(text) || (port !== undefined && (Number(port.slice(1)) < 1 || Number(port.slice(1)) > 65535))) {
    ctx.addIssue({ code: 'custom', message: `${showValue(text)} is not an authority pattern (host, host:port, *.suffix or *.suffix:port)` });
  }
});

/** The fields of a policy, each optional: a destination's override of `defaults`. */
const policyOverride = {
  /** The whole request, all tries, until the response head (0s: none). gRPC's grpc-timeout shortens it. */
  timeout: duration.optional(),
  /** Each try, until its response head (0s: none). */
  perTryTimeout: duration.optional(),
  /** The TCP (and mTLS) connection to the destination; outbound.connectTimeout when unset. */
  connectTimeout: duration.optional(),
  retries: z
    .strictObject({
      /** Tries in all, the first included (1: no retries). */
      attempts: wholeNumber('a number of attempts', 1, 10).optional(),
      /** What else is retried, besides requests that never reached the upstream. */
      retryOn: z.array(z.enum(RETRY_ON)).optional(),
      /** The statuses `retriable-status-codes` retries. */
      retriableStatusCodes: z.array(wholeNumber('an HTTP status', 100, 599)).optional(),
      /** Retry POST and PATCH after a response (or a reset) too; off: only idempotent methods are. */
      nonIdempotent: z.boolean().optional(),
      /** Exponential backoff with full jitter: try n waits up to min(max, base × 2^(n-2)). */
      backoffBase: duration.optional(),
      backoffMax: duration.optional(),
      budget: z
        .strictObject({
          /** Retries allowed as a percentage of the requests in the window. */
          percent: percent.optional(),
          /** Retries always allowed per second of the window, however few the requests. */
          minPerSecond: count('a number of retries').optional(),
          window: duration.optional(),
        })
        .optional(),
    })
    .optional(),
  limits: z
    .strictObject({
      /** Connections open to the destination (0: no limit): HTTP/1.1 requests wait for one, up to maxPendingRequests; opaque TCP beyond it is reset. */
      maxConnections: count('a number of connections').optional(),
      /** Requests in flight to the destination (0: no limit); more wait, up to maxPendingRequests. */
      maxConcurrentRequests: count('a number of requests').optional(),
      /** Requests waiting for one of maxConcurrentRequests; beyond, 503 UO. */
      maxPendingRequests: count('a number of requests').optional(),
      /** Retries in flight to the destination (0: no limit); beyond, the failure is answered as it is. */
      maxConcurrentRetries: count('a number of retries').optional(),
    })
    .optional(),
  circuitBreaker: z
    .strictObject({
      /** Opens after this many failures in a row (0: not by count). */
      consecutiveFailures: count('a number of failures').optional(),
      /** Opens when more than this percentage of the window's requests failed (0: not by rate). */
      errorPercent: percent.optional(),
      /** The rolling window errorPercent is measured over. */
      window: duration.optional(),
      /** Requests the window must hold before errorPercent can open the breaker. */
      minRequests: count('a number of requests').optional(),
      /** What counts as a failure. */
      failureOn: z.array(z.enum(BREAKER_FAILURE_ON)).min(1).optional(),
      /** How long it stays open before one probe may go; doubled each time a probe fails, up to maxOpenDuration. */
      openDuration: duration.optional(),
      maxOpenDuration: duration.optional(),
    })
    .optional(),
  fault: z
    .strictObject({
      delay: z.strictObject({ percent, duration }).optional(),
      abort: z
        .strictObject({
          percent,
          status: wholeNumber('an HTTP status', 200, 599).optional(),
          /** The grpc-status of the aborted gRPC calls (UNAVAILABLE when unset). */
          grpcStatus: wholeNumber('a gRPC status code', 0, 16).optional(),
        })
        .optional(),
    })
    .optional(),
};

const destination = z
  .strictObject({
    /** Names the policy in metrics and in /clusters; `destinations[i]` when unset. */
    name: z.string().min(1).optional(),
    match: z
      .strictObject({
        /** The request's authority (Host); any of these. Opaque TCP has none, so it never matches a rule with one. */
        authority: z.array(authorityPattern).min(1).optional(),
        /** The original destination address; any of these. */
        cidrs: z.array(cidr).min(1).optional(),
        /** The original destination port; any of these. */
        ports: z.array(port).min(1).optional(),
      })
      .refine((m) => m.authority !== undefined || m.cidrs !== undefined || m.ports !== undefined, {
        error: 'needs at least one of authority, cidrs or ports',
      }),
    ...policyOverride,
  });

/** A token bucket: requests beyond it get 429 with Retry-After. */
const rateLimit = z.strictObject({
  requestsPerSecond: z.number().positive({ error: (issue) => `expected a rate above 0, got ${showValue(issue.input)}` }),
  /** Requests allowed at once above the rate; requestsPerSecond (one second's worth) when unset. */
  burst: wholeNumber('a number of requests', 1, 1_000_000).optional(),
});

/** A path prefix as sent (`/api/`, `/pkg.Service/`): compared byte for byte, without decoding. */
const pathPrefix = z.string().superRefine((text, ctx) => {
  if (!text.startsWith('/')) ctx.addIssue({ code: 'custom', message: `${showValue(text)} is not a path prefix: it must start with /` });
});

const inboundPort = z.strictObject({
  /** Towards the app on this port: the whole request until its response head (0s: none). */
  timeout: policyOverride.timeout,
  /** Towards the app: each try (0s: none). */
  perTryTimeout: policyOverride.perTryTimeout,
  /** Towards the app: tries in all and what is retried (by default one try: the caller's sidecar retries). */
  retries: policyOverride.retries,
  /** Connections to this port at once (0: no limit); more are reset. */
  maxConnections: count('a number of connections').optional(),
  /** Requests to this port at once (0: no limit); more get 503 UO. */
  maxConcurrentRequests: count('a number of requests').optional(),
  /** A token bucket per port: requests beyond it get 429 with Retry-After. */
  rateLimit: rateLimit.optional(),
  /** Rate limits per route (path prefix): the first route whose prefix starts the path applies, before the port's. */
  routes: z.array(z.strictObject({ pathPrefix, rateLimit })).min(1).optional(),
});

export const resilienceSchema = z
  .strictObject({
    defaults: z
      .strictObject({
        timeout: duration.prefault('0s'),
        perTryTimeout: duration.prefault('0s'),
        connectTimeout: duration.optional(),
        retries: z
          .strictObject({
            attempts: wholeNumber('a number of attempts', 1, 10).default(2),
            retryOn: z.array(z.enum(RETRY_ON)).default([]),
            retriableStatusCodes: z.array(wholeNumber('an HTTP status', 100, 599)).default([503]),
            nonIdempotent: z.boolean().default(false),
            backoffBase: duration.prefault('25ms'),
            backoffMax: duration.prefault('250ms'),
            budget: z
              .strictObject({
                percent: percent.default(20),
                minPerSecond: count('a number of retries').default(10),
                window: duration.prefault('10s'),
              })
              .prefault({}),
          })
          .prefault({}),
        limits: z
          .strictObject({
            maxConnections: count('a number of connections').default(0),
            maxConcurrentRequests: count('a number of requests').default(0),
            maxPendingRequests: count('a number of requests').default(1024),
            maxConcurrentRetries: count('a number of retries').default(0),
          })
          .prefault({}),
        circuitBreaker: z
          .strictObject({
            consecutiveFailures: count('a number of failures').default(0),
            errorPercent: percent.default(0),
            window: duration.prefault('10s'),
            minRequests: count('a number of requests').default(20),
            failureOn: z.array(z.enum(BREAKER_FAILURE_ON)).min(1).default(['connect-failure', 'reset', 'timeout', '5xx']),
            openDuration: duration.prefault('5s'),
            maxOpenDuration: duration.prefault('60s'),
          })
          .prefault({}),
        fault: policyOverride.fault.default({}),
      })
      .prefault({}),
    destinations: z.array(destination).default([]),
    inbound: z
      .strictObject({
        /** Connections on the inbound listener at once, every port together (0: no limit). */
        maxConnections: count('a number of connections').default(0),
        /** Requests through the inbound listener at once, every port together (0: no limit). */
        maxConcurrentRequests: count('a number of requests').default(0),
        ports: z.record(portKey, inboundPort).default({}),
      })
      .prefault({}),
  })
  .prefault({});

export type ResilienceConfig = z.output<typeof resilienceSchema>;
export type DestinationConfig = ResilienceConfig['destinations'][number];
export type InboundPortConfig = ResilienceConfig['inbound']['ports'][string];
