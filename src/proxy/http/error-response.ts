import { MeshletError, type ErrorCode } from '../../errors.ts';
import type { ResponseFlag } from '../../pipeline/connection.ts';
import type { ProxyResponse } from '../../pipeline/exchange.ts';
import { BufferedBody } from '../../pipeline/body.ts';

// The one place where an error becomes a response the proxy makes itself (docs/proxy.md
// lists the codes and why). Each carries `meshlet-error: <cause>`; gRPC requests get a
// gRPC-shaped answer (HTTP 200, trailers-only, grpc-status) because gRPC clients report
// a bare 503 as an opaque UNKNOWN or INTERNAL instead of the retryable UNAVAILABLE.

export const ERROR_HEADER = 'meshlet-error';

interface Shape {
  cause: string;
  status: number;
  flag: ResponseFlag;
  /** grpc-status (https://grpc.github.io/grpc/core/md_doc_statuscodes.html). */
  grpc: number;
}

const SHAPES: Partial<Record<ErrorCode, Shape>> = {
  MESHLET_ERR_UPSTREAM_CONNECT: { cause: 'upstream_connect_failure', status: 503, flag: 'UF', grpc: 14 },
  MESHLET_ERR_UPSTREAM_RESET: { cause: 'upstream_reset', status: 503, flag: 'UC', grpc: 14 },
  MESHLET_ERR_UPSTREAM_TIMEOUT: { cause: 'upstream_timeout', status: 504, flag: 'UT', grpc: 4 },
  MESHLET_ERR_UPSTREAM_PROTOCOL: { cause: 'upstream_protocol_error', status: 502, flag: 'UPE', grpc: 13 },
  MESHLET_ERR_LOOP: { cause: 'loop', status: 508, flag: 'NR', grpc: 13 },
  MESHLET_ERR_BAD_REQUEST: { cause: 'bad_request', status: 400, flag: 'DPE', grpc: 13 },
  MESHLET_ERR_REQUEST_HEADERS_TOO_LARGE: { cause: 'request_header_too_large', status: 431, flag: 'DPE', grpc: 13 },
  MESHLET_ERR_REQUEST_HEADERS_TIMEOUT: { cause: 'request_header_timeout', status: 408, flag: 'DPE', grpc: 4 },
};

/** Anything not classified is the proxy's own failure: 502, gRPC INTERNAL. */
const UNKNOWN: Shape = { cause: 'proxy_error', status: 502, flag: 'UPE', grpc: 13 };

/** Whether `err` is one of ours with an answer of its own in the table above. */
export function hasShape(err: unknown): err is MeshletError {
  return err instanceof MeshletError && SHAPES[err.code] !== undefined;
}

export function shapeOf(err: unknown): Shape {
  return (err instanceof MeshletError && SHAPES[err.code]) || UNKNOWN;
}

export function errorResponse(err: unknown, grpc: boolean): ProxyResponse {
  const shape = shapeOf(err);
  const message = err instanceof Error ? err.message : String(err);
  if (grpc) {
    return {
      status: 200,
      headers: ['content-type', 'application/grpc', 'grpc-status', String(shape.grpc), 'grpc-message', encodeURIComponent(message), ERROR_HEADER, shape.cause],
      body: undefined,
      flag: shape.flag,
    };
  }
  const text = `${shape.cause}: ${message}\n`;
  return {
    status: shape.status,
    headers: ['content-type', 'text/plain; charset=utf-8', 'content-length', String(Buffer.byteLength(text)), ERROR_HEADER, shape.cause],
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
