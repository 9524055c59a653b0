// Imported rather than read as globals: Node's global Buffer and performance are accessors, each read a call (about 170 instructions in callgrind's count).
import { performance } from 'node:perf_hooks';
import type { Handler, Layer } from '../pipeline/compose.ts';
import { answerStatus, shapeOf } from '../pipeline/error-shape.ts';
import type { ProxyRequest, ProxyResponse, WorkloadMetadata } from '../pipeline/exchange.ts';
import { get, type RawHeaders } from '../pipeline/headers.ts';
import { CountingBody, type BodyWatcher } from './counting-body.ts';

/** What telemetry knows of an HTTP exchange once its response has ended (or failed). */
export interface FinishedExchange {
  readonly req: ProxyRequest;
  /** performance.now() when the request entered the layer. */
  readonly started: number;
  /** Until the response's last byte was handed on, or the exchange failed. */
  readonly durationMs: number;
  /** The status the client was answered; 0 when nobody was (the client went away first). */
  readonly status: number;
  /** Envoy's response flags: '-' for the upstream's own complete answers. */
  readonly flag: string;
  /** grpc-status of a gRPC exchange, from the headers or the trailers; '' when there is none. */
  readonly grpcStatus: string;
  /** Body bytes, as they flowed. */
  readonly requestBytes: number;
  readonly responseBytes: number;
  /** The other side's workload: the caller's inbound, the callee's outbound, when its sidecar said. */
  readonly peer: WorkloadMetadata | undefined;
  /** The `meshlet-error` cause when the proxy answered for itself; '' otherwise. */
  readonly cause: string;
  /** What failed the exchange, when something did. */
  readonly error: unknown;
}

/** Where finished exchanges go: metrics, the access log, spans. */
export interface ExchangeSink {
  /**
   * A request entered the layer (called before it is sent on; it may change the request's
   * headers). What it returns comes back to `finished` (a span); undefined costs nothing.
   */
  started?(req: ProxyRequest): unknown;
  /** Its response ended, or it failed; exactly once per started request, with what `started` returned. */
  finished(exchange: FinishedExchange, token: unknown): void;
}

/**
 * The sinks of one side's layer, by role, in the order they are told: spans first (their
 * start rewrites the trace headers sent on), then metrics, then the access log. Named
 * rather than listed: each call site then only ever sees one sink's code, which V8
 * inlines there, where a loop over a list called the sinks through its generic call
 * builtin and left them out of line (callgrind, tracing at a ratio of 0: about 480
 * instructions a request and sidecar in calls, and in code that was no longer inlined).
 */
export interface ExchangeSinks {
  readonly trace?: ExchangeSink | undefined;
  readonly metrics?: ExchangeSink | undefined;
  readonly log?: ExchangeSink | undefined;
}

/** ExchangeSinks with every role present (undefined when empty): one shape for every layer. */
interface Roles {
  readonly trace: ExchangeSink | undefined;
  readonly metrics: ExchangeSink | undefined;
  readonly log: ExchangeSink | undefined;
}

/**
 * Follows each request to the end of its response, counting the bodies' bytes as they
 * flow, and hands the outcome to `sinks`. Failures get the status and flag of their error
 * shape, as the listener answers them (pipeline/error-shape.ts). With no sink, the layer
 * is not there at all.
 */
export function exchangeLayer(sinks: ExchangeSinks): Layer<ProxyRequest, ProxyResponse> {
  if (!sinks.trace && !sinks.metrics && !sinks.log) return (next) => next;
  // Copied into an object of one shape, whichever roles the caller named.
  const roles: Roles = { trace: sinks.trace, metrics: sinks.metrics, log: sinks.log };
  return (next) => (req) => observe(next, req, roles);
}

async function observe(next: Handler<ProxyRequest, ProxyResponse>, req: ProxyRequest, sinks: Roles): Promise<ProxyResponse> {
  const exchange = new Exchange(req, sinks);
  const { trace, metrics, log } = sinks;
  if (trace?.started) exchange.traceToken = trace.started(req);
  if (metrics?.started) exchange.metricsToken = metrics.started(req);
  if (log?.started) exchange.logToken = log.started(req);
  let response: ProxyResponse;
  try {
    // A request body is counted on its way up; only then is the request copied.
    response = await next(req.body ? { ...req, body: (exchange.requestBody = new CountingBody(req.body)) } : req);
  } catch (err) {
    exchange.fail(err);
    throw err;
  }
  const body = exchange.respond(response);
  if (body === undefined) return response;
  // Written out rather than spread, and here rather than in a method: an object whose shape
  // the compiler sees being made is a promise's value without a look-up of its `then`
  // (callgrind: a spread copy made elsewhere cost ~240 instructions a request in V8's
  // generic property load). Every field is listed: the type below fails to compile otherwise.
  const counted: AllFieldsOf<ProxyResponse> = {
    status: response.status,
    reason: response.reason,
    headers: response.headers,
    received: response.received,
    body,
    peer: response.peer,
    flag: response.flag,
  };
  return counted;
}

/** Every field of T, optional ones included (with undefined allowed): a copy that lists them all. */
type AllFieldsOf<T> = { readonly [K in keyof Required<T>]: T[K] };

class Exchange implements FinishedExchange, BodyWatcher {
  readonly req: ProxyRequest;
  readonly started = performance.now();
  durationMs = 0;
  status = 0;
  flag = '-';
  grpcStatus = '';
  peer: WorkloadMetadata | undefined;
  cause = '';
  error: unknown = undefined;
  requestBody: CountingBody | undefined;
  /** What each sink's start returned. */
  traceToken: unknown = undefined;
  metricsToken: unknown = undefined;
  logToken: unknown = undefined;
  #responseBody: CountingBody | undefined;
  readonly #sinks: Roles;
  #finished = false;

  constructor(req: ProxyRequest, sinks: Roles) {
    this.req = req;
    this.peer = req.peer;
    this.#sinks = sinks;
  }

  get requestBytes(): number {
    return this.requestBody?.bytes ?? 0;
  }

  get responseBytes(): number {
    return this.#responseBody?.bytes ?? 0;
  }

  /** Records the response; returns the body that counts its bytes on the way, undefined when it has none (the exchange is then finished). */
  respond(response: ProxyResponse): CountingBody | undefined {
    this.status = response.status;
    this.flag = response.flag;
    this.peer ??= response.peer;
    if (this.req.grpc) this.grpcStatus = get(response.headers, 'grpc-status') ?? '';
    if (!response.body) {
      this.#finish();
      return undefined;
    }
    return (this.#responseBody = new CountingBody(response.body, this));
  }

  fail(err: unknown): void {
    this.error = err;
    if (this.req.abort.aborted) {
      // Nobody to answer: the client went away, or a deadline of the proxy's ended the stream (HTTP/2 stream idle).
      this.flag = this.req.abort.deadlineExpired ? 'UT' : 'DC';
    } else {
      const shape = shapeOf(err);
      this.status = answerStatus(shape, this.req.grpc);
      this.flag = shape.flag;
      this.cause = shape.cause;
      if (this.req.grpc) this.grpcStatus = String(shape.grpc);
    }
    this.#finish();
  }

  ended(trailers: RawHeaders): void {
    if (this.req.grpc && this.grpcStatus === '') this.grpcStatus = get(trailers, 'grpc-status') ?? '';
    this.#finish();
  }

  aborted(): void {
    // The response was cut short upstream, unless it was the client that went.
    if (this.flag === '-') this.flag = this.req.abort.aborted ? (this.req.abort.deadlineExpired ? 'UT' : 'DC') : 'UC';
    this.#finish();
  }

  cancelled(): void {
    // Its reader gave the body up: the client went away (or a body that must not be sent, which is no failure).
    if (this.req.abort.aborted && this.flag === '-') this.flag = this.req.abort.deadlineExpired ? 'UT' : 'DC';
    this.#finish();
  }

  #finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    this.durationMs = performance.now() - this.started;
    const { trace, metrics, log } = this.#sinks;
    trace?.finished(this, this.traceToken);
    metrics?.finished(this, this.metricsToken);
    log?.finished(this, this.logToken);
  }
}
