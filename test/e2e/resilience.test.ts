import { writeFileSync } from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { scrape } from '../../src/testbed/metrics.ts';
import { APP_UID, Testbed, testbedUnavailable } from '../../src/testbed/netns.ts';
import { curl, header, scratch, tail } from './l7-common.ts';

// Resilience policies in the real `meshlet proxy`, configured by its environment, in pod a
// (meshlet init + proxy); a misbehaving app in pod b: 503 twice per path then 200 on one
// port, never an answer on another, three 503s then 200s on a third. What the app logged
// is what reached it.

const skip = testbedUnavailable();
if (skip) {
  t.plan(0, skip);
  process.exit(0);
}

const APP = `
import http from 'node:http';
const seen = new Map();
http.createServer((req, res) => {
  const n = (seen.get(req.url) ?? 0) + 1;
  seen.set(req.url, n);
  console.log(JSON.stringify({ seen: req.method, url: req.url, n }));
  req.resume();
  req.on('end', () => (n <= 2 ? res.writeHead(503).end('busy') : res.writeHead(200).end('ok')));
}).listen(8081, () => console.log('{"listening":8081}'));
http.createServer((req) => console.log(JSON.stringify({ seen: req.method, url: req.url, hung: true }))).listen(8082, () => console.log('{"listening":8082}'));
let down = 3;
http.createServer((req, res) => {
  console.log(JSON.stringify({ seen: req.method, url: req.url, port: 8083 }));
  down > 0 ? (down--, res.writeHead(503).end('down')) : res.writeHead(200).end('up');
}).listen(8083, () => console.log('{"listening":8083}'));
`;

/** Pods a (meshlet init + proxy, with `destinations` for b's address) and b (the app, listening). */
async function pods(t: Test, destinations: (b: string) => string) {
  const tmp = scratch();
  t.teardown(tmp.remove);
  const tb = await Testbed.create(['a', 'b']);
  t.teardown(() => tb.destroy());
  const [a, b] = [tb.pod('a'), tb.pod('b')];
  const script = path.join(tmp.dir, 'flaky-app.mjs');
  writeFileSync(script, APP, { mode: 0o644 });

  t.equal((await a.init()).code, 0, 'init in a');
  const proxy = await a.startProxy({ MESHLET_RESILIENCE_DESTINATIONS: destinations(b.ipv4) });
  t.teardown(() => {
    if (!t.passing()) t.comment(`a's proxy, last lines:\n${tail(proxy)}`);
  });
  const app = b.node([script], { uid: APP_UID });
  for (const port of [8081, 8082, 8083]) await app.waitForLine(new RegExp(`"listening":${port}`));
  return { tmp, a, b, app, proxy };
}

t.test('retries, the POST rule and timeouts through a real sidecar: a (meshlet) → b (misbehaving app)', async (t) => {
  const { tmp, a, b, app } = await pods(t, (b) => `[{name: flaky, match: {cidrs: ["${b}/32"], ports: [8081]}, retries: {attempts: 3, retryOn: [5xx]}}, {name: hang, match: {ports: [8082]}, timeout: 500ms}]`);
  const seen = (url: string) => app.output().stdout.split('\n').filter((l) => l.includes(`"url":"${url}"`)).length;

  const get = await curl(a, tmp.dir, [`http://${b.ipv4}:8081/get`]);
  t.equal(get.status, 200, 'GET: two 503s retried, then 200');
  t.equal(seen('/get'), 3, 'the app saw three GETs');

  const post = await curl(a, tmp.dir, ['-X', 'POST', '-d', 'order=1', `http://${b.ipv4}:8081/post`]);
  t.equal(post.status, 503, "POST: the app's own 503, not retried");
  t.equal(post.body.toString(), 'busy');
  t.equal(seen('/post'), 1, 'the app saw the POST once');

  const hung = await curl(a, tmp.dir, [`http://${b.ipv4}:8082/slow`]);
  t.equal(hung.status, 504, 'no answer within the 500 ms timeout: 504');
  t.equal(header(hung.headers, 'meshlet-error'), 'upstream_timeout');

  const metrics = await scrape(a);
  t.equal(metrics.value('meshlet_upstream_retries_total', { policy: 'flaky', reason: 'status', outcome: 'sent' }), 2);
  t.equal(metrics.value('meshlet_upstream_timeouts_total', { policy: 'hang', kind: 'total' }), 1);
});

t.test('a circuit breaker in a real sidecar: opens after three 503s, answers 503 UO circuit_open without b seeing traffic, closes after a successful probe', async (t) => {
  const { tmp, a, b, app, proxy } = await pods(t, () => '[{name: breaker, match: {ports: [8083]}, retries: {attempts: 1}, circuitBreaker: {consecutiveFailures: 3, openDuration: 4s}}]');
  const seen = () => app.output().stdout.split('\n').filter((l) => l.includes('"port":8083')).length;
  const url = `http://${b.ipv4}:8083/x`;

  for (let i = 0; i < 3; i++) t.equal((await curl(a, tmp.dir, [url])).body.toString(), 'down', "b's own 503");
  for (let i = 0; i < 3; i++) {
    const open = await curl(a, tmp.dir, [url]);
    t.equal(open.status, 503);
    t.equal(header(open.headers, 'meshlet-error'), 'circuit_open', 'answered by the open breaker');
  }
  t.equal(seen(), 3, 'b saw only the three that failed');
  const clusters = await a.run(['curl', '-sS', '--max-time', '5', 'http://127.0.0.1:15000/clusters'], { uid: APP_UID });
  const dump = JSON.parse(clusters.stdout) as { clusters: Array<{ destination: string; breaker: string | null }> };
  // (half_open once the open period has passed on a slow machine: either way, not closed)
  t.match(dump.clusters.find((c) => c.destination === `${b.ipv4}:8083`)?.breaker, /^(open|half_open)$/, '/clusters shows the breaker open');
  t.match(proxy.output().stdout, /circuit breaker opened/, 'and the log says so');

  // After openDuration one request is let through as the probe; b answers it 200, which closes the breaker.
  let probe = await curl(a, tmp.dir, [url]);
  while (header(probe.headers, 'meshlet-error') === 'circuit_open') {
    await new Promise((r) => setTimeout(r, 200));
    probe = await curl(a, tmp.dir, [url]);
  }
  t.equal(probe.status, 200, 'the probe reached b');
  t.equal((await curl(a, tmp.dir, [url])).status, 200, 'closed: requests flow again');
  t.equal(seen(), 5);

  const metrics = await scrape(a);
  t.equal(metrics.value('meshlet_circuit_breaker_transitions_total', { policy: 'breaker', state: 'open' }), 1);
  t.equal(metrics.value('meshlet_circuit_breaker_transitions_total', { policy: 'breaker', state: 'closed' }), 1);
  t.ok(metrics.value('meshlet_circuit_breaker_rejections_total', { policy: 'breaker' }) >= 3, 'the refused requests were counted');
  t.equal(metrics.value('meshlet_circuit_breakers', { policy: 'breaker', state: 'closed' }), 1);
});
