import { MeshletError, type ErrorCode } from '../errors.ts';
import type { ResponseFlag } from './connection.ts';

// What each error the proxy answers for itself becomes: the cause named in the
// `meshlet-error` header, the HTTP status, the response flag and the gRPC status. The
// answers are built in proxy/http/error-response.ts; telemetry reads the same table, so
// a request's log line says what the client was told.

export interface ErrorShape {
  readonly cause: string;
  readonly status: number;
  readonly flag: ResponseFlag;
  /** grpc-status (https://grpc.github.io/grpc/core/md_doc_statuscodes.html). */
  readonly grpc: number;
}

const SHAPES: Partial<Record<ErrorCode, ErrorShape>> = {
  MESHLET_ERR_UPSTREAM_CONNECT: { cause: 'upstream_connect_failure', status: 503, flag: 'UF', grpc: 14 },
  MESHLET_ERR_UPSTREAM_RESET: { cause: 'upstream_reset', status: 503, flag: 'UC', grpc: 14 },
  MESHLET_ERR_UPSTREAM_TIMEOUT: { cause: 'upstream_timeout', status: 504, flag: 'UT', grpc: 4 },
  MESHLET_ERR_UPSTREAM_PROTOCOL: { cause: 'upstream_protocol_error', status: 502, flag: 'UPE', grpc: 13 },
  MESHLET_ERR_LOOP: { cause: 'loop', status: 508, flag: 'NR', grpc: 13 },
  MESHLET_ERR_BAD_REQUEST: { cause: 'bad_request', status: 400, flag: 'DPE', grpc: 13 },
  MESHLET_ERR_REQUEST_HEADERS_TOO_LARGE: { cause: 'request_header_too_large', status: 431, flag: 'DPE', grpc: 13 },
  MESHLET_ERR_REQUEST_HEADERS_TIMEOUT: { cause: 'request_header_timeout', status: 408, flag: 'DPE', grpc: 4 },
  // A limit of the destination's (or the inbound port's) policy was full: shed, not queued without end.
  MESHLET_ERR_OVERFLOW: { cause: 'overflow', status: 503, flag: 'UO', grpc: 14 },
  // The destination's circuit breaker is open: nothing was sent. UO as in Envoy, with its own cause.
  MESHLET_ERR_CIRCUIT_OPEN: { cause: 'circuit_open', status: 503, flag: 'UO', grpc: 14 },
  // The inbound port's local rate limit; the answer carries Retry-After. RESOURCE_EXHAUSTED, as Envoy's.
  MESHLET_ERR_RATE_LIMITED: { cause: 'rate_limited', status: 429, flag: 'RL', grpc: 8 },
};

/** The same answers once retries ran out: the flag gains URX (`UF,URX`), made once here, not per error. */
const EXHAUSTED: Partial<Record<ErrorCode, ErrorShape>> = Object.fromEntries(
  Object.entries(SHAPES).map(([code, shape]) => [code, { ...shape, flag: shape.flag === '-' ? 'URX' : `${shape.flag},URX` }]),
);

/** Anything not classified is the proxy's own failure: 502, gRPC INTERNAL. */
const UNKNOWN: ErrorShape = { cause: 'proxy_error', status: 502, flag: 'UPE', grpc: 13 };

/** Whether `err` is one of ours with an answer of its own in the table above. */
export function hasShape(err: unknown): err is MeshletError {
  return err instanceof MeshletError && SHAPES[err.code] !== undefined;
}

export function shapeOf(err: unknown): ErrorShape {
  if (!(err instanceof MeshletError)) return UNKNOWN;
  return (err.retriesExhausted ? EXHAUSTED[err.code] : SHAPES[err.code]) || UNKNOWN;
}

/** The HTTP status of the answer to `err`: gRPC gets a trailers-only 200 carrying grpc-status. */
export function answerStatus(shape: ErrorShape, grpc: boolean): number {
  return grpc ? 200 : shape.status;
}
