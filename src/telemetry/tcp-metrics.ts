import { Counter, Gauge, type Registry } from 'prom-client';
import type { Direction } from '../pipeline/connection.ts';

// Istio's TCP metric names and label keys (design.md), so existing dashboards apply.
// Labels stay bounded: no addresses, no ids.

export interface TcpMetrics {
  opened: Counter<string>;
  closed: Counter<string>;
  sentBytes: Counter<string>;
  receivedBytes: Counter<string>;
  refused: Counter<string>;
  /** What protocol detection decided per connection, and how (sniffed, configured, opaque_port, timeout, closed). */
  detections: Counter<string>;
  /** Connections accepted and not yet closed, by reporter; read at scrape time. */
  readonly active: { source: number; destination: number };
}

const LABELS = ['reporter', 'connection_security_policy', 'response_flags'] as const;

export function createTcpMetrics(registry: Registry, prefix: string): TcpMetrics {
  const registers = [registry];
  const active = { source: 0, destination: 0 };
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
    opened: new Counter({ name: `${prefix}_tcp_connections_opened_total`, help: 'TCP connections opened', labelNames: LABELS.slice(0, 2), registers }),
    closed: new Counter({ name: `${prefix}_tcp_connections_closed_total`, help: 'TCP connections closed', labelNames: LABELS, registers }),
    sentBytes: new Counter({ name: `${prefix}_tcp_sent_bytes_total`, help: 'Bytes sent to the downstream peer', labelNames: LABELS.slice(0, 2), registers }),
    receivedBytes: new Counter({ name: `${prefix}_tcp_received_bytes_total`, help: 'Bytes received from the downstream peer', labelNames: LABELS.slice(0, 2), registers }),
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
