import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import type { Pod } from './netns.ts';

// Reads a pod's proxy metrics the way Prometheus would: scrape 15020 from inside the
// pod and parse the text format with a real parser.

interface Sample {
  value?: string;
  labels?: Record<string, string>;
}
interface Family {
  name: string;
  type: string;
  metrics: Sample[];
}

export class Scrape {
  /** Every sample line by its name; a histogram's are under `<name>_bucket`, `<name>_sum` and `<name>_count`. */
  readonly families: Map<string, Family>;
  /** The declared type of each family (COUNTER, GAUGE, HISTOGRAM, ...). */
  readonly types: Map<string, string>;

  constructor(text: string) {
    this.types = new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!.toUpperCase()]));
    // The parser folds a histogram's lines into one sample and keeps their labels only when
    // `le` is the sole label; read as untyped, each line is a sample with all its labels.
    const parsed = parsePrometheusTextFormat(text.replace(/^# TYPE (\S+) histogram$/gm, '# TYPE $1 untyped')) as Family[];
    this.families = new Map();
    for (const f of parsed) {
      const known = this.families.get(f.name);
      if (known) known.metrics.push(...f.metrics);
      else this.families.set(f.name, { ...f, metrics: [...f.metrics] });
    }
  }

  /** Sum of the samples of `name` whose labels include all of `labels`. */
  value(name: string, labels: Record<string, string> = {}): number {
    return this.samples(name, labels).reduce((sum, m) => sum + Number(m.value ?? 0), 0);
  }

  /** The samples of `name` whose labels include all of `labels`. */
  samples(name: string, labels: Record<string, string> = {}): Sample[] {
    return (this.families.get(name)?.metrics ?? []).filter((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  }

  /** A histogram's count and sum over its series whose labels include all of `labels`. */
  histogram(name: string, labels: Record<string, string> = {}): { count: number; sum: number } {
    return { count: this.value(`${name}_count`, labels), sum: this.value(`${name}_sum`, labels) };
  }
}

export async function scrape(pod: Pod, port = 15020): Promise<Scrape> {
  const { stdout } = await pod.runOk(['curl', '-sf', `http://127.0.0.1:${port}/stats/prometheus`]);
  return new Scrape(stdout);
}
