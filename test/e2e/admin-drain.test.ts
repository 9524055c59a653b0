import path from 'node:path';
import t, { type Test } from 'tap';
import { APP_UID, MESHLET_BIN, REPO_ROOT, Testbed, testbedUnavailable, type SpawnedProcess } from '../../src/testbed/netns.ts';
import { eventually, meshedPair, PORT, tail } from './l7-common.ts';

// The admin server, the start gate and the graceful drain in real pods (network
// namespaces, meshlet init's rules, meshlet proxy as UID 1337):
//   - the admin port answers inside the pod and is refused from another pod, on both of
//     the pod's addresses, while the health port next to it is reachable; POST
//     /quitquitquit from inside the pod ends the proxy;
//   - `meshlet wait`, started before the proxy, exits 0 once the proxy is ready;
//   - SIGTERM to the inbound sidecar of a pair under constant load: readiness fails, no
//     request that had started fails, a long streamed response completes after the
//     listener stopped accepting, and the process exits by itself, drained.

const skip = testbedUnavailable();
if (skip) {
  t.plan(0, skip);
  process.exit(0);
}

const LOAD_APP = path.join(REPO_ROOT, 'src/testbed/apps/http-load-app.ts');

function exited(proc: SpawnedProcess): Promise<number | null> {
  const { child } = proc;
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/** The JSON lines of a process's stdout that parse. */
function jsonLines(proc: SpawnedProcess): Array<Record<string, any>> {
  return proc
    .output()
    .stdout.split('\n')
    .flatMap((line) => {
      try {
        return [JSON.parse(line) as Record<string, any>];
      } catch {
        return [];
      }
    });
}

t.test('admin on 127.0.0.1:15000 only; meshlet wait gates on readiness', async (t) => {
  const tb = await Testbed.create(['a', 'b']);
  t.teardown(() => tb.destroy());
  const [a, b] = [tb.pod('a'), tb.pod('b')];
  t.equal((await b.init()).code, 0, 'init in b');

  // The gate first, as a postStart hook would run: it keeps asking until the proxy is up.
  const gate = b.node([MESHLET_BIN, 'wait', '--timeout', '60s'], { uid: APP_UID });
  const proxy = await b.startProxy();
  t.teardown(() => {
    if (!t.passing()) t.comment(`b's proxy, last lines:\n${tail(proxy)}`);
  });
  t.equal(await exited(gate), 0, `meshlet wait exits 0 once ready: ${gate.output().stderr}`);
  t.match(gate.output().stdout, /the proxy is ready/);

  const inside = await b.run(['curl', '-sS', '--max-time', '5', 'http://127.0.0.1:15000/config_dump'], { uid: APP_UID });
  t.equal(inside.code, 0, `inside the pod the admin server answers: ${inside.stderr}`);
  t.equal((JSON.parse(inside.stdout) as { admin: { port: number } }).admin.port, 15000);

  const health = await a.run(['curl', '-sS', '--max-time', '5', '-o', '/dev/null', '-w', '%{http_code}', `http://${b.ipv4}:15020/healthz/ready`]);
  t.equal(health.stdout, '200', 'from pod a, the health port of b answers (the path between the pods works)');
  for (const address of [b.ipv4, `[${b.ipv6}]`]) {
    const outside = await a.run(['curl', '-sS', '--max-time', '5', `http://${address}:15000/config_dump`]);
    t.equal(outside.code, 7, `from pod a, ${address}:15000 is refused (curl: could not connect)`);
    t.match(outside.stderr, /Connection refused|Couldn't connect/);
  }
  const post = await a.run(['curl', '-sS', '--max-time', '5', '-X', 'POST', `http://${b.ipv4}:15000/quitquitquit`]);
  t.equal(post.code, 7, 'nor can another pod stop it');
  t.equal(proxy.child.exitCode, null, 'the proxy is still running');

  // What a Job's last command does: from inside the pod, end the sidecar at once.
  const quit = await b.run(['curl', '-sS', '--max-time', '5', '-X', 'POST', 'http://127.0.0.1:15000/quitquitquit'], { uid: APP_UID });
  t.equal(quit.code, 0, `POST /quitquitquit from inside the pod: ${quit.stderr}`);
  t.equal(await exited(proxy), 0, 'the proxy exits 0 at once, without a drain');
  t.match(jsonLines(proxy).find((l) => l.msg === 'stopped'), { how: 'quit' });
});

for (const protocol of ['http1', 'h2'] as const) {
  t.test(`SIGTERM to the inbound sidecar under constant ${protocol} load: nothing that had started fails, the stream completes, the proxy exits by itself`, async (t) => {
    await drainUnderLoad(t, protocol);
  });
}

/**
 * HTTP/1.1 load crosses the pair as meshlet/http1 (pooled connections, which the drain
 * ends with Connection: close); h2c load as meshlet/h2 (one session, which the drain ends
 * with GOAWAY). The long streamed response is HTTP/1.1 in both.
 */
async function drainUnderLoad(t: Test, protocol: 'http1' | 'h2'): Promise<void> {
  const { a, b, proxyB, apps } = await meshedPair(t, { b: { MESHLET_DRAIN_DELAY: '2s', MESHLET_DRAIN_TIMEOUT: '30s' } });
  // 40 chunks of 16 KiB, 100 ms apart: about 4 s, longer than the drain delay.
  const STREAM_BYTES = 40 * 16384;
  const streamPath = `/trailers?bytes=${STREAM_BYTES}&pace=100`;
  const url = protocol === 'h2' ? `http://${b.ipv4}:${PORT.h2c}/` : `http://${b.ipv4}:${PORT.h1}/`;
  const flags = protocol === 'h2' ? ['--h2'] : [];
  const load = a.node([LOAD_APP, '--url', url, ...flags, '--concurrency', '4', '--stream-url', `http://${b.ipv4}:${PORT.h1}${streamPath}`], { uid: APP_UID });
  t.teardown(() => load.stop('SIGKILL'));
  const served = () => jsonLines(load).filter((l) => l.r);
  t.ok(await eventually(() => served().length >= 100, 'load under way', 30_000), 'the load is under way');
  await apps.http.waitForLine(/\/trailers\?bytes=/, 10_000);

  const sigtermAt = Date.now();
  proxyB.child.kill('SIGTERM');
  const readiness = () => b.run(['curl', '-sS', '--max-time', '2', '-o', '/dev/null', '-w', '%{http_code}', 'http://127.0.0.1:15020/healthz/ready']).then((r) => r.stdout);
  t.ok(await eventually(async () => (await readiness()) === '503', 'not ready', 5000), 'readiness fails while the proxy drains');

  let limit: NodeJS.Timeout | undefined;
  const code = await Promise.race([exited(proxyB), new Promise<string>((r) => (limit = setTimeout(() => r('still running after 45 s'), 45_000)))]);
  clearTimeout(limit);
  t.equal(code, 0, 'the inbound sidecar exits by itself, 0');
  const log = jsonLines(proxyB);
  t.match(log.find((l) => l.msg === 'stopped'), { how: 'drained' }, 'drained: every connection finished before drain.timeout');
  const stopped = log.find((l) => typeof l.msg === 'string' && l.msg.startsWith('drain: inbound no longer accepts'));
  t.ok(stopped && stopped.open >= 1, `connections were still open when the listener stopped accepting (${stopped?.open})`);

  load.child.kill('SIGTERM');
  await load.waitForLine(/"done"/, 30_000);
  const results = served().map((l) => l.r as [number, number, number, string]);
  const before = results.filter(([start]) => start < sigtermAt);
  const after = results.filter(([start]) => start >= sigtermAt);
  t.ok(before.length >= 100, `${before.length} requests before the SIGTERM`);
  t.same(before.filter(([, , status]) => status !== 200), [], 'every request that had started before the SIGTERM succeeded');
  // After the listener closed, a request finds nothing listening on b's inbound port: the
  // outbound sidecar answers 503 upstream_connect_failure (it never reached b). Nothing
  // else may fail: no reset, no 502, no client-side error.
  const failedOtherwise = after.filter(([, , status, cause]) => status !== 200 && !(status === 503 && cause === 'upstream_connect_failure'));
  t.same(failedOtherwise, [], 'after it, a request either succeeds or was refused before it reached b');
  t.ok(after.some(([, , status]) => status === 200), `requests were still served during the drain delay (${after.filter(([, , s]) => s === 200).length})`);

  const stream = jsonLines(load).find((l) => l.stream)?.stream as { status: number; bytes: number; sha256: string; trailer: string; error: string; end: number } | undefined;
  t.match(stream, { status: 200, bytes: STREAM_BYTES, error: '' }, 'the long streamed response arrived whole');
  t.equal(stream?.sha256, stream?.trailer, 'its bytes match the sha256 the app sent in its trailer');
  const listenerClosedAt = Date.parse(String(stopped?.time));
  t.ok(stream !== undefined && stream.end > listenerClosedAt, 'and it ended after the inbound listener had stopped accepting');
}
