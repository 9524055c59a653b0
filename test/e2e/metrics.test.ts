import t from 'tap';
import { scrape, type Scrape } from '../../src/testbed/metrics.ts';
import { testbedUnavailable } from '../../src/testbed/netns.ts';
import { curl, eventually, grpcClient, meshedPair, PORT } from './l7-common.ts';

// The HTTP metrics and the access log of a sidecar pair over mTLS, read as Prometheus and
// a log collector would: real pods, real curl, both proxies' /stats/prometheus scraped on
// 15020 and parsed with a Prometheus text parser. a reports as source under the default
// prefix; b as destination under `istio`, with its access log on.
// promtool and PromQL against a real Prometheus server: prometheus.test.ts.

const skip = testbedUnavailable();
if (skip) {
  t.plan(0, skip);
  process.exit(0);
}

t.test('after N requests with known codes, both sides count N per code, with both workloads and principals', async (t) => {
  const { a, b, idA, idB, proxyB, dir } = await meshedPair(t, {
    a: { MESHLET_WORKLOAD_POD: 'client-a-7d4b9c8f6d-x2x9q', MESHLET_WORKLOAD_APP: 'client', MESHLET_WORKLOAD_VERSION: 'v1' },
    b: { MESHLET_WORKLOAD_POD: 'server-b-0', MESHLET_WORKLOAD_APP: 'server', MESHLET_METRICS_PREFIX: 'istio', MESHLET_ACCESS_LOG_ENABLED: 'true' },
  });
  const plan: Array<{ url: string; n: number; code: number }> = [
    { url: `http://${b.ipv4}:${PORT.h1}/ok`, n: 5, code: 200 },
    { url: `http://${b.ipv4}:${PORT.h1}/missing?status=404`, n: 3, code: 404 },
    { url: `http://${b.ipv4}:${PORT.closed}/nobody`, n: 2, code: 503 },
  ];
  const [beforeA, beforeB] = [await scrape(a), await scrape(b)];
  for (const { url, n, code } of plan) {
    for (let i = 0; i < n; i++) {
      const r = await curl(a, dir, ['-H', 'Authorization: Bearer do-not-log-me', url]);
      t.equal(r.status, code, `${url}: ${r.stderr}`);
    }
  }

  const source = { source_workload: 'client-a', source_workload_namespace: 'ns-a', source_principal: idA.spiffeId, source_app: 'client', source_version: 'v1' };
  const destination = { destination_workload: 'server-b', destination_workload_namespace: 'ns-b', destination_principal: idB.spiffeId, destination_app: 'server' };
  const both = { ...source, ...destination, connection_security_policy: 'mutual_tls', request_protocol: 'http' };
  const delta = (before: Scrape, after: Scrape, name: string, labels: Record<string, string>) => after.value(name, labels) - before.value(name, labels);

  // The inbound side records when it hands the response's last byte on, which is before curl has it; a scrape may still race it.
  let afterB = await scrape(b);
  await eventually(async () => (afterB = await scrape(b)).value('istio_requests_total') - beforeB.value('istio_requests_total') >= 12, "b's counters (10 requests, 2 of them tried twice)");
  const afterA = await scrape(a);

  for (const { n, code } of plan) {
    // b's own 503 (it could not reach its app) says the request never reached an app, so
    // a's default policy tries once more (docs/resilience.md): b answers each try, and a
    // hands the last answer on flagged URX.
    const flag = code === 503 ? 'UF' : '-';
    const tries = code === 503 ? 2 : 1;
    t.equal(
      delta(beforeA, afterA, 'meshlet_requests_total', { ...both, reporter: 'source', response_code: String(code), response_flags: code === 503 ? 'URX' : '-' }),
      n,
      `a (source) counted ${n} × ${code}, answered by b's sidecar or app${code === 503 ? ', retried once and flagged URX' : ''}`,
    );
    t.equal(
      delta(beforeB, afterB, 'istio_requests_total', { ...both, reporter: 'destination', response_code: String(code), response_flags: flag }),
      n * tries,
      `b (destination) counted ${n * tries} × ${code}${flag !== '-' ? ` flagged ${flag}: its own answer, to each of a's tries` : ''}`,
    );
  }
  t.equal(afterA.value('istio_requests_total'), 0, "a's metrics carry a's prefix only");
  t.equal(afterB.value('meshlet_requests_total'), 0, "and b's b's");
  t.equal(afterA.types.get('meshlet_request_duration_milliseconds'), 'HISTOGRAM');
  t.equal(afterA.histogram('meshlet_request_duration_milliseconds', both).count - beforeA.histogram('meshlet_request_duration_milliseconds', both).count, 10, 'a duration per request');
  const okBytes = afterB.histogram('istio_response_bytes', { response_code: '200' });
  t.equal(okBytes.count, 5);
  t.ok(okBytes.sum > 5 * 100, "the app's JSON reports, counted as they flowed");
  t.equal(afterA.value('meshlet_proxy_active_requests'), 0, 'nothing under way any more');
  t.equal(afterB.value('istio_proxy_active_requests'), 0);
  t.ok(
    afterB.value('istio_tcp_connections_opened_total', { reporter: 'destination', source_principal: idA.spiffeId, ...destination, connection_security_policy: 'mutual_tls' }) >= 1,
    "b's TCP metrics: the pooled connection from a, labelled with a's principal and b's workload",
  );
  t.ok(afterB.value('istio_identity_cert_expiration_timestamp_seconds') > Date.now() / 1000, "b's certificate expiry, under b's prefix");

  await t.test('gRPC: counted with grpc_response_status from the trailers, or from the headers of a trailers-only answer', async (t) => {
    const [before1, before2] = [await scrape(a), await scrape(b)];
    const calls = await grpcClient(a, b.ipv4, PORT.grpc, ['unary', 'fail']);
    t.equal(calls.unary?.code, 0, 'unary OK');
    t.equal(calls.fail?.code, 5, 'fail: NOT_FOUND');
    let after2 = await scrape(b);
    await eventually(async () => (after2 = await scrape(b)).value('istio_requests_total', { request_protocol: 'grpc' }) - before2.value('istio_requests_total', { request_protocol: 'grpc' }) >= 2, "b's gRPC counters");
    const after1 = await scrape(a);
    for (const [status, name] of [['0', 'OK'], ['5', 'NOT_FOUND']] as const) {
      const labels = { ...both, request_protocol: 'grpc', response_code: '200', grpc_response_status: status };
      t.equal(delta(before1, after1, 'meshlet_requests_total', { ...labels, reporter: 'source' }), 1, `a: one call ${name}`);
      t.equal(delta(before2, after2, 'istio_requests_total', { ...labels, reporter: 'destination' }), 1, `b: one call ${name}`);
    }
  });

  await t.test("b's access log: a line per request, with the caller's identity and never its credentials", async (t) => {
    const lines = proxyB
      .output()
      .stdout.split('\n')
      .filter((l) => l.includes('"msg":"request"'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    t.equal(lines.filter((l) => l.path === '/ok').length, 5);
    t.equal(lines.filter((l) => l.path === '/missing' && l.response_code === 404).length, 3, 'the path without its query');
    t.match(lines.find((l) => l.path === '/nobody'), { response_code: 503, response_flags: 'UF', meshlet_error: 'upstream_connect_failure' });
    t.match(lines.find((l) => l.path === '/ok'), {
      level: 'info',
      direction: 'inbound',
      method: 'GET',
      protocol: 'HTTP/1.1',
      peer_principal: idA.spiffeId,
      peer_workload: 'ns-a/client-a',
      connection_security_policy: 'mutual_tls',
      request_id: /^[0-9a-f-]{36}$/,
      upstream_host: `${b.ipv4}:${PORT.h1}`,
    });
    t.notOk(proxyB.output().stdout.includes('do-not-log-me'), 'the Authorization value is in no line');
  });
});
