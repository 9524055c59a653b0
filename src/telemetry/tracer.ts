import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPExporterBase } from '@opentelemetry/otlp-exporter-base';
import { convertLegacyHttpOptions, createOtlpHttpExportDelegate } from '@opentelemetry/otlp-exporter-base/node-http';
import { ProtobufTraceSerializer, TraceExporterMetricsHelper } from '@opentelemetry/otlp-transformer';
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources';
import { AlwaysOnSampler, BasicTracerProvider, BatchSpanProcessor, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';
import type { Config } from '../config/schema.ts';
import type { Logger } from '../log.ts';
import { traceIds } from './trace-ids.ts';
import { Tracing } from './tracing.ts';
import type { LocalWorkload } from './workload.ts';

// The OpenTelemetry SDK as the proxy uses it: one tracer provider of its own (nothing is
// registered globally), a batch span processor, so spans leave on a timer and never on a
// request's path, and the OTLP/HTTP exporter in the protocol configured. Made once per
// proxy, only when an endpoint is set; without one there is no provider and no layer.

export interface TracerHandle {
  readonly tracing: Tracing;
  /** Exports the spans that are still queued (the drain's end). */
  flush(): Promise<void>;
  /** Flushes, then stops the exporter. */
  shutdown(): Promise<void>;
}

/** How long the proxy's exit waits for the last spans to go: a collector that is down must not hold a pod. */
const SHUTDOWN_WAIT_MS = 5000;

export function createTracer(settings: Config['tracing'], workload: LocalWorkload, log: Logger): TracerHandle | undefined {
  if (settings.endpoint === '') return undefined;
  const { metadata } = workload;
  // Istio's service name is the canonical service: the app label, else the workload.
  const serviceName = settings.serviceName || metadata.app || metadata.name || 'meshlet';
  const attributes: Record<string, string> = { [ATTR_SERVICE_NAME]: serviceName };
  if (metadata.version) attributes[ATTR_SERVICE_VERSION] = metadata.version;
  if (metadata.namespace) attributes['service.namespace'] = metadata.namespace;
  if (metadata.namespace) attributes['k8s.namespace.name'] = metadata.namespace;
  if (metadata.name) attributes['k8s.deployment.name'] = metadata.name;
  // The SDK's own (telemetry.sdk.*), then OTEL_RESOURCE_ATTRIBUTES, then ours: the service name set above wins.
  const resource = defaultResource().merge(detectResources({ detectors: [envDetector] })).merge(resourceFromAttributes(attributes));
  const exporter = settings.protocol === 'http/json' ? new OTLPTraceExporter({ url: settings.endpoint }) : new ProtobufTraceExporter(settings.endpoint);
  const processor = new BatchSpanProcessor(exporter);
  const provider = new BasicTracerProvider({
    resource,
    // The layer has decided already (tracing.ts): a span is only started when sampled.
    sampler: new AlwaysOnSampler(),
    idGenerator: traceIds,
    spanProcessors: [processor],
  });
  const tracing = new Tracing(provider.getTracer('meshlet'), settings);
  log.info({ endpoint: settings.endpoint, protocol: settings.protocol, serviceName, sampler: settings.sampler, ratio: tracing.policy.ratio, propagators: settings.propagators }, 'tracing: exporting spans');
  return {
    tracing,
    flush: () => provider.forceFlush(),
    shutdown: () => bounded(provider.shutdown(), SHUTDOWN_WAIT_MS),
  };
}

/** OTLP/HTTP with protobuf bodies: the JSON exporter's transport with the SDK's protobuf serializer. */
class ProtobufTraceExporter extends OTLPExporterBase<ReadableSpan[]> implements SpanExporter {
  constructor(url: string) {
    super(
      createOtlpHttpExportDelegate(
        convertLegacyHttpOptions({ url }, 'TRACES', 'v1/traces', { 'Content-Type': 'application/x-protobuf' }),
        ProtobufTraceSerializer,
        'otlp_http_span_exporter',
        TraceExporterMetricsHelper,
        undefined,
      ),
    );
  }
}

function bounded(work: Promise<void>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    timer.unref();
    void work.catch(() => {}).finally(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
