import { Registry } from 'prom-client';
import t from 'tap';
import { MeshletError } from '../../../src/errors.ts';
import { BufferedBody, type BodySink } from '../../../src/pipeline/body.ts';
import type { AcceptedConnection, ResponseFlag } from '../../../src/pipeline/connection.ts';
import type { ProxyResponse, WorkloadMetadata } from '../../../src/pipeline/exchange.ts';
import { Scrape } from '../../../src/testbed/metrics.ts';
import { exchangeLayer } from '../../../src/telemetry/exchange-layer.ts';
import { httpMetricsSink, serviceOf } from '../../../src/telemetry/http-metrics-sink.ts';
import { DURATION_BUCKETS_MS, HttpMetrics, MAX_HTTP_SERIES } from '../../../src/telemetry/http-metrics.ts';
import { localWorkload } from '../../../src/telemetry/workload.ts';
import { proxyRequest } from '../../helpers/proxy-request.ts';

// The HTTP metrics as Prometheus reads them: requests through the recording layer with a
// fake inner handler, then the registry's text parsed with a real Prometheus parser.

const CLIENT = 'spiffe://cluster.local/ns/shop/sa/frontend';
const SERVER = 'spiffe://cluster.local/ns/shop/sa/cart';
const cartPod: WorkloadMetadata = { name: 'cart', namespace: 'shop', app: 'cart', version: 'v2' };

function outboundConn(id: number): AcceptedConnection {
  return { id, direction: 'outbound', security: 'mutual_tls', upstreamPeer: { spiffeId: SERVER, trustDomain: 'cluster.local' } } as unknown as AcceptedConnection;
}

function setup(prefix = 'meshlet', direction: 'outbound' | 'inbound' = 'outbound') {
  const registry = new Registry();
  const metrics = new HttpMetrics(registry, prefix);
  const local = localWorkload({ name: '', namespace: '', app: 'frontend', version: 'v1', pod: 'frontend-6b8f9c7d5d-k2j4x' }, direction === 'outbound' ? CLIENT : SERVER);
  const layer = exchangeLayer({ metrics: httpMetricsSink(metrics, direction, local) });
  const scrape = async () => new Scrape(await registry.metrics());
  return { registry, metrics, layer, scrape };
}

const answer = (status: number, body?: string, peer?: WorkloadMetadata): ProxyResponse => ({
  status,
  headers: [],
  body: body === undefined ? undefined : new BufferedBody([Buffer.from(body)]),
  flag: '-',
  ...(peer ? { peer } : {}),
});

/** Reads a response body to its end, as a listener would. */
const drain = (response: ProxyResponse) =>
  new Promise<void>((resolve) => {
    if (!response.body) return resolve();
    const sink: BodySink = { data: () => true, end: () => resolve(), abort: () => resolve() };
    response.body.pipe(sink);
  });

t.test('after N requests with known codes, the counters are N per code, with the labels of both sides', async (t) => {
  const { layer, scrape } = setup();
  const codes: Array<[number, number]> = [
    [200, 7],
    [404, 3],
    [503, 2],
  ];
  let conn = 0;
  for (const [code, n] of codes) {
    for (let i = 0; i < n; i++) {
      // A connection per request: label sets are shared between connections, not made per connection.
      const response = await layer(async () => answer(code, 'twelve bytes', cartPod))(proxyRequest({ conn: outboundConn(++conn), authority: 'cart.shop.svc.cluster.local:8080' }));
      await drain(response);
    }
  }
  const s = await scrape();
  for (const [code, n] of codes) t.equal(s.value('meshlet_requests_total', { response_code: String(code) }), n, `${n} × ${code}`);
  const family = s.families.get('meshlet_requests_total')!;
  t.equal(s.types.get('meshlet_requests_total'), 'COUNTER');
  t.equal(family.metrics.length, 3, 'one series per code');
  t.match(family.metrics[0]!.labels, {
    reporter: 'source',
    source_workload: 'frontend',
    source_workload_namespace: 'shop',
    source_principal: CLIENT,
    source_app: 'frontend',
    source_version: 'v1',
    source_canonical_service: 'frontend',
    source_canonical_revision: 'v1',
    destination_workload: 'cart',
    destination_workload_namespace: 'shop',
    destination_principal: SERVER,
    destination_app: 'cart',
    destination_version: 'v2',
    destination_service: 'cart.shop.svc.cluster.local',
    destination_service_name: 'cart',
    destination_service_namespace: 'shop',
    request_protocol: 'http',
    grpc_response_status: '',
    response_flags: '-',
    connection_security_policy: 'mutual_tls',
  });
  t.same(s.histogram('meshlet_response_bytes', { response_code: '200' }), { count: 7, sum: 7 * 12 }, 'body bytes, as they flowed');
  t.same(s.histogram('meshlet_request_bytes'), { count: 12, sum: 0 }, 'no request bodies');
  t.equal(s.histogram('meshlet_request_duration_milliseconds').count, 12);
});

t.test('the duration histogram has design.md’s buckets, cumulative, ending in +Inf = count', async (t) => {
  const { layer, scrape } = setup();
  for (let i = 0; i < 4; i++) await layer(async () => answer(200))(proxyRequest({ conn: outboundConn(1) }));
  const s = await scrape();
  t.equal(s.types.get('meshlet_request_duration_milliseconds'), 'HISTOGRAM');
  const buckets = s.samples('meshlet_request_duration_milliseconds_bucket', { reporter: 'source' });
  t.same(
    buckets.map((b) => b.labels?.le),
    [...DURATION_BUCKETS_MS.map(String), '+Inf'],
    'the bounds, in order',
  );
  const values = buckets.map((b) => Number(b.value));
  t.ok(values.every((v, i) => i === 0 || v >= values[i - 1]!), 'cumulative');
  t.equal(values.at(-1), 4, '+Inf is every request');
  t.same(s.histogram('meshlet_request_duration_milliseconds').count, 4);
});

t.test('the proxy’s own answers are counted with their code and flag; gRPC with its status', async (t) => {
  const { layer, scrape } = setup();
  const refused = new MeshletError('MESHLET_ERR_UPSTREAM_CONNECT', 'refused');
  await t.rejects(layer(async () => Promise.reject(refused))(proxyRequest({ conn: outboundConn(1) })));
  await t.rejects(layer(async () => Promise.reject(refused))(proxyRequest({ conn: outboundConn(1), grpc: true })));
  const s = await scrape();
  t.equal(s.value('meshlet_requests_total', { response_code: '503', response_flags: 'UF', request_protocol: 'http', destination_workload: 'unknown' }), 1, 'no peer metadata: unknown');
  t.equal(s.value('meshlet_requests_total', { response_code: '200', response_flags: 'UF', request_protocol: 'grpc', grpc_response_status: '14' }), 1);
});

t.test('one code with different flags is counted in a series per flag, however they alternate', async (t) => {
  const { layer, scrape } = setup();
  const flags: ResponseFlag[] = ['-', 'UO', '-', '-', 'URX', 'UO', '-'];
  for (const flag of flags) {
    const response = await layer(async () => ({ ...answer(503), flag }))(proxyRequest({ conn: outboundConn(1) }));
    await drain(response);
  }
  const s = await scrape();
  for (const flag of new Set(flags)) {
    t.equal(s.value('meshlet_requests_total', { response_code: '503', response_flags: flag }), flags.filter((f) => f === flag).length, `503 ${flag}`);
  }
});

t.test('inbound reports as destination: the caller is the source, this pod the destination', async (t) => {
  const { layer, scrape } = setup('istio', 'inbound');
  const conn = { id: 1, direction: 'inbound', security: 'mutual_tls', peerPrincipal: CLIENT } as unknown as AcceptedConnection;
  await layer(async () => answer(200))(proxyRequest({ conn, authority: 'cart:8080', peer: { name: 'frontend', namespace: 'shop', app: 'frontend', version: '' } }));
  const s = await scrape();
  t.equal(s.value('meshlet_requests_total'), 0, 'nothing under the default prefix');
  const labels = s.families.get('istio_requests_total')?.metrics[0]?.labels;
  t.match(labels, {
    reporter: 'destination',
    source_workload: 'frontend',
    source_principal: CLIENT,
    source_canonical_revision: 'latest',
    source_version: 'unknown',
    destination_workload: 'frontend',
    destination_principal: SERVER,
    destination_service: 'cart',
    destination_service_namespace: 'shop',
  });
});

t.test('label values from outside cannot grow the series without bound', async (t) => {
  const { layer, scrape } = setup();
  for (let i = 0; i < MAX_HTTP_SERIES + 50; i++) await layer(async () => answer(200))(proxyRequest({ conn: outboundConn(1), authority: `host-${i}:80` }));
  const s = await scrape();
  const family = s.families.get('meshlet_requests_total')!;
  t.equal(family.metrics.length, MAX_HTTP_SERIES + 1, 'the cap, then one series for the rest');
  t.equal(s.value('meshlet_requests_total', { destination_service: 'unknown', response_code: '200', reporter: 'source' }), 50, 'the rest still counted');
  t.equal(s.value('meshlet_requests_total'), MAX_HTTP_SERIES + 50);
});

t.test('requests that alternate between destinations, peers and connections are each counted in their own series', async (t) => {
  const { layer, scrape } = setup();
  const plain = { id: 9, direction: 'outbound', security: 'none' } as unknown as AcceptedConnection;
  const otherServer = { ...outboundConn(8), upstreamPeer: { spiffeId: 'spiffe://cluster.local/ns/shop/sa/payments', trustDomain: 'cluster.local' } } as unknown as AcceptedConnection;
  const payments: WorkloadMetadata = { name: 'payments', namespace: 'shop', app: 'payments', version: 'v1' };
  // Each kind differs from the one before it in one thing only; runs of the same kind too.
  const kinds = [
    { conn: outboundConn(1), authority: 'cart.shop:80', peer: cartPod },
    { conn: outboundConn(2), authority: 'cart.shop:80', peer: cartPod },
    { conn: outboundConn(1), authority: 'orders.shop:80', peer: cartPod },
    { conn: outboundConn(1), authority: 'cart.shop:80', peer: payments },
    { conn: plain, authority: 'cart.shop:80', peer: cartPod },
    { conn: otherServer, authority: 'cart.shop:80', peer: cartPod },
  ];
  const order = [0, 0, 1, 2, 0, 3, 3, 3, 0, 4, 0, 5, 1, 5, 2, 4, 4, 0];
  for (const k of order) {
    const { conn, authority, peer } = kinds[k]!;
    await layer(async () => answer(200, undefined, peer))(proxyRequest({ conn, authority: String(authority) }));
  }
  const s = await scrape();
  const count = (labels: Record<string, string>) => s.value('meshlet_requests_total', labels);
  t.equal(count({ destination_service: 'cart.shop', destination_workload: 'cart', connection_security_policy: 'mutual_tls', destination_principal: SERVER }), 8, 'cart.shop:80 to cart over mTLS (two connections, one series)');
  t.equal(count({ destination_service: 'orders.shop' }), 2, 'another authority');
  t.equal(count({ destination_service: 'cart.shop', destination_workload: 'payments' }), 3, 'the same authority answered by payments');
  t.equal(count({ destination_service: 'cart.shop', connection_security_policy: 'none' }), 3, 'plaintext');
  t.equal(count({ destination_principal: 'spiffe://cluster.local/ns/shop/sa/payments' }), 2, 'another server identity');
  t.equal(count({}), order.length, 'every request once');
});

t.test('requests under way are a gauge', async (t) => {
  const { layer, scrape } = setup();
  let release!: () => void;
  const pending = layer(() => new Promise((resolve) => (release = () => resolve(answer(200)))))(proxyRequest({ conn: outboundConn(1) }));
  t.equal((await scrape()).value('meshlet_proxy_active_requests', { reporter: 'source' }), 1);
  release();
  await pending;
  t.equal((await scrape()).value('meshlet_proxy_active_requests', { reporter: 'source' }), 0);
});

t.test('destination_service from the authority', async (t) => {
  t.same(serviceOf('cart.shop.svc.cluster.local:8080', ''), { host: 'cart.shop.svc.cluster.local', name: 'cart', namespace: 'shop' });
  t.same(serviceOf('Cart:80', 'shop'), { host: 'cart', name: 'cart', namespace: 'shop' }, 'a bare name is in the given namespace, lower-cased');
  t.same(serviceOf('cart', ''), { host: 'cart', name: 'cart', namespace: 'unknown' });
  t.same(serviceOf('10.1.2.3:8080', 'shop'), { host: '10.1.2.3', name: '10.1.2.3', namespace: 'unknown' }, 'an address names no service');
  t.same(serviceOf('[fd00::1]:8080', 'shop'), { host: '[fd00::1]', name: '[fd00::1]', namespace: 'unknown' });
  t.same(serviceOf('', 'shop'), { host: 'unknown', name: 'unknown', namespace: 'unknown' });
});
