// The batch processor exports on a timer (5 s by default): shortened for the test, as a
// deployment would with OTEL_BSP_SCHEDULE_DELAY. Set before any sidecar is built.
process.env.OTEL_BSP_SCHEDULE_DELAY = '50';

import http from 'node:http';
import type http2 from 'node:http2';
import t, { type Test } from 'tap';
import { get } from '../../../src/pipeline/headers.ts';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../../../src/testbed/otlp-receiver.ts';
import { h1App, h2App, h2Request, h2Session } from '../../helpers/http.ts';
import { through } from '../../helpers/http-sidecars.ts';
import { until } from '../proxy/mtls-harness.ts';

// Real sidecars on loopback (an outbound and an inbound one over meshlet's mTLS), each
// with the real OTLP/HTTP exporter, and a real OTLP receiver: the spans of one request,
// how they link, and what the app receives. HTTP/1.1 and HTTP/2, protobuf and JSON.

const SERVER = 2;
const CLIENT = 3;

async function receiver(t: Test): Promise<OtlpReceiver> {
  const r = await startOtlpReceiver();
  t.teardown(() => r.close());
  return r;
}

async function spansOf(r: OtlpReceiver, traceId: string, n: number): Promise<ReceivedSpan[]> {
  await until(() => r.spans.filter((s) => s.traceId === traceId).length >= n, `${n} spans of trace ${traceId}`);
  return r.spans.filter((s) => s.traceId === traceId);
}

const get1 = (url: string, headers: Record<string, string>) =>
  new Promise<number>((resolve, reject) => {
    http.get(url, { headers, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    }).on('error', reject);
  });

for (const protocol of ['http/protobuf', 'http/json'] as const) {
  t.test(`HTTP/1.1 through a sidecar pair, exported as ${protocol}: CLIENT → SERVER → the app`, async (t) => {
    const r = await receiver(t);
    const app = await h1App((_, res) => res.writeHead(201).end('made'));
    t.teardown(() => app.close());
    const { port } = await through(t, 'mesh', () => app.port, {
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${r.port}`,
      OTEL_EXPORTER_OTLP_PROTOCOL: protocol,
      OTEL_SERVICE_NAME: 'shop',
    });
    const trace = 'aaaabbbbccccddddeeeeffff00001111';
    const caller = '1234567890abcdef';
    t.equal(await get1(`http://127.0.0.1:${port}/orders/7?secret=1`, { traceparent: `00-${trace}-${caller}-01`, tracestate: 'shop=1', 'user-agent': 'test-agent' }), 201);
    const spans = await spansOf(r, trace, 2);
    const client = spans.find((s) => s.kind === CLIENT)!;
    const server = spans.find((s) => s.kind === SERVER)!;
    t.ok(client && server, 'a CLIENT and a SERVER span');
    t.equal(client.parentSpanId, caller, "the outbound span's parent is the caller's span");
    t.equal(server.parentSpanId, client.spanId, "the inbound span's parent is the outbound span");
    t.equal(client.encoding, protocol === 'http/json' ? 'json' : 'protobuf');
    t.equal(client.traceState, 'shop=1');
    const seen = app.requests[0]!.rawHeaders;
    t.equal(get(seen, 'traceparent'), `00-${trace}-${server.spanId}-01`, "the app's parent is the inbound span");
    t.equal(get(seen, 'tracestate'), 'shop=1');
    t.equal(client.name, 'GET');
    t.match(client.attributes, { 'http.request.method': 'GET', 'url.full': /^http:\/\/127\.0\.0\.1:\d+\/orders\/7$/, 'server.address': '127.0.0.1', 'http.response.status_code': 201, 'network.protocol.version': '1.1', 'meshlet.response_flags': '-', 'user_agent.original': 'test-agent' });
    t.match(server.attributes, { 'url.path': '/orders/7', 'http.response.status_code': 201, 'meshlet.peer.principal': 'spiffe://cluster.local/ns/a/sa/client' });
    t.match(server.resource, { 'service.name': 'shop', 'telemetry.sdk.name': 'opentelemetry', 'telemetry.sdk.language': 'nodejs' });
    t.ok(server.endTimeUnixNano >= server.startTimeUnixNano && client.endTimeUnixNano >= server.endTimeUnixNano, 'the client span encloses the server span');
  });
}

t.test('HTTP/2 through a sidecar pair: the spans say HTTP/2, a B3 caller gets B3 back', async (t) => {
  const r = await receiver(t);
  const seen: Array<http2.IncomingHttpHeaders> = [];
  const app = await h2App((stream, headers) => {
    seen.push(headers);
    stream.respond({ ':status': 200 });
    stream.end('ok');
  });
  t.teardown(() => app.close());
  const { port } = await through(t, 'mesh', () => app.port, { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `http://127.0.0.1:${r.port}/v1/traces` });
  const trace = '0123456789abcdef0123456789abcdef';
  const session = h2Session(t, port);
  const res = await h2Request(session, { ':path': '/h2', b3: `${trace}-fedcba9876543210-1` });
  t.equal(res.status, 200);
  const spans = await spansOf(r, trace, 2);
  const server = spans.find((s) => s.kind === SERVER)!;
  t.equal(server.attributes['network.protocol.version'], '2');
  t.equal(seen[0]?.b3, `${trace}-${server.spanId}-1`, 'B3 single, naming the inbound span');
  t.equal(seen[0]?.traceparent, `00-${trace}-${server.spanId}-01`, 'and W3C');
});

t.test('no endpoint: no span, and the request goes through as it came', async (t) => {
  const r = await receiver(t);
  const app = await h1App((_, res) => res.end('ok'));
  t.teardown(() => app.close());
  const { port } = await through(t, 'mesh', () => app.port, {});
  t.equal(await get1(`http://127.0.0.1:${port}/`, { traceparent: '00-aaaabbbbccccddddeeeeffff00001111-1234567890abcdef-01' }), 200);
  t.equal(get(app.requests[0]!.rawHeaders, 'traceparent'), '00-aaaabbbbccccddddeeeeffff00001111-1234567890abcdef-01', 'untouched');
  t.equal(r.spans.length, 0);
});

t.test('sampling at 0.5 through a sidecar pair: both sidecars decide alike by the request id, and an unsampled request carries no trace header', async (t) => {
  const r = await receiver(t);
  const app = await h1App((_, res) => res.end('ok'));
  t.teardown(() => app.close());
  const { port } = await through(t, 'mesh', () => app.port, {
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${r.port}`,
    OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
    OTEL_TRACES_SAMPLER_ARG: '0.5',
  });
  for (let i = 0; i < 40; i++) t.equal(await get1(`http://127.0.0.1:${port}/${i}`, {}), 200);
  const traced = app.requests.filter((q) => get(q.rawHeaders, 'traceparent') !== undefined).map((q) => get(q.rawHeaders, 'x-request-id')!);
  t.ok(traced.length > 0 && traced.length < 40, `some sampled, some not (${traced.length} of 40)`);
  await until(() => r.spans.length >= 2 * traced.length, `${2 * traced.length} spans`);
  const ids = (kind: number) => r.spans.filter((s) => s.kind === kind).map((s) => s.attributes['meshlet.request_id']).sort();
  t.same(ids(CLIENT), [...traced].sort(), 'the outbound sidecar made a span for exactly the requests the app saw a traceparent on');
  t.same(ids(SERVER), [...traced].sort(), 'and so did the inbound one: the same decisions, with no unsampled context written');
  t.ok(app.requests.every((q) => get(q.rawHeaders, 'x-request-id') !== undefined), 'every request had an id');
});
