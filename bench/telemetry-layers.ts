// What metrics and tracing cost per request, in one process: the request pipeline's
// telemetry part as src/proxy/outbound/stack.ts composes it (the exchange layer with the
// span, metrics and access-log sinks) over an upstream call that answers at once, so only
// telemetry is measured. Three modes:
//
//   off       metrics off, no tracing (the access log's sink, off by default, stays);
//   metrics   the default: request metrics, no tracing;
//   on        request metrics and tracing at a 1 % ratio (parentbased_traceidratio), the
//             SDK's batch processor exporting OTLP/HTTP protobuf to a sink in this
//             process (so the sink's small share counts against tracing): what the
//             outbound sidecar of the first hop does, deciding for new traces;
//   on-ratio-0  the same at a ratio of 0: only what a new trace that is not sampled costs
//             (the scan of its header names and the decision by its request id), no span;
//   on-unsampled-parent  the same as on, for requests that arrive with an unsampled parent (what
//             every later sidecar of an unsampled trace sees; it copies the header list,
//             which the others do not, so it counts a little against itself).
//
//   node bench/telemetry-layers.ts [--requests 100000] [--rounds 11]
//
// Rounds rotate the modes; each prints CPU (user + system) and wall time per request, and
// the median of each is reported with its spread. Requests arrive without trace headers,
// as in the L7 benchmark: each is a new trace. A new trace's sampling is keyed on its
// x-request-id, so each request carries one of 4 096 random UUIDs, as the request-id layer
// makes them: about 1 % of them, and so of the requests, are sampled.
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { Registry } from 'prom-client';
import { loadConfig } from '../src/config/load.ts';
import { createLogger } from '../src/log.ts';
import { compose, type Handler } from '../src/pipeline/compose.ts';
import type { ProxyRequest, ProxyResponse } from '../src/pipeline/exchange.ts';
import { requestLogSink } from '../src/telemetry/access-log.ts';
import { exchangeLayer } from '../src/telemetry/exchange-layer.ts';
import { httpMetricsSink } from '../src/telemetry/http-metrics-sink.ts';
import { createTelemetry, type Telemetry } from '../src/telemetry/telemetry.ts';
import { median, requestMaker, rotatingRounds, summary, timedRound } from './lib/in-process.ts';

const { values } = parseArgs({ options: { requests: { type: 'string', default: '100000' }, rounds: { type: 'string', default: '11' } } });
const REQUESTS = Number(values.requests);
const ROUNDS = Number(values.rounds);

const RESPONSE: ProxyResponse = { status: 200, headers: ['content-length', '0'], body: undefined, flag: '-' };
const upstream: Handler<ProxyRequest, ProxyResponse> = () => Promise.resolve(RESPONSE);

// The collector: answers every export, keeps nothing.
let exports = 0;
const sink = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    exports++;
    res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
  });
});
await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
const sinkPort = (sink.address() as AddressInfo).port;

const log = createLogger('warn');
async function telemetry(env: NodeJS.ProcessEnv): Promise<Telemetry & { config: ReturnType<typeof loadConfig> }> {
  const config = loadConfig({ env });
  return { ...(await createTelemetry(new Registry(), config, log, undefined)), config };
}

/** The outbound request pipeline's telemetry, as the stack composes it. */
function pipeline(t: Awaited<ReturnType<typeof telemetry>>): Handler<ProxyRequest, ProxyResponse> {
  return compose(
    [
      exchangeLayer({
        trace: t.tracing?.sink('outbound'),
        metrics: t.config.metrics.enabled ? httpMetricsSink(t.httpMetrics, 'outbound', t.workload) : undefined,
        log: requestLogSink(t.accessLog),
      }),
    ],
    upstream,
  );
}

const on = await telemetry({
  OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${sinkPort}`,
  OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
  OTEL_TRACES_SAMPLER_ARG: '0.01',
});
const onPipeline = pipeline(on);
const never = await telemetry({ OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${sinkPort}`, OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0' });
/** An unsampled parent, as the inbound sidecar sees the requests of an outbound one that did not sample them. */
const UNSAMPLED = ['traceparent', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00'];
const modes = {
  off: pipeline(await telemetry({ MESHLET_METRICS_ENABLED: 'false' })),
  metrics: pipeline(await telemetry({})),
  on: onPipeline,
  'on-ratio-0': pipeline(never),
  'on-unsampled-parent': ((req) => onPipeline({ ...req, headers: [...req.headers, ...UNSAMPLED] })) as Handler<ProxyRequest, ProxyResponse>,
};
type ModeName = keyof typeof modes;

const REQUEST_IDS = Array.from({ length: 4096 }, () => randomUUID());
const withoutId = requestMaker(['Host', 'app:8080', 'User-Agent', 'h2load nghttp2/1.52.0', 'Accept', '*/*'], (i) => ({
  peer: { kind: 'peer', address: '10.0.0.2', port: 40000 + i },
}));
const request = (i: number): ProxyRequest => {
  const req = withoutId(i);
  req.headers.push('x-request-id', REQUEST_IDS[i & 4095]!);
  return req;
};
// The loop never yields to timers, so the batch processor exports its spans at the round's
// end: inside the round, whose CPU time they belong to.
const flushSpans = () => on.tracer!.flush();

const names = Object.keys(modes) as ModeName[];
const results = await rotatingRounds(names, ROUNDS, (mode) => timedRound(modes[mode], request, REQUESTS, mode.startsWith('on') ? flushSpans : undefined));
await on.tracer?.shutdown();
sink.close();
const added = (a: ModeName, b: ModeName) => Math.round(median(results[a].map((x) => x.cpuNs)) - median(results[b].map((x) => x.cpuNs)));
process.stdout.write(
  `${JSON.stringify({
    requests: REQUESTS,
    rounds: ROUNDS,
    ...Object.fromEntries(names.map((n) => [n, { cpuNs: summary(results[n], 'cpuNs'), wallNs: summary(results[n], 'wallNs') }])),
    addedCpuNs: { metricsVsOff: added('metrics', 'off'), onVsOff: added('on', 'off'), tracingVsMetrics: added('on', 'metrics'), unsampledParentVsMetrics: added('on-unsampled-parent', 'metrics'), newUnsampledVsMetrics: added('on-ratio-0', 'metrics') },
    spanExports: exports,
  })}\n`,
);
