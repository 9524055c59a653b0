import { writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { scrape } from '../../src/testbed/metrics.ts';
import { APP_UID, Testbed, testbedUnavailable } from '../../src/testbed/netns.ts';
import { curl, header, scratch, tail } from './l7-common.ts';

// Resilience policies in the real `meshlet proxy`, configured by its environment, in pod a
// (meshlet init + proxy); a misbehaving app in pod b: 503 twice per path then 200 on one
// port, never an answer on another. What the app logged is what reached it.

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
`;

t.test('retries, the POST rule and timeouts through a real sidecar: a (meshlet) → b (misbehaving app)', async (t) => {
  const tmp = scratch();
  t.teardown(tmp.remove);
  const tb = await Testbed.create(['a', 'b']);
  t.teardown(() => tb.destroy());
  const [a, b] = [tb.pod('a'), tb.pod('b')];
  const script = path.join(tmp.dir, 'flaky-app.mjs');
  writeFileSync(script, APP, { mode: 0o644 });

  t.equal((await a.init()).code, 0, 'init in a');
  const proxy = await a.startProxy({
    MESHLET_RESILIENCE_DESTINATIONS: `[{name: flaky, match: {cidrs: ["${b.ipv4}/32"], ports: [8081]}, retries: {attempts: 3, retryOn: [5xx]}}, {name: hang, match: {ports: [8082]}, timeout: 500ms}]`,
  });
  t.teardown(() => {
    if (!t.passing()) t.comment(`a's proxy, last lines:\n${tail(proxy)}`);
  });
  const app = b.node([script], { uid: APP_UID });
  await app.waitForLine(/"listening":8082/);
  await app.waitForLine(/"listening":8081/);
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
