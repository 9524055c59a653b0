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
  readonly families: Map<string, Family>;

  constructor(text: string) {
    const parsed = parsePrometheusTextFormat(text) as Family[];
    this.families = new Map(parsed.map((f) => [f.name, f]));
  }

  /** Sum of the samples of `name` whose labels include all of `labels`. */
  value(name: string, labels: Record<string, string> = {}): number {
    const family = this.families.get(name);
    if (!family) return 0;
    return family.metrics
      .filter((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))
      .reduce((sum, m) => sum + Number(m.value ?? 0), 0);
  }
}

export async function scrape(pod: Pod, port = 15020): Promise<Scrape> {
  const { stdout } = await pod.runOk(['curl', '-sf', `http://127.0.0.1:${port}/stats/prometheus`]);
  return new Scrape(stdout);
}
