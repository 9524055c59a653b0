// One base class for every error meshlet raises on purpose. The code is stable and
// documented; the message is for humans. Whatever turns errors into responses, exit
// codes or log lines switches on `code`, never on message text.
export type ErrorCode =
  | 'MESHLET_ERR_CONFIG'
  | 'MESHLET_ERR_USAGE'
  | 'MESHLET_ERR_ORIGINAL_DST'
  | 'MESHLET_ERR_LOOP'
  | 'MESHLET_ERR_LISTEN'
  | 'MESHLET_ERR_NOT_READY'
  | 'MESHLET_ERR_PROXY_UID'
  | 'MESHLET_ERR_UPSTREAM_CONNECT'
  | 'MESHLET_ERR_UPSTREAM_TIMEOUT'
  | 'MESHLET_ERR_UPSTREAM_RESET'
  | 'MESHLET_ERR_UPSTREAM_PROTOCOL'
  | 'MESHLET_ERR_BAD_REQUEST'
  | 'MESHLET_ERR_REQUEST_HEADERS_TOO_LARGE'
  | 'MESHLET_ERR_REQUEST_HEADERS_TIMEOUT'
  | 'MESHLET_ERR_IDLE_TIMEOUT'
  | 'MESHLET_ERR_OVERFLOW'
  | 'MESHLET_ERR_CIRCUIT_OPEN'
  | 'MESHLET_ERR_RATE_LIMITED'
  | 'MESHLET_ERR_IPTABLES_MISSING'
  | 'MESHLET_ERR_IPTABLES_PERMISSION'
  | 'MESHLET_ERR_IPTABLES_KERNEL'
  | 'MESHLET_ERR_IPTABLES_APPLY'
  | 'MESHLET_ERR_VALIDATION'
  | 'MESHLET_ERR_ENVIRONMENT'
  | 'MESHLET_ERR_SPIFFE_ID'
  | 'MESHLET_ERR_CA'
  | 'MESHLET_ERR_IDENTITY'
  | 'MESHLET_ERR_PEER_IDENTITY'
  | 'MESHLET_ERR_MANIFEST'
  | 'MESHLET_ERR_INJECT';

/**
 * How an exchange with an upstream failed, set once where the error is classified
 * (proxy/http/upstream-errors.ts, the timeout layer): retries decide on it, never on text.
 */
export type UpstreamFailure = 'connect-failure' | 'refused-stream' | 'reset' | 'timeout' | 'protocol';

export interface MeshletErrorOptions {
  cause?: unknown;
  upstreamFailure?: UpstreamFailure;
  /** The request provably never reached the upstream (no connection, refused stream): always safe to send again. */
  unsent?: boolean;
  /** Retries were allowed and ran out (attempts or budget): the answer's flag gains URX. */
  retriesExhausted?: boolean;
  /** Seconds the client should wait before trying again (429 from the rate limit). */
  retryAfterSeconds?: number;
}

export class MeshletError extends Error {
  readonly code: ErrorCode;
  readonly upstreamFailure: UpstreamFailure | undefined;
  readonly unsent: boolean;
  readonly retriesExhausted: boolean;
  readonly retryAfterSeconds: number | undefined;

  constructor(code: ErrorCode, message: string, options?: MeshletErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.name = 'MeshletError';
    this.upstreamFailure = options?.upstreamFailure;
    this.unsent = options?.unsent ?? false;
    this.retriesExhausted = options?.retriesExhausted ?? false;
    this.retryAfterSeconds = options?.retryAfterSeconds;
  }
}

export function isMeshletError(err: unknown, code?: ErrorCode): err is MeshletError {
  return err instanceof MeshletError && (code === undefined || err.code === code);
}

/** Best-effort text of anything thrown, for one-line messages. */
export function describeError(err: unknown): string {
  if (err instanceof Error) {
    const errno = (err as NodeJS.ErrnoException).code;
    return errno && !err.message.includes(errno) ? `${errno}: ${err.message}` : err.message;
  }
  return String(err);
}
