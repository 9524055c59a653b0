import type { RequestAbort } from './abort.ts';
import type { Body } from './body.ts';
import type { AcceptedConnection, ResponseFlag } from './connection.ts';
import type { RawHeaders } from './headers.ts';

// One HTTP request and its response as the request pipeline sees them, whichever
// protocol they arrived in and leave in, and whichever codec carried them. Layers see
// only this shape: never a socket, a stream or a codec. Bodies are light push sources
// (body.ts), never buffered whole; trailers arrive with a body's end.

export type HttpProtocol = 'http1' | 'h2';

/**
 * Who a workload is, sent by each sidecar to its peer (the role of Istio's
 * x-envoy-peer-metadata), so both sides can label telemetry with the other's workload.
 */
export interface WorkloadMetadata {
  readonly name: string;
  readonly namespace: string;
  readonly app: string;
  readonly version: string;
}

/**
 * A message's head as the codec that read it checked it (HTTP/1.1: the method a token, the
 * target visible ASCII, the reason phrase and each value field-value syntax, each name a
 * token), recorded before any layer saw it, and the text its field lines were read from.
 * A writer need not check again what is still equal to what is here: equal strings are
 * equally valid, whatever a layer did to the list. And an HTTP/1.1 writer may write
 * entries found here as the lines they were read from: a run of them is one slice of
 * `text` rather than four strings per field joined and copied.
 */
export interface ReceivedHead {
  /** Requests: the method and request-target as read ('' in responses). */
  readonly method: string;
  readonly target: string;
  /** Responses: the reason phrase as read ('' in requests). */
  readonly reason: string;
  /** A copy of the header list as read: [name, value, ...]. */
  readonly fields: readonly string[];
  /**
   * When the field lines were read from one piece of text, one after another from `start`,
   * each `name:`, one space or tab, `value`, CRLF: that text (latin1). Otherwise undefined.
   */
  readonly text: string | undefined;
  readonly start: number;
}

export interface ProxyRequest {
  readonly conn: AcceptedConnection;
  /** What the app speaks: the client's protocol outbound, the original client's protocol inbound. */
  readonly protocol: HttpProtocol;
  readonly method: string;
  /** Host (HTTP/1.1) or :authority (HTTP/2). */
  readonly authority: string;
  readonly path: string;
  readonly scheme: string;
  /**
   * End-to-end headers in arrival order and case; no Host (see authority), no
   * pseudo-headers. The list belongs to this request: a layer may change it in place.
   */
  headers: RawHeaders;
  /** See ProxyResponse.received. */
  readonly received?: ReceivedHead;
  /** How the client wrote the Host header's name, so an HTTP/1.1 app sees it unchanged. */
  readonly hostName: string;
  /** Undefined when the request has no body. */
  readonly body: Body | undefined;
  /** gRPC (content-type application/grpc...): errors the proxy makes are gRPC-shaped. */
  readonly grpc: boolean;
  /** The calling workload, when a peer sidecar said who it is. */
  readonly peer?: WorkloadMetadata;
  /** Aborted when the client goes away; whatever is under way upstream is then cancelled. */
  readonly abort: RequestAbort;
  /** The upstream answered 100 Continue: tell the client to send its body. */
  readonly onContinue: () => void;
}

export interface ProxyResponse {
  readonly status: number;
  /** HTTP/1.1 reason phrase from an HTTP/1.1 upstream, passed on as it was. */
  readonly reason?: string;
  /** End-to-end headers in arrival order and case. */
  readonly headers: RawHeaders;
  /** The header list as the codec that read the message checked it (ReceivedHead). */
  readonly received?: ReceivedHead;
  /** Undefined when the response has no body (HEAD, 204, 304, trailers-only gRPC). */
  readonly body: Body | undefined;
  /** The destination workload, when the peer sidecar said who it is. */
  readonly peer?: WorkloadMetadata;
  /** '-' for the upstream's own responses; the cause for responses the proxy made. */
  readonly flag: ResponseFlag;
}

/** `application/grpc`, `application/grpc+proto`, ... (not grpc-web, which is plain HTTP to the proxy). */
export function isGrpc(contentType: string | undefined): boolean {
  if (contentType === undefined || contentType.length < 16) return false; // most requests: no regex
  return /^application\/grpc(\+|;|$)/i.test(contentType);
}

/** Responses that never have a body (RFC 9110 6.4.1). */
export function hasNoBody(method: string, status: number): boolean {
  return method === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200);
}
