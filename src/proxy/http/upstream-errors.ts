import { isMeshletError, MeshletError } from '../../errors.ts';
import { isMtlsHandshakeFailure } from '../tcp/connectors.ts';
import { hasShape } from '../../pipeline/error-shape.ts';

// Errors on the way to an upstream, told apart by when they happened: before the
// connection was made (connect failure), after it but before the response head (reset),
// or because the upstream's bytes were not HTTP (protocol error). Each gets its
// `failure` (and `unsent` when the request never reached the upstream) here, once: the
// retry layer decides on those, never on the message.

const CONNECT_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'ETIMEDOUT', 'EHOSTDOWN']);
// ERR_HTTP2_ERROR is nghttp2 refusing what the upstream sent (bytes that are not HTTP/2,
// a frame or header HTTP/2 forbids). meshlet's own HTTP/1.1 parser raises
// MESHLET_ERR_UPSTREAM_PROTOCOL itself, which keeps its shape above.
const PROTOCOL_CODES = new Set(['ERR_HTTP2_ERROR', 'ERR_HTTP2_PROTOCOL_ERROR', 'ERR_HTTP2_INVALID_HEADER_VALUE']);

const CONNECT_FAILURE = { upstreamFailure: 'connect-failure', unsent: true } as const;

export function connectFailure(err: unknown): MeshletError {
  if (isMeshletError(err, 'MESHLET_ERR_UPSTREAM_CONNECT')) {
    // Made where the connection timed out (the pools' timers): classified here, as every other.
    return err.unsent ? err : new MeshletError(err.code, err.message, { cause: err.cause, ...CONNECT_FAILURE });
  }
  return new MeshletError('MESHLET_ERR_UPSTREAM_CONNECT', `cannot connect upstream: ${describe(err)}`, { cause: err, ...CONNECT_FAILURE });
}

/** The upstream refused the HTTP/2 stream (RFC 9113 8.7: it did not process it): safe to send again. */
export function refusedStream(err: unknown): MeshletError {
  return new MeshletError('MESHLET_ERR_UPSTREAM_RESET', `upstream refused the stream: ${describe(err)}`, { cause: err, upstreamFailure: 'refused-stream', unsent: true });
}

/** Classifies an error that ended an exchange before the response head arrived. */
export function beforeResponse(err: unknown, connected: boolean): MeshletError {
  // Ours already, and with an answer of its own (e.g. a connect timeout). Others, such as
  // the peer identity check refusing a sidecar, are classified by their code like any error.
  if (isMeshletError(err, 'MESHLET_ERR_UPSTREAM_CONNECT')) return connectFailure(err);
  if (hasShape(err)) return err;
  const code = (err as NodeJS.ErrnoException).code ?? '';
  if (!connected || CONNECT_CODES.has(code) || isMtlsHandshakeFailure(code)) return connectFailure(err);
  if (PROTOCOL_CODES.has(code)) {
    return new MeshletError('MESHLET_ERR_UPSTREAM_PROTOCOL', `upstream sent an invalid response: ${describe(err)}`, { cause: err, upstreamFailure: 'protocol' });
  }
  return new MeshletError('MESHLET_ERR_UPSTREAM_RESET', `upstream closed or reset before the response: ${describe(err)}`, { cause: err, upstreamFailure: 'reset' });
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as NodeJS.ErrnoException).code;
  return code && !err.message.includes(code) ? `${code} ${err.message}` : err.message;
}
