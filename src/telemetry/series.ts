import type { Metric, Registry } from 'prom-client';

// Labelled counters and histograms whose series the caller holds on to. prom-client's own
// instruments hash every label on every inc() and observe() (even through a child from
// labels()): with Istio's dozen and more labels, four instruments and thousands of
// requests a second, that is most of what recording would cost. Here a series is a plain
// object found once per label set by its owner and bumped with additions; the text is
// made only when Prometheus scrapes, by prom-client's registry like any other metric.

export type Labels = Readonly<Record<string, string>>;

/** Counts and sum of one histogram series; bucket i counts values ≤ bounds[i], the last one the rest (+Inf). */
export class HistogramData {
  readonly counts: Float64Array;
  sum = 0;
  readonly #bounds: readonly number[];

  constructor(bounds: readonly number[]) {
    this.#bounds = bounds;
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    const bounds = this.#bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
  }
}

interface Sample {
  readonly value: number;
  readonly labels: Labels;
  readonly sharedLabels?: Labels;
  readonly metricName?: string;
}

/** A metric family prom-client's Registry can render: what its own Counter and Histogram hand it. */
interface Family {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'histogram' | 'gauge';
  readonly aggregator: 'sum';
  get(): Promise<{ name: string; help: string; type: string; aggregator: 'sum'; values: Sample[] }>;
  reset(): void;
}

/** Registers a family whose samples `values` lists at scrape time. */
function register(registry: Registry, name: string, help: string, type: Family['type'], values: () => Sample[]): void {
  const family: Family = { name, help, type, aggregator: 'sum', reset: () => {}, get: async () => ({ name, help, type, aggregator: 'sum', values: values() }) };
  // The registry only calls get() (and reset()) on what it holds; its types list its own classes.
  registry.registerMetric(family as unknown as Metric);
}

/** A counter family read from `series` at scrape time. */
export function registerCounter<S extends { readonly labels: Labels }>(registry: Registry, name: string, help: string, series: () => Iterable<S>, value: (s: S) => number): void {
  register(registry, name, help, 'counter', () => Array.from(series(), (s) => ({ value: value(s), labels: s.labels })));
}

/** A histogram family read from `series` at scrape time: cumulative buckets, +Inf, sum and count, as Prometheus expects. */
export function registerHistogram<S extends { readonly labels: Labels }>(
  registry: Registry,
  name: string,
  help: string,
  bounds: readonly number[],
  series: () => Iterable<S>,
  data: (s: S) => HistogramData,
): void {
  const les = [...bounds.map(String), '+Inf'].map((le) => ({ le }));
  register(registry, name, help, 'histogram', () => {
    const values: Sample[] = [];
    for (const s of series()) {
      const h = data(s);
      let cumulative = 0;
      for (let i = 0; i < les.length; i++) {
        cumulative += h.counts[i]!;
        values.push({ value: cumulative, labels: les[i]!, sharedLabels: s.labels, metricName: `${name}_bucket` });
      }
      values.push({ value: h.sum, labels: {}, sharedLabels: s.labels, metricName: `${name}_sum` });
      values.push({ value: cumulative, labels: {}, sharedLabels: s.labels, metricName: `${name}_count` });
    }
    return values;
  });
}
