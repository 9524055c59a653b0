import { isMeshletError, MeshletError } from '../../errors.ts';
import { isMtlsHandshakeFailure } from '../tcp/connectors.ts';
import { hasShape } from '../../pipeline/error-shape.ts';

// Errors on the way to an upstream, told apart by when they happened: before the
// connection was made (connect failure), after it but before the response head (reset),
// or because the upstream's bytes were not HTTP (protocol error).

const CONNECT_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'ETIMEDOUT', 'EHOSTDOWN']);
// ERR_HTTP2_ERROR is nghttp2 refusing what the upstream sent (bytes that are not HTTP/2,
// a frame or header HTTP/2 forbids). meshlet's own HTTP/1.1 parser raises
// MESHLET_ERR_UPSTREAM_PROTOCOL itself, which keeps its shape above.
const PROTOCOL_CODES = new Set(['ERR_HTTP2_ERROR', 'ERR_HTTP2_PROTOCOL_ERROR', 'ERR_HTTP2_INVALID_HEADER_VALUE']);

export function connectFailure(err: unknown): MeshletError {
  if (isMeshletError(err, 'MESHLET_ERR_UPSTREAM_CONNECT')) return err;
  return new MeshletError('MESHLET_ERR_UPSTREAM_CONNECT', `cannot connect upstream: ${describe(err)}`, { cause: err });
}

/** Classifies an error that ended an exchange before the response head arrived. */
export function beforeResponse(err: unknown, connected: boolean): MeshletError {
  // Ours already, and with an answer of its own (e.g. a connect timeout). Others, such as
  // the peer identity check refusing a sidecar, are classified by their code like any error.
  if (hasShape(err)) return err;
  const code = (err as NodeJS.ErrnoException).code ?? '';
  if (!connected || CONNECT_CODES.has(code) || isMtlsHandshakeFailure(code)) return connectFailure(err);
  if (PROTOCOL_CODES.has(code)) {
    return new MeshletError('MESHLET_ERR_UPSTREAM_PROTOCOL', `upstream sent an invalid response: ${describe(err)}`, { cause: err });
  }
  return new MeshletError('MESHLET_ERR_UPSTREAM_RESET', `upstream closed or reset before the response: ${describe(err)}`, { cause: err });
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as NodeJS.ErrnoException).code;
  return code && !err.message.includes(code) ? `${code} ${err.message}` : err.message;
}
