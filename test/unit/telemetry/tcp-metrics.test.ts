import { Registry } from 'prom-client';
import t from 'tap';
import type { AcceptedConnection, ConnectionOutcome } from '../../../src/pipeline/connection.ts';
import { Scrape } from '../../../src/testbed/metrics.ts';
import { tcpMetricsLayer } from '../../../src/telemetry/tcp-metrics-layer.ts';
import { createTcpMetrics } from '../../../src/telemetry/tcp-metrics.ts';
import { localWorkload } from '../../../src/telemetry/workload.ts';

// The TCP metrics of connections through the layer with a fake inner handler, read back
// with a Prometheus text parser.

const CLIENT = 'spiffe://cluster.local/ns/shop/sa/frontend';
const SERVER = 'spiffe://cluster.local/ns/shop/sa/cart';

t.test('inbound connections are counted with this workload as destination and the verified caller as source', async (t) => {
  const registry = new Registry();
  const metrics = createTcpMetrics(registry, 'istio');
  const local = localWorkload({ name: '', namespace: '', app: 'cart', version: 'v3', pod: 'cart-7d4b9c8f6d-x2x9q' }, SERVER);
  let release!: () => void;
  const handler = tcpMetricsLayer(metrics, local)((conn) =>
    conn.id === 1 ? new Promise<ConnectionOutcome>((resolve) => (release = () => resolve({ receivedBytes: 100, sentBytes: 2000, flag: 'UC' }))) : Promise.resolve({ receivedBytes: 5, sentBytes: 7, flag: '-' }),
  );
  const conn = (id: number, security: 'mutual_tls' | 'none') => ({ id, direction: 'inbound', security, ...(security === 'mutual_tls' ? { peerPrincipal: CLIENT } : {}) }) as unknown as AcceptedConnection;
  const first = handler(conn(1, 'mutual_tls'));
  const scrape = async () => new Scrape(await registry.metrics());
  t.equal((await scrape()).value('istio_proxy_active_connections', { reporter: 'destination' }), 1, 'open: active');
  release();
  await first;
  await handler(conn(2, 'mutual_tls'));
  await handler(conn(3, 'none'));
  const s = await scrape();
  const mtls = {
    reporter: 'destination',
    source_principal: CLIENT,
    source_workload: 'unknown',
    destination_workload: 'cart',
    destination_workload_namespace: 'shop',
    destination_principal: SERVER,
    destination_app: 'cart',
    destination_version: 'v3',
    connection_security_policy: 'mutual_tls',
  };
  t.equal(s.value('istio_tcp_connections_opened_total', mtls), 2);
  t.equal(s.value('istio_tcp_connections_closed_total', { ...mtls, response_flags: 'UC' }), 1);
  t.equal(s.value('istio_tcp_connections_closed_total', { ...mtls, response_flags: '-' }), 1);
  t.equal(s.value('istio_tcp_received_bytes_total', mtls), 105);
  t.equal(s.value('istio_tcp_sent_bytes_total', mtls), 2007);
  t.equal(s.value('istio_tcp_connections_opened_total', { connection_security_policy: 'none', source_principal: 'unknown' }), 1, 'a plaintext peer has no principal');
  t.equal(s.value('istio_proxy_active_connections', { reporter: 'destination' }), 0);
  t.equal(s.types.get('istio_tcp_connections_opened_total'), 'COUNTER');
});
