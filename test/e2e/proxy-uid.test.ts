import path from 'node:path';
import t from 'tap';
import { scrape } from '../../src/testbed/metrics.ts';
import { APP_UID, MESHLET_BIN, PROXY_UID, REPO_ROOT, Testbed, testbedUnavailable, type Pod, type SpawnedProcess } from '../../src/testbed/netns.ts';

// A sidecar under another UID than the one `meshlet init` exempted would have its own
// connections redirected back to it. It refuses to start when it can tell (the rules it
// can read as root, else proxy.uid); when it cannot, each looped connection is cut at
// the first hop and counted, and the proxy stays up.

const skip = testbedUnavailable();
if (skip) {
  t.plan(0, skip);
  process.exit(0);
}

const HTTP_APP = path.join(REPO_ROOT, 'src/testbed/apps/http-app.ts');
const refusedLoops = (pod: Pod) => scrape(pod).then((s) => s.value('meshlet_proxy_connections_refused_total', { reason: 'loop' }));

/** Waits (at most 15 s) for `proxy` to exit by itself; its exit code and last stderr line. */
async function exitOf(proxy: SpawnedProcess): Promise<{ code: number | null; lastErr: string }> {
  const { child } = proxy;
  if (child.exitCode === null && child.signalCode === null) {
    await Promise.race([new Promise((resolve) => child.once('exit', resolve)), new Promise((resolve) => setTimeout(resolve, 15_000))]);
  }
  await proxy.stop('SIGKILL'); // only if still running; waits for its output
  return { code: child.exitCode, lastErr: proxy.output().stderr.trim().split('\n').at(-1) ?? '' };
}

t.test('pods a (interception rules installed) and b (a plain HTTP server)', async (t) => {
  const tb = await Testbed.create(['a', 'b'], { subnet: 46 });
  t.teardown(() => tb.destroy());
  const [a, b] = [tb.pod('a'), tb.pod('b')];
  const app = b.node([HTTP_APP, '--pod', 'b', '--port', '8080'], { uid: APP_UID });
  await app.waitForLine(/listening/);

  await t.test('started as root while the rules exempt uid 1337: refused, exit 1, the reason in the last line', async (t) => {
    const init = await a.init();
    t.equal(init.code, 0, `init: ${init.stderr}`);
    const proxy = a.node([MESHLET_BIN, 'proxy'], { env: { ...process.env } }); // no uid: root, as with a missing runAsUser
    const { code, lastErr } = await exitOf(proxy);
    t.equal(code, 1);
    t.match(lastErr, /^meshlet proxy: cannot start: MESHLET_ERR_PROXY_UID: the interception rules here redirect outbound traffic to port 15001 and exempt uid 1337 and gid 1337, but this process runs as uid 0 \(gid 0\)/);
    const health = await a.run(['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', 'http://127.0.0.1:15020/healthz/live']);
    t.equal(health.stdout, '000', 'nothing is left listening on the health port');
  });

  await t.test('rules for uid 1338 and proxy.uid 1338, proxy run as 1337 (it cannot read the rules): refused by proxy.uid', async (t) => {
    const init = await a.init(['--proxy-uid', '1338']);
    t.equal(init.code, 0, `init: ${init.stderr}`);
    const proxy = a.node([MESHLET_BIN, 'proxy'], { uid: PROXY_UID, env: { ...process.env, MESHLET_PROXY_UID: '1338' } });
    const { code, lastErr } = await exitOf(proxy);
    t.equal(code, 1);
    t.match(lastErr, /MESHLET_ERR_PROXY_UID: this process runs as uid 1337 \(gid 1337\), but proxy\.uid is 1338 \(gid 1338\)/);
  });

  await t.test("rules for uid 1338, proxy run as 1337 with proxy.uid 1337: each looped connection is cut at the first hop", async (t) => {
    // The rules from the test before are still installed: they exempt 1338, not 1337.
    const proxy = await a.startProxy({ MESHLET_PROTOCOLS_PORTS: '{"8081": tcp}' });
    const clients: Array<[string, string[]]> = [
      ['HTTP/1.1', [`http://${b.ipv4}:8080/`]],
      ['HTTP/2 (h2c)', ['--http2-prior-knowledge', `http://${b.ipv4}:8080/`]],
      ['opaque TCP', [`http://${b.ipv4}:8081/`]],
      ['HTTP/1.1 over IPv6', [`http://[${b.ipv6}]:8080/`]],
    ];
    for (const [what, args] of clients) {
      const before = await refusedLoops(a);
      const r = await a.run(['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '10', ...args], { uid: APP_UID, timeoutMs: 20_000 });
      const after = await refusedLoops(a);
      t.not(r.code, 28, `${what}: curl did not time out`);
      t.ok(r.code !== 0 || r.stdout.startsWith('5'), `${what}: curl failed (exit ${r.code}, status ${r.stdout})`);
      t.ok(after - before >= 1 && after - before <= 2, `${what}: ${after - before} loop refusal(s) counted, not a flood`);
    }
    const ready = await a.run(['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', 'http://127.0.0.1:15020/healthz/ready']);
    t.equal(ready.stdout, '200', 'the proxy stays up and ready');
    t.equal(proxy.child.exitCode, null, 'still running');
    const warnings = proxy.output().stdout.split('\n').filter((l) => l.includes('(a loop)'));
    t.equal(warnings.length, 1, 'one warning line for the burst');
    t.match(warnings[0], /"refused":1/);
    await proxy.stop();
  });
});
