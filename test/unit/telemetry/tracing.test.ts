import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import t from 'tap';
import type { AcceptedConnection } from '../../../src/pipeline/connection.ts';
import type { ProxyRequest, ProxyResponse } from '../../../src/pipeline/exchange.ts';
import { get } from '../../../src/pipeline/headers.ts';
import { exchangeLayer } from '../../../src/telemetry/exchange-layer.ts';
import { requestIdFraction, TraceScan } from '../../../src/telemetry/trace-headers.ts';
import { sampled, samplingPolicy, traceSink, Tracing, type PropagatorName, type SamplerName } from '../../../src/telemetry/tracing.ts';
import { MeshletError } from '../../../src/errors.ts';
import { proxyRequest } from '../../helpers/proxy-request.ts';

// The tracing sink with the real SDK behind it (a tracer provider exporting to memory) and
// a fake inner handler: the spans it makes, the headers it hands on, and the decisions.

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';
const outboundConn = { id: 1, direction: 'outbound', security: 'mutual_tls', peer: { address: '10.0.0.5', port: 40000 }, origDst: { address: '10.1.2.3', port: 8080 }, upstreamPeer: { trustDomain: 'cluster.local', spiffeId: 'spiffe://cluster.local/ns/b/sa/b' } } as unknown as AcceptedConnection;
const inboundConn = { id: 2, direction: 'inbound', security: 'mutual_tls', peer: { address: '10.0.0.5', port: 40001 }, origDst: { address: '10.1.2.3', port: 8080 }, peerPrincipal: 'spiffe://cluster.local/ns/a/sa/a' } as unknown as AcceptedConnection;

function setup(settings: { sampler?: SamplerName; samplerArg?: number; propagators?: PropagatorName[] } = {}) {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const tracing = new Tracing(provider.getTracer('test'), { sampler: 'parentbased_always_on', samplerArg: 1, propagators: ['tracecontext', 'baggage'], ...settings });
  const spans = (): ReadableSpan[] => exporter.getFinishedSpans();
  return { tracing, spans };
}

/** Runs one request through the sink of `direction`; the inner handler sees the headers as they are sent on. */
async function run(tracing: Tracing, direction: 'inbound' | 'outbound', req: Partial<ProxyRequest>, answer: () => Promise<ProxyResponse> = async () => ({ status: 200, headers: [], body: undefined, flag: '-' })) {
  let sent: string[] = [];
  const handler = exchangeLayer({ trace: traceSink(tracing, direction) })(async (r) => {
    sent = [...r.headers];
    return answer();
  });
  await handler(proxyRequest({ conn: direction === 'inbound' ? inboundConn : outboundConn, ...req })).catch(() => {});
  return sent;
}

t.test('W3C: a sampled parent is continued; the request goes on naming the proxy span as its parent', async (t) => {
  const { tracing, spans } = setup();
  const sent = await run(tracing, 'inbound', { headers: ['Traceparent', `00-${TRACE}-${PARENT}-01`, 'tracestate', 'vendor=x', 'baggage', 'user=1', 'X-Other', 'y'], path: '/cart?token=secret' });
  const [span] = spans();
  t.ok(span, 'one span');
  t.equal(span!.kind, SpanKind.SERVER);
  t.equal(span!.name, 'GET');
  t.equal(span!.spanContext().traceId, TRACE, 'the same trace');
  t.equal(span!.parentSpanContext?.spanId, PARENT, "the caller's span is the parent");
  t.equal(get(sent, 'traceparent'), `00-${TRACE}-${span!.spanContext().spanId}-01`, 'the app sees the proxy span as its parent');
  t.equal(get(sent, 'tracestate'), 'vendor=x', 'tracestate carried on');
  t.equal(get(sent, 'baggage'), 'user=1', 'baggage passes as it came');
  t.equal(get(sent, 'x-other'), 'y', 'other headers untouched');
  t.equal(sent.filter((h) => h.toLowerCase() === 'traceparent').length, 1, 'one traceparent, the old one replaced');
  t.match(span!.attributes, {
    'http.request.method': 'GET',
    'url.path': '/cart',
    'url.scheme': 'http',
    'server.address': 'cart',
    'server.port': 8080,
    'client.address': '10.0.0.5',
    'network.protocol.version': '1.1',
    'http.response.status_code': 200,
    'meshlet.peer.principal': 'spiffe://cluster.local/ns/a/sa/a',
    'meshlet.response_flags': '-',
    'http.response.body.size': 0,
  });
  // Each attribute is paid for in every sampled span: none that another one says already.
  for (const repeated of ['client.port', 'meshlet.direction', 'meshlet.connection_security_policy', 'http.request.body.size']) t.notOk(repeated in span!.attributes, `no ${repeated}`);
  t.notOk(JSON.stringify(span!.attributes).includes('secret'), 'never the query');
});

t.test('B3 single: continued, and handed on in its own format as well as W3C', async (t) => {
  const { tracing, spans } = setup();
  const sent = await run(tracing, 'outbound', { headers: ['b3', `${TRACE}-${PARENT}-1`] });
  const [span] = spans();
  t.equal(span!.kind, SpanKind.CLIENT);
  t.equal(span!.spanContext().traceId, TRACE);
  t.equal(span!.parentSpanContext?.spanId, PARENT);
  const id = span!.spanContext().spanId;
  t.equal(get(sent, 'b3'), `${TRACE}-${id}-1`, 'b3 names the proxy span');
  t.equal(get(sent, 'traceparent'), `00-${TRACE}-${id}-01`, 'and traceparent, the configured format');
  t.match(span!.attributes, { 'url.full': 'http://cart:8080/', 'network.peer.address': '10.1.2.3', 'network.peer.port': 8080, 'meshlet.peer.principal': 'spiffe://cluster.local/ns/b/sa/b' });
});

t.test('B3 multi: a 64-bit trace id continued, handed on as multiple headers', async (t) => {
  const { tracing, spans } = setup({ propagators: ['none'] });
  const sent = await run(tracing, 'outbound', { headers: ['X-B3-TraceId', 'a3ce929d0e0e4736', 'X-B3-SpanId', PARENT, 'X-B3-Sampled', '1', 'X-B3-ParentSpanId', '1111111111111111'] });
  const [span] = spans();
  t.equal(span!.spanContext().traceId, '0000000000000000a3ce929d0e0e4736', 'the id padded to 128 bits');
  t.equal(span!.parentSpanContext?.spanId, PARENT);
  t.equal(get(sent, 'x-b3-traceid'), '0000000000000000a3ce929d0e0e4736');
  t.equal(get(sent, 'x-b3-spanid'), span!.spanContext().spanId);
  t.equal(get(sent, 'x-b3-sampled'), '1');
  t.equal(get(sent, 'x-b3-parentspanid'), undefined, "the caller's parent id is gone (it is no longer the parent)");
  t.equal(get(sent, 'traceparent'), undefined, 'no W3C: not configured, not received');
});

t.test('an unsampled parent goes through untouched, without a span', async (t) => {
  const { tracing, spans } = setup();
  const headers = ['traceparent', `00-${TRACE}-${PARENT}-00`, 'b3', `${TRACE}-${PARENT}-0`];
  const sent = await run(tracing, 'inbound', { headers: [...headers] });
  t.same(sent, headers);
  t.equal(spans().length, 0);
});

t.test('a new trace that is not sampled goes through untouched: no trace header is written', async (t) => {
  const { tracing, spans } = setup({ sampler: 'parentbased_traceidratio', samplerArg: 0, propagators: ['tracecontext', 'b3'] });
  const headers = ['accept', '*/*', 'X-Request-Id', 'b7a1c2d3-0000-4000-8000-00000000000a'];
  t.same(await run(tracing, 'outbound', { headers: [...headers] }), headers);
  t.equal(spans().length, 0);
});

t.test('trace headers without a valid parent: untouched when not sampled, replaced by the new context when sampled', async (t) => {
  const bad = ['Traceparent', `00-${TRACE}-${'0'.repeat(16)}-00`, 'tracestate', 'vendor=stale', 'X-B3-ParentSpanId', PARENT, 'accept', '*/*'];
  const off = setup({ sampler: 'parentbased_traceidratio', samplerArg: 0, propagators: ['tracecontext'] });
  t.same(await run(off.tracing, 'outbound', { headers: [...bad] }), bad, 'not sampled: handed on as they came, nothing added');
  const on = setup({ sampler: 'parentbased_always_on', propagators: ['tracecontext'] });
  const sent = await run(on.tracing, 'outbound', { headers: [...bad] });
  const [span] = on.spans();
  t.equal(span!.parentSpanContext, undefined, 'no parent: a root span');
  t.same(sent.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase()), ['accept', 'traceparent'], 'one traceparent: the invalid one, its tracestate and the orphan B3 field are gone');
  t.equal(get(sent, 'traceparent'), `00-${span!.spanContext().traceId}-${span!.spanContext().spanId}-01`);
});

t.test("a new trace's decision is its request id's: the same id decides alike on either side and every time", async (t) => {
  const { tracing, spans } = setup({ sampler: 'parentbased_traceidratio', samplerArg: 0.5 });
  // UUIDs, as meshlet and Envoy make them, and ids of any other shape (a counter's digits are not uniform: these are hashed).
  const ids = Array.from({ length: 200 }, (_, i) => (i % 2 === 0 ? randomUUID() : `order-${i}`));
  const sampledIds = async (direction: 'inbound' | 'outbound') => {
    const before = spans().length;
    for (const id of ids) await run(tracing, direction, { headers: ['x-request-id', id] });
    return spans().slice(before).map((s) => s.attributes['meshlet.request_id']);
  };
  const outbound = await sampledIds('outbound');
  t.same(await sampledIds('inbound'), outbound, 'the inbound side samples exactly the requests the outbound side did');
  t.same(await sampledIds('outbound'), outbound, 'and so does the outbound side again');
  // Binomial(200, 0.5): mean 100, sd 7; 60..140 is beyond 5 sd either way.
  t.ok(outbound.length > 60 && outbound.length < 140, `${outbound.length} of 200 sampled at 0.5`);
});

t.test('requestIdFraction: a UUID by its last eight hex digits, in any case; any other id by a hash, the same every time', async (t) => {
  t.equal(requestIdFraction('6f1c2a34-8f0e-4b7a-9c1d-2e3f00000000'), 0);
  t.equal(requestIdFraction('6f1c2a34-8f0e-4b7a-9c1d-2e3f80000000'), 0.5);
  t.equal(requestIdFraction('6F1C2A34-8F0E-4B7A-9C1D-2E3FC0000000'), 0.75, 'upper-case hex');
  const other = requestIdFraction('order-7/checkout');
  t.ok(other >= 0 && other < 1);
  t.equal(requestIdFraction('order-7/checkout'), other, 'stable');
  t.not(requestIdFraction('order-8/checkout'), other);
  t.ok(requestIdFraction('') >= 0 && requestIdFraction('xyz') < 1, 'short ids too');
  fc.assert(
    fc.property(fc.oneof(fc.string({ maxLength: 80 }), fc.uuid()), (id) => {
      const f = requestIdFraction(id);
      const uuidTail = /^[0-9a-f-]{28}[0-9a-f]{8}$/i.test(id) && id.length === 36 && id[23] === '-' ? parseInt(id.slice(28), 16) / 2 ** 32 : undefined;
      return f >= 0 && f < 1 && f === requestIdFraction(id) && (uuidTail === undefined || f === uuidTail);
    }),
    { numRuns: 2000 },
  );
  t.pass('any id: a fraction in [0, 1), the same every time; a UUID: its last eight digits');
  const counters = Array.from({ length: 1000 }, (_, i) => requestIdFraction(String(10_000_000 + i)));
  const low = counters.filter((f) => f < 0.5).length;
  // Binomial(1000, 0.5): sd 16; 420..580 is 5 sd.
  t.ok(low > 420 && low < 580, `decimal counters spread evenly: ${low} of 1000 below 0.5`);
});

t.test('a new trace that is sampled starts here: a root span, its context sent on', async (t) => {
  const { tracing, spans } = setup();
  const sent = await run(tracing, 'outbound', { headers: [] , method: 'FROB' });
  const [span] = spans();
  t.equal(span!.parentSpanContext, undefined, 'a root');
  t.equal(get(sent, 'traceparent'), `00-${span!.spanContext().traceId}-${span!.spanContext().spanId}-01`);
  t.equal(span!.name, 'HTTP', 'an unknown method names no span');
  t.match(span!.attributes, { 'http.request.method': '_OTHER', 'http.request.method_original': 'FROB' });
});

t.test("failures: error.type is the proxy's cause, the span's status an error", async (t) => {
  const { tracing, spans } = setup();
  await run(tracing, 'outbound', {}, async () => {
    throw new MeshletError('MESHLET_ERR_UPSTREAM_CONNECT', 'refused');
  });
  const [span] = spans();
  t.equal(span!.status.code, SpanStatusCode.ERROR);
  t.match(span!.attributes, { 'http.response.status_code': 503, 'error.type': 'upstream_connect_failure', 'meshlet.response_flags': 'UF' });
  await run(tracing, 'inbound', {}, async () => ({ status: 404, headers: [], body: undefined, flag: '-' }));
  t.equal(spans()[1]!.status.code, SpanStatusCode.UNSET, 'a 404 is no server error');
  await run(tracing, 'outbound', {}, async () => ({ status: 404, headers: [], body: undefined, flag: '-' }));
  t.equal(spans()[2]!.attributes['error.type'], '404', 'but a client one');
});

t.test('gRPC and HTTP/2: the protocol version and the gRPC status', async (t) => {
  const { tracing, spans } = setup();
  await run(tracing, 'inbound', { protocol: 'h2', grpc: true, method: 'POST', path: '/echo.Echo/Unary' }, async () => ({ status: 200, headers: ['grpc-status', '5'], body: undefined, flag: '-' }));
  t.match(spans()[0]!.attributes, { 'network.protocol.version': '2', 'rpc.system': 'grpc', 'rpc.grpc.status_code': 5, 'url.path': '/echo.Echo/Unary' });
});

t.test('samplers', async (t) => {
  const scan = new TraceScan();
  const decide = (name: SamplerName, arg: number, headers: string[], random = 0.5) => (scan.scan(headers), sampled(samplingPolicy(name, arg), scan, headers, () => random));
  const on = ['traceparent', `00-${TRACE}-${PARENT}-01`];
  const off = ['traceparent', `00-${TRACE}-${PARENT}-00`];
  const deferred = ['b3', `${TRACE}-${PARENT}`];
  t.equal(decide('parentbased_traceidratio', 0, on), true, "parent-based: the parent's yes");
  t.equal(decide('parentbased_traceidratio', 1, off), false, "and its no, whatever the ratio");
  t.equal(decide('parentbased_always_off', 0, on), true);
  t.equal(decide('parentbased_traceidratio', 0.1, [], 0.05), true, 'a new trace: by the ratio');
  t.equal(decide('parentbased_traceidratio', 0.1, [], 0.2), false);
  t.equal(decide('parentbased_traceidratio', 0.1, ['X-Request-Id', '6f1c2a34-8f0e-4b7a-9c1d-2e3f00000001'], 0.99), true, 'a new trace with a request id: by the id, not the dice');
  t.equal(decide('parentbased_traceidratio', 0.1, ['x-request-id', '6f1c2a34-8f0e-4b7a-9c1d-2e3fffffffff'], 0.01), false);
  t.equal(decide('parentbased_traceidratio', 0.1, ['x-request-id', '6f1c2a34-8f0e-4b7a-9c1d-2e3fffffffff', 'traceparent', `00-${TRACE}-${PARENT}-01`], 0.99), true, 'a parent still decides first');
  t.equal(decide('parentbased_traceidratio', 0.5, ['b3', `00000000000000000000000000000001-${PARENT}`], 0.99), true, "a B3 parent that defers: by the ratio, on the parent's id");
  t.equal(decide('parentbased_traceidratio', 0.5, ['b3', `ffffffff00000000000000000000000f-${PARENT}`], 0.01), false);
  t.equal(decide('parentbased_always_off', 0, deferred), false);
  t.equal(decide('parentbased_always_on', 0, ['b3', '0']), false, 'b3: 0 denies without ids');
  t.equal(decide('always_off', 0, on), false, 'not parent-based: the parent does not count');
  t.equal(decide('always_on', 0, off), true);
  // traceidratio tests the parent's id, so every hop decides the same on the same trace.
  const low = ['traceparent', `00-00000000000000000000000000000001-${PARENT}-00`];
  const high = ['traceparent', `00-ffffffff00000000000000000000000f-${PARENT}-01`];
  t.equal(decide('traceidratio', 0.5, low, 0.99), true, 'a low id is in');
  t.equal(decide('traceidratio', 0.5, high, 0.01), false, 'a high id is out, whatever the dice');
});

t.test('1 % sampling: about one request in a hundred gets a span', async (t) => {
  const { tracing, spans } = setup({ sampler: 'parentbased_traceidratio', samplerArg: 0.01 });
  for (let i = 0; i < 5000; i++) await run(tracing, 'outbound', {});
  // Binomial(5000, 0.01): mean 50, sd 7; 20..90 is beyond 4 sd either way.
  t.ok(spans().length > 20 && spans().length < 90, `${spans().length} of 5000`);
});
