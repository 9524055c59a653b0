import { Gauge, type Registry } from 'prom-client';
import { HistogramData, registerCounter, registerHistogram, type Labels } from './series.ts';
import { WORKLOAD_LABELS } from './workload-labels.ts';

// Istio's HTTP metrics (design.md): names, label keys and buckets, so Istio's dashboards
// and Kiali read them unchanged with the prefix `istio`. All four share one label set
// per series, so one HttpSeries holds the four of them.

/** Request duration buckets in milliseconds (design.md, Istio's). */
export const DURATION_BUCKETS_MS = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000] as const;

/** Body size buckets in bytes: Istio's, powers of ten up to 1 GB. */
export const BYTES_BUCKETS = [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000] as const;

/** Label keys of every HTTP series, in the order they are written. */
export const HTTP_LABELS = [
  'reporter',
  ...WORKLOAD_LABELS,
  'destination_service',
  'destination_service_name',
  'destination_service_namespace',
  'request_protocol',
  'response_code',
  'grpc_response_status',
  'response_flags',
  'connection_security_policy',
] as const;

export type HttpLabels = Readonly<Record<(typeof HTTP_LABELS)[number], string>>;

/** One label set's requests, durations and body sizes. */
export class HttpSeries {
  readonly labels: Labels;
  requests = 0;
  readonly duration = new HistogramData(DURATION_BUCKETS_MS);
  readonly requestBytes = new HistogramData(BYTES_BUCKETS);
  readonly responseBytes = new HistogramData(BYTES_BUCKETS);

  constructor(labels: HttpLabels) {
    this.labels = labels;
  }
}

/**
 * How many label sets are kept. Some label values come from outside (the authority a
 * client wrote, a peer's metadata): past this, new label sets are counted in one series
 * per reporter, protocol, code and flag with every other label `unknown`, so a client that varies its
 * Host cannot grow the proxy's memory or the scrape without bound.
 */
export const MAX_HTTP_SERIES = 5000;
const OVERFLOW_KEPT: ReadonlySet<string> = new Set(['reporter', 'request_protocol', 'response_code', 'grpc_response_status', 'response_flags']);

export class HttpMetrics {
  readonly #series = new Map<string, HttpSeries>();
  /** Requests under way, by reporter; read at scrape time. */
  readonly active = { source: 0, destination: 0 };

  constructor(registry: Registry, prefix: string) {
    const all = () => this.#series.values();
    registerCounter(registry, `${prefix}_requests_total`, 'HTTP requests, counted when their response ends', all, (s) => s.requests);
    registerHistogram(registry, `${prefix}_request_duration_milliseconds`, 'HTTP request duration, until the response ends (ms)', DURATION_BUCKETS_MS, all, (s) => s.duration);
    registerHistogram(registry, `${prefix}_request_bytes`, 'HTTP request body size (bytes)', BYTES_BUCKETS, all, (s) => s.requestBytes);
    registerHistogram(registry, `${prefix}_response_bytes`, 'HTTP response body size (bytes)', BYTES_BUCKETS, all, (s) => s.responseBytes);
    const active = this.active;
    new Gauge({
      name: `${prefix}_proxy_active_requests`,
      help: 'HTTP requests under way',
      labelNames: ['reporter'],
      registers: [registry],
      collect() {
        this.set({ reporter: 'source' }, active.source);
        this.set({ reporter: 'destination' }, active.destination);
      },
    });
  }

  /** The series of `labels`: made the first time (callers keep what they get, this is not per request). */
  series(labels: HttpLabels): HttpSeries {
    const key = keyOf(labels);
    const found = this.#series.get(key);
    if (found) return found;
    if (this.#series.size >= MAX_HTTP_SERIES) return this.#overflow(labels);
    const made = new HttpSeries(Object.freeze({ ...labels }));
    this.#series.set(key, made);
    return made;
  }

  #overflow(labels: HttpLabels): HttpSeries {
    const unknown = Object.fromEntries(HTTP_LABELS.map((k) => [k, OVERFLOW_KEPT.has(k) ? labels[k] : 'unknown'])) as HttpLabels;
    const key = keyOf(unknown);
    let series = this.#series.get(key);
    if (!series) this.#series.set(key, (series = new HttpSeries(Object.freeze(unknown))));
    return series;
  }
}

function keyOf(labels: HttpLabels): string {
  return HTTP_LABELS.map((k) => labels[k]).join('\u0000');
}
