import t from 'tap';
import { loadConfig } from '../../../src/config/load.ts';
import { MeshletError } from '../../../src/errors.ts';

// The standard OTEL_* variables become the tracing section, as the OpenTelemetry SDK
// specification reads them; MESHLET_TRACING_* override them.

const tracing = (env: NodeJS.ProcessEnv) => loadConfig({ env }).tracing;
const errorOf = (env: NodeJS.ProcessEnv): string => {
  try {
    loadConfig({ env });
  } catch (err) {
    if (err instanceof MeshletError) return err.message;
    throw err;
  }
  throw new Error('no error');
};

t.test('off by default, with the specification defaults', async (t) => {
  t.same(tracing({}), { endpoint: '', protocol: 'http/protobuf', serviceName: '', sampler: 'parentbased_always_on', samplerArg: 1, propagators: ['tracecontext', 'baggage'] });
});

t.test('the endpoints: the general one gets the signal path, the traces one is taken as it is', async (t) => {
  t.equal(tracing({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }).endpoint, 'http://collector:4318/v1/traces');
  t.equal(tracing({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' }).endpoint, 'http://collector:4318/v1/traces');
  t.equal(tracing({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:4318', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://b/custom' }).endpoint, 'https://b/custom');
  t.equal(tracing({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:4318', OTEL_SDK_DISABLED: 'true' }).endpoint, '', 'OTEL_SDK_DISABLED turns it off');
  t.equal(tracing({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:4318', OTEL_TRACES_EXPORTER: 'none' }).endpoint, '', 'so does the exporter none');
  t.equal(tracing({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:4318', MESHLET_TRACING_ENDPOINT: 'http://c/v1/traces' }).endpoint, 'http://c/v1/traces', 'MESHLET_* wins');
});

t.test('protocol, service name, sampler and propagators', async (t) => {
  t.match(
    tracing({
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_SERVICE_NAME: 'cart',
      OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
      OTEL_TRACES_SAMPLER_ARG: '0.01',
      OTEL_PROPAGATORS: 'tracecontext, b3multi,b3,tracecontext',
    }),
    { protocol: 'http/json', serviceName: 'cart', sampler: 'parentbased_traceidratio', samplerArg: 0.01, propagators: ['tracecontext', 'b3multi', 'b3'] },
  );
  t.equal(tracing({ OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/protobuf' }).protocol, 'http/protobuf', 'the traces one wins');
});

t.test('bad values name the variable they came from', async (t) => {
  t.match(errorOf({ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }), /tracing\.protocol: "grpc" is not one of http\/protobuf, http\/json \(from OTEL_EXPORTER_OTLP_PROTOCOL\)/);
  t.match(errorOf({ OTEL_TRACES_SAMPLER: 'jaeger_remote' }), /tracing\.sampler: .*\(from OTEL_TRACES_SAMPLER\)/);
  t.match(errorOf({ OTEL_TRACES_SAMPLER_ARG: 'half' }), /tracing\.samplerArg: .*half.*\(from OTEL_TRACES_SAMPLER_ARG\)/);
  t.match(errorOf({ OTEL_TRACES_SAMPLER_ARG: '2' }), /tracing\.samplerArg: 2 is not a ratio between 0 and 1 \(from OTEL_TRACES_SAMPLER_ARG\)/);
  t.match(errorOf({ OTEL_PROPAGATORS: 'tracecontext,xray' }), /tracing\.propagators\.1: .*xray.*\(from OTEL_PROPAGATORS\)/);
  t.match(errorOf({ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' }), /tracing\.endpoint: .* is not an http:\/\/ or https:\/\/ URL \(from OTEL_EXPORTER_OTLP_ENDPOINT\)/);
  t.match(errorOf({ OTEL_TRACES_EXPORTER: 'zipkin' }), /OTEL_TRACES_EXPORTER=zipkin: only otlp .* and none/);
});
