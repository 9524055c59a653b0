import type { Registry } from 'prom-client';
import type { Config } from '../config/schema.ts';
import type { Logger } from '../log.ts';
import { AccessLog } from './access-log.ts';
import { HttpMetrics } from './http-metrics.ts';
import { createTcpMetrics, type TcpMetrics } from './tcp-metrics.ts';
import type { TracerHandle } from './tracer.ts';
import type { Tracing } from './tracing.ts';
import { localWorkload, type LocalWorkload } from './workload.ts';

/** The instruments a proxy's stacks record into; made once per proxy, on its own registry. */
export interface Telemetry {
  readonly tcpMetrics: TcpMetrics;
  readonly httpMetrics: HttpMetrics;
  readonly accessLog: AccessLog;
  /** This pod's workload: its side of the labels, and what peers are told. */
  readonly workload: LocalWorkload;
  /** Spans, when an OTLP endpoint is configured; undefined adds no tracing layer at all. */
  readonly tracing: Tracing | undefined;
  /** The tracer provider behind `tracing`, to flush and stop when the proxy ends. */
  readonly tracer: TracerHandle | undefined;
}

export async function createTelemetry(
  registry: Registry,
  config: Pick<Config, 'metrics' | 'accessLog' | 'workload' | 'tracing'>,
  log: Logger,
  /** This pod's SPIFFE ID, when it has an identity. */
  spiffeId: string | undefined,
): Promise<Telemetry> {
  const workload = localWorkload(config.workload, spiffeId);
  // The OpenTelemetry SDK (about 5 MiB of heap) is loaded only when spans are to be exported.
  const tracer = config.tracing.endpoint === '' ? undefined : (await import('./tracer.ts')).createTracer(config.tracing, workload, log);
  return {
    tcpMetrics: createTcpMetrics(registry, config.metrics.prefix),
    httpMetrics: new HttpMetrics(registry, config.metrics.prefix),
    accessLog: new AccessLog(log, config.accessLog),
    workload,
    tracing: tracer?.tracing,
    tracer,
  };
}
