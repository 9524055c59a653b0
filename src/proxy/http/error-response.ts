import { MeshletError } from '../../errors.ts';
import { answerStatus, shapeOf } from '../../pipeline/error-shape.ts';
import type { ProxyResponse } from '../../pipeline/exchange.ts';
import { BufferedBody } from '../../pipeline/body.ts';

// The one place where an error becomes a response the proxy makes itself (docs/proxy.md
// lists the codes and why; the table is pipeline/error-shape.ts, which telemetry reads
// too). Each carries `meshlet-error: <cause>`; gRPC requests get a gRPC-shaped answer
// (HTTP 200, trailers-only, grpc-status) because gRPC clients report a bare 503 as an
// opaque UNKNOWN or INTERNAL instead of the retryable UNAVAILABLE.

export const ERROR_HEADER = 'meshlet-error';

export function errorResponse(err: unknown, grpc: boolean): ProxyResponse {
  const shape = shapeOf(err);
  const status = answerStatus(shape, grpc);
  const message = err instanceof Error ? err.message : String(err);
  // The rate limit says when to come back (RFC 9110 10.2.3); gRPC clients read it too (as Envoy sends it).
  const retryAfter = err instanceof MeshletError && err.retryAfterSeconds !== undefined ? ['retry-after', String(err.retryAfterSeconds)] : [];
  if (grpc) {
    return {
      status,
      headers: ['content-type', 'application/grpc', 'grpc-status', String(shape.grpc), 'grpc-message', encodeURIComponent(message), ERROR_HEADER, shape.cause, ...retryAfter],
      body: undefined,
      flag: shape.flag,
    };
  }
  const text = `${shape.cause}: ${message}\n`;
  return {
    status,
    headers: ['content-type', 'text/plain; charset=utf-8', 'content-length', String(Buffer.byteLength(text)), ERROR_HEADER, shape.cause, ...retryAfter],
    body: new BufferedBody([Buffer.from(text)]),
    flag: shape.flag,
  };
}

/** A whole HTTP/1.1 response for a connection that has no request object (parse errors). */
export function rawErrorResponse(err: MeshletError): string {
  const shape = shapeOf(err);
  const text = `${shape.cause}: ${err.message}\n`;
  const reason = { 400: 'Bad Request', 408: 'Request Timeout', 431: 'Request Header Fields Too Large' }[shape.status as 400 | 408 | 431] ?? 'Error';
  return `HTTP/1.1 ${shape.status} ${reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(text)}\r\n${ERROR_HEADER}: ${shape.cause}\r\nConnection: close\r\n\r\n${text}`;
}
