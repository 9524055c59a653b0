import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { testbedUnavailable, type Pod } from '../../src/testbed/netns.ts';
import { curl, eventually, grpcClient, meshedPair, PORT, sleep } from './l7-common.ts';

// The sidecars' metrics as Prometheus itself reads them: `promtool check metrics` on what
// /stats/prometheus serves after traffic, and a real Prometheus server (Debian's package)
// that scrapes both sidecars of a pair every second, queried with PromQL over its HTTP
// API. Prometheus runs in a third pod outside the mesh, as a cluster's would; the
// sidecars' 15020 is not intercepted, so it scrapes them directly.

const PROMETHEUS = '/usr/bin/prometheus';
const PROMTOOL = '/usr/bin/promtool';
const skip = testbedUnavailable() ?? (!existsSync(PROMETHEUS) || !existsSync(PROMTOOL) ? `needs ${PROMETHEUS} and ${PROMTOOL} (apt-get install prometheus)` : undefined);
if (skip) {
  t.plan(0, skip);
  process.exit(0);
}

const DELAY_MS = 300;

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

/** An instant PromQL query against the server in `pod`, at `time` (Unix seconds) or now; a scalar answer is one sample without labels. */
async function query(pod: Pod, promql: string, time?: number): Promise<Sample[]> {
  const args = ['curl', '-sSG', 'http://127.0.0.1:9090/api/v1/query', '--data-urlencode', `query=${promql}`];
  if (time !== undefined) args.push('--data-urlencode', `time=${time}`);
  const { stdout } = await pod.runOk(args);
  const answer = JSON.parse(stdout) as { status: string; data: { resultType: string; result: Sample[] | [number, string] } };
  if (answer.status !== 'success') throw new Error(`${promql}: ${stdout}`);
  const { resultType, result } = answer.data;
  return resultType === 'scalar' ? [{ metric: {}, value: result as [number, string] }] : (result as Sample[]);
}

/** The one value a query answers; NaN when it answers none or several. */
const scalar = async (pod: Pod, promql: string, time?: number) => {
  const r = await query(pod, promql, time);
  return r.length === 1 ? Number(r[0]!.value[1]) : Number.NaN;
};

t.test('Prometheus reads the sidecars: promtool accepts the text, PromQL over a real server gives the counts, rates and quantiles', async (t) => {
  // a holds every request to b's HTTP app for 300 ms (fault injection), so each of a's
  // durations falls in one histogram bucket, (250, 500] ms, whatever the machine's speed.
  const { a, b, tb, dir } = await meshedPair(
    t,
    { a: { MESHLET_RESILIENCE_DESTINATIONS: `[{name: slow, match: {ports: [${PORT.h1}]}, fault: {delay: {percent: 100, duration: ${DELAY_MS}ms}}}]` } },
    ['prom'],
  );
  const prom = tb.pod('prom');
  const send = async (t: Test, path: string, code: number) => {
    const r = await curl(a, dir, [`http://${b.ipv4}:${PORT.h1}${path}`]);
    t.equal(r.status, code, `${path}: ${r.stderr}`);
  };

  await t.test('promtool check metrics: the text parses, with only the known lint findings', async (t) => {
    await send(t, '/ok', 200);
    await send(t, '/missing?status=404', 404);
    const calls = await grpcClient(a, b.ipv4, PORT.grpc, ['unary']);
    t.equal(calls.unary?.code, 0);
    for (const pod of [a, b]) {
      const { stdout: text } = await pod.runOk(['curl', '-sf', 'http://127.0.0.1:15020/stats/prometheus']);
      t.match(text, /meshlet_requests_total\{/, `${pod.name}: requests counted`);
      const r = await pod.run([PROMTOOL, 'check', 'metrics'], { input: text });
      const problems = (r.stdout + r.stderr).split('\n').filter((l) => l.trim() !== '');
      // promtool exits 1 when the text does not parse and 3 for lint findings alone. Two
      // kinds are known and kept: the histogram is in milliseconds because Istio's is (its
      // dashboards query istio_request_duration_milliseconds), and prom-client's default
      // Node.js gauges end in _total. Anything else is a finding of ours.
      t.not(r.code, 1, `${pod.name}: the exposition parses (${r.stderr})`);
      t.same(problems, [
        'meshlet_request_duration_milliseconds use base unit "seconds" instead of "milliseconds"',
        'nodejs_active_handles_total non-counter metrics should not have "_total" suffix',
        'nodejs_active_requests_total non-counter metrics should not have "_total" suffix',
        'nodejs_active_resources_total non-counter metrics should not have "_total" suffix',
      ], `${pod.name}: no other finding`);
    }
  });

  await t.test('a real Prometheus server scrapes both sidecars every second; PromQL over its API', async (t) => {
    const data = path.join(dir, 'prometheus');
    mkdirSync(data, { recursive: true });
    const config = path.join(dir, 'prometheus.yml');
    writeFileSync(
      config,
      [
        'global: { scrape_interval: 1s, evaluation_interval: 1s }',
        'scrape_configs:',
        '  - job_name: meshlet',
        '    metrics_path: /stats/prometheus',
        `    static_configs: [{ targets: ["${a.ipv4}:15020", "${b.ipv4}:15020"] }]`,
        '',
      ].join('\n'),
    );
    const server = prom.spawn([PROMETHEUS, `--config.file=${config}`, `--storage.tsdb.path=${data}`, '--web.listen-address=127.0.0.1:9090', '--log.level=warn']);
    t.teardown(() => server.stop());
    t.ok(await eventually(async () => (await prom.run(['curl', '-sf', 'http://127.0.0.1:9090/-/ready'])).code === 0, 'prometheus ready', 30_000), `ready: ${server.output().stderr.slice(-1000)}`);
    t.ok(await eventually(async () => (await query(prom, 'up == 1')).length === 2, 'both targets up', 15_000), 'both sidecars are up');

    const source = 'meshlet_requests_total{reporter="source", request_protocol="http"}';
    const before = Object.fromEntries((await query(prom, `sum by (response_code) (${source})`)).map((s) => [s.metric.response_code, Number(s.value[1])]));
    // Every series exists from the first test on: the rates below start from samples both series have.
    t.equal(before['200'], 1);
    t.equal(before['404'], 1);
    await sleep(2500);
    // The window must hold a sample from before the first request of the loop below (scrapes
    // are 1 s apart), or a series' first sample in it can fall between a 200 and its 404 and
    // the two grow unlike: it starts at least 1.5 s before the loop, and no later than `from`.
    const from = (await scalar(prom, 'time()')) - 1.5;

    const N = 5;
    for (let i = 0; i < N; i++) {
      await send(t, '/ok', 200);
      await send(t, '/missing?status=404', 404);
    }
    t.ok(await eventually(async () => (await scalar(prom, `sum(${source})`)) === 2 + 2 * N, 'the new counts scraped', 15_000), 'Prometheus has scraped the new counts');
    await sleep(2500);
    const at = await scalar(prom, 'time()');
    const window = `${Math.ceil(at - from)}s`;

    const counts = Object.fromEntries((await query(prom, `sum by (response_code) (${source})`, at)).map((s) => [s.metric.response_code, Number(s.value[1])]));
    t.same(counts, { '200': 1 + N, '404': 1 + N }, 'the request counter per code: what was sent');
    const destination = Object.fromEntries((await query(prom, 'sum by (response_code) (meshlet_requests_total{reporter="destination", request_protocol="http"})', at)).map((s) => [s.metric.response_code, Number(s.value[1])]));
    t.same(destination, { '200': 1 + N, '404': 1 + N }, "and b's, as destination");

    const rate200 = await scalar(prom, `sum(rate(meshlet_requests_total{reporter="source", response_code="200"}[${window}]))`, at);
    t.ok(rate200 > 0, `rate() of the 200s: ${rate200}/s`);
    // The error-ratio query of docs/observability.md, for 4xx: both series grew alike over the same samples.
    const ratio = await scalar(prom, `sum(rate(meshlet_requests_total{reporter="source", response_code=~"4.."}[${window}])) / sum(rate(meshlet_requests_total{reporter="source", request_protocol="http"}[${window}]))`, at);
    t.ok(Math.abs(ratio - 0.5) < 1e-9, `error ratio 0.5: ${ratio}`);

    // Every request a sent took 300 ms and some: all in the (250, 500] bucket, where
    // histogram_quantile interpolates linearly: q = 250 + 250 × φ.
    const quantile = (phi: number) =>
      scalar(prom, `histogram_quantile(${phi}, sum by (le) (rate(meshlet_request_duration_milliseconds_bucket{reporter="source", request_protocol="http"}[${window}])))`, at);
    t.ok(Math.abs((await quantile(0.5)) - 375) < 1e-6, `p50 375 ms: ${await quantile(0.5)}`);
    t.ok(Math.abs((await quantile(0.99)) - 497.5) < 1e-6, `p99 497.5 ms: ${await quantile(0.99)}`);
    const bP99 = await scalar(prom, `histogram_quantile(0.99, sum by (le) (rate(meshlet_request_duration_milliseconds_bucket{reporter="destination", request_protocol="http"}[${window}])))`, at);
    t.ok(bP99 < 250, `b (destination) never waited for a's fault delay: p99 ${bP99} ms`);
  });
});
