import { Counter, Gauge, type Registry } from 'prom-client';
import type { Direction } from '../pipeline/connection.ts';
import { registerCounter, type Labels } from './series.ts';

// Istio's TCP metric names and label keys (design.md), so existing dashboards apply.
// Labels stay bounded: no addresses, no ids. Like the HTTP ones, the connection series
// are plain objects a connection finds once and bumps (see series.ts for why).

/** One label set's connections and bytes; closed connections also by response flag. */
export class TcpSeries {
  readonly labels: Labels;
  opened = 0;
  sentBytes = 0;
  receivedBytes = 0;
  readonly #closed = new Map<string, ClosedSeries>();

  constructor(labels: Labels) {
    this.labels = labels;
  }

  /** The closed-connection counter of `flag`. */
  closed(flag: string): ClosedSeries {
    let series = this.#closed.get(flag);
    if (!series) this.#closed.set(flag, (series = { labels: Object.freeze({ ...this.labels, response_flags: flag }), value: 0 }));
    return series;
  }

  get allClosed(): Iterable<ClosedSeries> {
    return this.#closed.values();
  }
}

export interface ClosedSeries {
  readonly labels: Labels;
  value: number;
}

export interface TcpMetrics {
  /** The series of `labels` (reporter, workloads, principals, connection_security_policy): made the first time. */
  series(labels: Labels): TcpSeries;
  refused: Counter<string>;
  /** What protocol detection decided per connection, and how (sniffed, configured, opaque_port, timeout, closed). */
  detections: Counter<string>;
  /** Connections accepted and not yet closed, by reporter; read at scrape time. */
  readonly active: { source: number; destination: number };
}

export function createTcpMetrics(registry: Registry, prefix: string): TcpMetrics {
  const registers = [registry];
  const active = { source: 0, destination: 0 };
  const all = new Map<string, TcpSeries>();
  const series = () => all.values();
  registerCounter(registry, `${prefix}_tcp_connections_opened_total`, 'TCP connections opened', series, (s) => s.opened);
  registerCounter(registry, `${prefix}_tcp_connections_closed_total`, 'TCP connections closed', () => [...all.values()].flatMap((s) => [...s.allClosed]), (s) => s.value);
  registerCounter(registry, `${prefix}_tcp_sent_bytes_total`, 'Bytes sent to the downstream peer', series, (s) => s.sentBytes);
  registerCounter(registry, `${prefix}_tcp_received_bytes_total`, 'Bytes received from the downstream peer', series, (s) => s.receivedBytes);
  new Gauge({
    name: `${prefix}_proxy_active_connections`,
    help: 'Accepted connections not yet closed (HTTP ones included)',
    labelNames: ['reporter'],
    registers,
    collect() {
      this.set({ reporter: 'source' }, active.source);
      this.set({ reporter: 'destination' }, active.destination);
    },
  });
  return {
    active,
    series(labels) {
      const key = Object.values(labels).join('\u0000');
      let found = all.get(key);
      if (!found) all.set(key, (found = new TcpSeries(Object.freeze({ ...labels }))));
      return found;
    },
    refused: new Counter({
      name: `${prefix}_proxy_connections_refused_total`,
      help: 'Accepted connections the proxy refused to forward, by reason',
      labelNames: ['reporter', 'reason'],
      registers,
    }),
    detections: new Counter({
      name: `${prefix}_proxy_protocol_detections_total`,
      help: 'Protocol decided per accepted connection, and how it was decided',
      labelNames: ['direction', 'protocol', 'how'],
      registers,
    }),
  };
}

/** Istio's `reporter` label: the outbound side reports as source, the inbound side as destination. */
export function reporterOf(direction: Direction): 'source' | 'destination' {
  return direction === 'outbound' ? 'source' : 'destination';
}
