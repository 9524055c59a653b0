import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Context, type Span, type SpanOptions, type TextMapGetter, type TextMapPropagator, type TextMapSetter, type Tracer } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { B3InjectEncoding, B3Propagator } from '@opentelemetry/propagator-b3';
import {
  ATTR_CLIENT_ADDRESS,
  ATTR_ERROR_TYPE,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_REQUEST_METHOD_ORIGINAL,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_NETWORK_PEER_ADDRESS,
  ATTR_NETWORK_PEER_PORT,
  ATTR_NETWORK_PROTOCOL_VERSION,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
  ATTR_URL_FULL,
  ATTR_URL_PATH,
  ATTR_URL_SCHEME,
  ATTR_USER_AGENT_ORIGINAL,
} from '@opentelemetry/semantic-conventions';
import type { Direction } from '../pipeline/connection.ts';
import type { ProxyRequest } from '../pipeline/exchange.ts';
import { get, type RawHeaders } from '../pipeline/headers.ts';
import { flatString } from '../strings.ts';
import { withoutUserinfo } from './access-log.ts';
import type { ExchangeSink, FinishedExchange } from './exchange-layer.ts';
import { B3_MULTI, B3_SINGLE, DEFERRED, ratioAccepts, removeTraceHeaders, requestIdFraction, SAMPLED, TraceScan, W3C } from './trace-headers.ts';
import { peerPrincipalOf } from './workload-labels.ts';

// Spans for HTTP/1.1, HTTP/2 and gRPC requests, one per request and side: the inbound
// sidecar's SERVER span, the outbound sidecar's CLIENT span. The request's trace headers
// are rewritten to name the proxy's span as the parent, so the app (which copies them onto
// its own calls) continues the trace, and the next sidecar's span is the child of this
// one. Names and attributes follow the OpenTelemetry HTTP semantic conventions (stable
// since 1.23), plus the mesh's own (meshlet.*).
//
// String values given to the SDK are flat strings of their own (flatString): the OTLP
// protobuf writer reads them a character at a time, and the parser's slices and
// concatenations would turn its loops megamorphic.
//
// The sampling decision is taken before anything is allocated: most requests are not
// sampled (1 % is a common ratio), and a request that is not goes through untouched. A
// new trace's decision is keyed on the request's x-request-id, as Envoy's stable sampling
// is: every sidecar the request passes, and every call an app makes that passes the id on,
// decides alike without a trace header saying so. Writing an unsampled traceparent into
// every request instead (what this module did first) was counted at about 8 % of the
// sidecar pair's instructions per request: ids, a header line written by both sidecars,
// parsed, found and validated by the second (callgrind, docs/performance.md).

/** The OTEL_TRACES_SAMPLER values (config tracing.sampler). */
export type SamplerName = 'always_on' | 'always_off' | 'traceidratio' | 'parentbased_always_on' | 'parentbased_always_off' | 'parentbased_traceidratio';
export type PropagatorName = 'tracecontext' | 'baggage' | 'b3' | 'b3multi' | 'none';

/** Parent-based: a request's parent decides; without one (or a B3 parent that defers), `ratio` does. */
export interface SamplingPolicy {
  readonly parentBased: boolean;
  readonly ratio: number;
}

export function samplingPolicy(sampler: SamplerName, arg: number): SamplingPolicy {
  switch (sampler) {
    case 'always_on':
      return { parentBased: false, ratio: 1 };
    case 'always_off':
      return { parentBased: false, ratio: 0 };
    case 'traceidratio':
      return { parentBased: false, ratio: arg };
    case 'parentbased_always_on':
      return { parentBased: true, ratio: 1 };
    case 'parentbased_always_off':
      return { parentBased: true, ratio: 0 };
    case 'parentbased_traceidratio':
      return { parentBased: true, ratio: arg };
  }
}

/**
 * Whether the request whose `headers` `scan` has read is sampled. A new trace (ratio in
 * between 0 and 1) is decided by its request id when it has one, otherwise by `random`.
 */
export function sampled(policy: SamplingPolicy, scan: TraceScan, headers: RawHeaders, random: () => number = Math.random): boolean {
  if (scan.parent !== 0 && scan.decision !== DEFERRED && policy.parentBased) return scan.decision === SAMPLED;
  if (policy.ratio >= 1) return true;
  if (policy.ratio <= 0) return false;
  // Without a parent-based rule, every hop tests the same id the same way, and agrees.
  if (scan.parent !== 0 && scan.idLength > 0) return ratioAccepts(headers[scan.idAt]!, scan.idStart, scan.idLength, policy.ratio);
  return (scan.requestIdAt !== -1 ? requestIdFraction(headers[scan.requestIdAt]!) : random()) < policy.ratio;
}

/** What the tracing of one proxy is built from; the tracer comes from the composing code, never a global. */
export interface TracingSettings {
  readonly sampler: SamplerName;
  readonly samplerArg: number;
  readonly propagators: readonly PropagatorName[];
}

const getter: TextMapGetter<RawHeaders> = {
  keys: (headers) => headers.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase()),
  get: (headers, key) => get(headers, key),
};
// The propagators build their values with templates (a concatenation: a V8 cons string).
// Given to the HTTP/1.1 writer as they are, the one request in a hundred that is sampled
// would show the writer's loops a kind of string that the other 99 never do, and V8 drops
// optimised code that meets a kind it has not seen (traced pairs showed the writer's
// `fields` deoptimised for a "wrong map"): a flat copy, made for sampled requests only.
const setter: TextMapSetter<RawHeaders> = {
  set: (headers, key, value) => void headers.push(key, flatString(value)),
};

const w3c = new W3CTraceContextPropagator();
const b3Single = new B3Propagator({ injectEncoding: B3InjectEncoding.SINGLE_HEADER });
const b3Multi = new B3Propagator({ injectEncoding: B3InjectEncoding.MULTI_HEADER });

/** The formats each propagator name writes (baggage is an end-to-end header the proxy forwards as it came). */
function formatsOf(names: readonly PropagatorName[]): number {
  let formats = 0;
  for (const name of names) formats |= name === 'tracecontext' ? W3C : name === 'b3' ? B3_SINGLE : name === 'b3multi' ? B3_MULTI : 0;
  return formats;
}

/** The proxy's tracing: its tracer, its sampling and the trace formats it writes. Made once per proxy. */
export class Tracing {
  readonly tracer: Tracer;
  readonly policy: SamplingPolicy;
  /** The formats written into every sampled request (OTEL_PROPAGATORS); a request's own are written back too. */
  readonly formats: number;
  /** The propagators that write each combination of formats, made once. */
  readonly #injectors: ReadonlyArray<readonly TextMapPropagator[]>;

  constructor(tracer: Tracer, settings: TracingSettings) {
    this.tracer = tracer;
    this.policy = samplingPolicy(settings.sampler, settings.samplerArg);
    this.formats = formatsOf(settings.propagators);
    this.#injectors = Array.from({ length: 8 }, (_, f) => [...(f & W3C ? [w3c] : []), ...(f & B3_SINGLE ? [b3Single] : []), ...(f & B3_MULTI ? [b3Multi] : [])]);
  }

  /** The parent context of a request whose headers hold one in the format `parent` (one bit). */
  extract(parent: number, headers: RawHeaders): Context {
    if (parent === W3C) return w3c.extract(ROOT_CONTEXT, headers, getter);
    if (parent === B3_SINGLE || parent === B3_MULTI) return b3Single.extract(ROOT_CONTEXT, headers, getter);
    return ROOT_CONTEXT;
  }

  /** Replaces the request's trace headers with `context`'s, in the formats `formats` names. */
  inject(context: Context, headers: RawHeaders, formats: number): void {
    removeTraceHeaders(headers);
    const injectors = this.#injectors[formats & 7]!;
    for (let i = 0; i < injectors.length; i++) injectors[i]!.inject(context, headers, setter);
  }

  /** The span sink of one side, for its stack's exchange layer (traceSink). */
  sink(direction: Direction): ExchangeSink {
    return traceSink(this, direction);
  }
}

/**
 * The spans of one side (inbound: SERVER, outbound: CLIENT), as a sink of the exchange
 * layer, which follows each request to the end of its response: the span starts when the
 * request enters the layer and ends with the response's last byte, or the failure.
 */
export function traceSink(tracing: Tracing, direction: Direction): ExchangeSink {
  const scan = new TraceScan();
  const options: SpanOptions = { kind: direction === 'inbound' ? SpanKind.SERVER : SpanKind.CLIENT };
  return {
    started: (req) => {
      scan.scan(req.headers);
      return sampled(tracing.policy, scan, req.headers) ? startSpan(tracing, scan, req, direction, options) : undefined;
    },
    finished: (ex, token) => {
      if (token !== undefined) end(token as Span, ex, direction);
    },
  };
}

/**
 * The span of a sampled request, its context written into the request's headers. A
 * function of its own, so that the sink's `started`, which every request runs, holds only
 * the scan and the decision, and the path one request in a hundred takes is compiled on
 * its own feedback.
 */
function startSpan(tracing: Tracing, scan: TraceScan, req: ProxyRequest, direction: Direction, options: SpanOptions): Span {
  const parent = tracing.extract(scan.parent, req.headers);
  const method = knownMethod(req.method);
  // The attributes are set on the span rather than given to startSpan: the SDK checks
  // and copies a given set twice before the span sets them (a third pass of its checks).
  const span = tracing.tracer.startSpan(method ?? 'HTTP', options, parent);
  setStartAttributes(span, req, direction, method, scan.requestIdAt);
  tracing.inject(trace.setSpan(parent, span), req.headers, tracing.formats | scan.formats);
  return span;
}

const METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH', 'QUERY']);

/** The method as the conventions name it; undefined for one they do not know (the span is then `HTTP`, the method `_OTHER`). */
function knownMethod(method: string): string | undefined {
  return METHODS.has(method) ? method : undefined;
}

/**
 * The attributes known when the request arrives. `requestIdAt`: where the scan found the
 * request's x-request-id in its headers (-1: none). Every attribute is paid for in every
 * sampled span, by the SDK and again, a character at a time, by the OTLP writer (its
 * largest cost): none is here that another says already. The span's kind says which side
 * made it; client.port (opt-in in the conventions) would repeat network.peer.port; a
 * verified peer principal says the connection was mutual TLS.
 */
function setStartAttributes(span: Span, req: ProxyRequest, direction: Direction, method: string | undefined, requestIdAt: number): void {
  const { conn } = req;
  const query = req.path.indexOf('?');
  // The query is left out, as in the access log: it often carries tokens.
  const path = query === -1 ? req.path : req.path.slice(0, query);
  const { host, port } = hostPort(req.authority, req.scheme === 'https' ? 443 : 80);
  span.setAttribute(ATTR_HTTP_REQUEST_METHOD, method ?? '_OTHER');
  if (method === undefined) span.setAttribute(ATTR_HTTP_REQUEST_METHOD_ORIGINAL, req.method);
  span.setAttribute(ATTR_URL_SCHEME, req.scheme);
  span.setAttribute(ATTR_SERVER_ADDRESS, flatString(host));
  span.setAttribute(ATTR_SERVER_PORT, port);
  span.setAttribute(ATTR_NETWORK_PROTOCOL_VERSION, req.protocol === 'h2' ? '2' : '1.1');
  if (direction === 'inbound') {
    span.setAttribute(ATTR_URL_PATH, flatString(path));
    span.setAttribute(ATTR_CLIENT_ADDRESS, conn.peer.address);
    span.setAttribute(ATTR_NETWORK_PEER_ADDRESS, conn.peer.address);
    span.setAttribute(ATTR_NETWORK_PEER_PORT, conn.peer.port);
  } else {
    // Joined rather than a template: a join makes one flat string (flatString).
    span.setAttribute(ATTR_URL_FULL, [req.scheme, '://', withoutUserinfo(req.authority), path].join(''));
    span.setAttribute(ATTR_NETWORK_PEER_ADDRESS, conn.origDst.address);
    span.setAttribute(ATTR_NETWORK_PEER_PORT, conn.origDst.port);
  }
  const principal = peerPrincipalOf(conn);
  if (principal) span.setAttribute('meshlet.peer.principal', flatString(principal));
  const userAgent = get(req.headers, 'user-agent');
  if (userAgent !== undefined) span.setAttribute(ATTR_USER_AGENT_ORIGINAL, flatString(userAgent.slice(0, 256)));
  if (requestIdAt !== -1) span.setAttribute('meshlet.request_id', flatString(req.headers[requestIdAt]!.slice(0, 128)));
  if (req.grpc) span.setAttribute(ATTR_RPC_SYSTEM, 'grpc');
}

// Not yet stable in the conventions (the incubating entry point may change them), so named here.
const ATTR_HTTP_REQUEST_BODY_SIZE = 'http.request.body.size';
const ATTR_HTTP_RESPONSE_BODY_SIZE = 'http.response.body.size';
const ATTR_RPC_SYSTEM = 'rpc.system';
const ATTR_RPC_GRPC_STATUS_CODE = 'rpc.grpc.status_code';

function end(span: Span, ex: FinishedExchange, direction: Direction): void {
  if (ex.status > 0) span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, ex.status);
  span.setAttribute('meshlet.response_flags', ex.flag);
  // A request without a body has no body size (most of them: GET, HEAD, DELETE).
  if (ex.req.body !== undefined) span.setAttribute(ATTR_HTTP_REQUEST_BODY_SIZE, ex.requestBytes);
  span.setAttribute(ATTR_HTTP_RESPONSE_BODY_SIZE, ex.responseBytes);
  if (ex.grpcStatus !== '') span.setAttribute(ATTR_RPC_GRPC_STATUS_CODE, Number(ex.grpcStatus));
  if (ex.peer?.name) span.setAttribute('meshlet.peer.workload', [ex.peer.namespace, '/', ex.peer.name].join(''));
  const error = errorType(ex, direction);
  if (error !== undefined) {
    span.setAttribute(ATTR_ERROR_TYPE, flatString(error));
    span.setStatus({ code: SpanStatusCode.ERROR, ...(ex.cause ? { message: flatString(ex.cause) } : {}) });
  }
  span.end();
}

/**
 * error.type, when the exchange failed: the proxy's own cause (`upstream_connect_failure`,
 * the meshlet-error value), else the status the conventions count as an error (5xx for a
 * server, 4xx and 5xx for a client), else `DC` when the client went away.
 */
function errorType(ex: FinishedExchange, direction: Direction): string | undefined {
  if (ex.cause) return ex.cause;
  if (ex.status >= (direction === 'inbound' ? 500 : 400)) return String(ex.status);
  if (ex.status === 0) return ex.flag === '-' ? 'unknown' : ex.flag;
  return undefined;
}

/** host and port of an authority (`[::1]:8080`, `cart:80`, `cart`). */
function hostPort(authority: string, defaultPort: number): { host: string; port: number } {
  const a = withoutUserinfo(authority);
  const close = a.startsWith('[') ? a.indexOf(']') : -1;
  const colon = a.lastIndexOf(':');
  if (colon > close && colon !== -1) {
    const port = Number(a.slice(colon + 1));
    return { host: a.slice(close === -1 ? 0 : 1, close === -1 ? colon : close), port: Number.isInteger(port) ? port : defaultPort };
  }
  return { host: close === -1 ? a : a.slice(1, close), port: defaultPort };
}
