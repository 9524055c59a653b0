import path from 'node:path';
import t from 'tap';
import { scrape } from '../../src/testbed/metrics.ts';
import { APP_UID, PROXY_UID, REPO_ROOT, Testbed, testbedUnavailable, type Pod } from '../../src/testbed/netns.ts';

// Pods a, b (meshed: meshlet init + meshlet proxy) and c (no sidecar). The sample app
// reports the source address it saw; the proxies' counters say which listener carried
// each connection. Together they prove what was intercepted and what bypassed.

const skip = testbedUnavailable();
if (skip) {
  t.plan(0, skip);
  process.exit(0);
}

const TCP_APP = path.join(REPO_ROOT, 'src/testbed/apps/tcp-app.ts');
const MB = 1_000_000;

interface ClientResult {
  ok: boolean;
  error?: string;
  sentSha?: string;
  receivedSha?: string;
  replyIntact?: boolean;
  receivedBytes?: number;
  server?: { peer: string; bytes: number; sha256: string };
}

async function client(pod: Pod, host: string, port: number, options: { send?: number; reply?: number; uid?: number } = {}): Promise<ClientResult> {
  const r = await pod.run(
    [process.execPath, TCP_APP, 'client', '--host', host, '--port', String(port), '--send', String(options.send ?? 1000), '--reply', String(options.reply ?? 1000), '--timeout', '20000'],
    { uid: options.uid ?? APP_UID, timeoutMs: 60_000 },
  );
  const line = r.stdout.trim().split('\n').at(-1) ?? '';
  try {
    return JSON.parse(line) as ClientResult;
  } catch {
    throw new Error(`client printed no result (exit ${r.code}): ${r.stdout} ${r.stderr}`);
  }
}

async function server(pod: Pod, port: number, host = '::') {
  const p = pod.node([TCP_APP, 'server', '--port', String(port), '--host', host], { uid: APP_UID });
  await p.waitForLine(/listening/);
  return p;
}

const unmap = (a: string | undefined) => (a ?? '').replace(/^::ffff:/, '');
const opened = (reporter: 'source' | 'destination') => ['meshlet_tcp_connections_opened_total', { reporter }] as const;

t.test('meshed pods a and b, unmeshed pod c', async (t) => {
  const tb = await Testbed.create(['a', 'b', 'c']);
  t.teardown(() => tb.destroy());
  const [a, b, c] = [tb.pod('a'), tb.pod('b'), tb.pod('c')];

  const initA = await a.init(['--exclude-outbound-ports', '9090', '--exclude-outbound-cidrs', `${c.ipv4}/32,${c.ipv6}/128`]);
  t.equal(initA.code, 0, `init in a: ${initA.stderr}`);
  const initB = await b.init(['--exclude-inbound-ports', '9090']);
  t.equal(initB.code, 0, `init in b: ${initB.stderr}`);

  const proxyA = await a.startProxy({ MESHLET_OUTBOUND_CONNECT_TIMEOUT: '500ms' });
  await b.startProxy();
  await server(b, 8080);
  await server(b, 9090);
  await server(c, 8080);

  for (const family of [4, 6] as const) {
    await t.test(`IPv${family}: a → b goes through a's outbound and b's inbound listener, 100 MB each way intact`, async (t) => {
      const [beforeA, beforeB] = [await scrape(a), await scrape(b)];
      const host = family === 4 ? b.ipv4 : b.ipv6;
      const r = await client(a, host, 8080, { send: 100 * MB, reply: 100 * MB });
      t.ok(r.ok, r.error ?? 'client succeeded');
      t.equal(r.server?.bytes, 100 * MB, 'server received every byte');
      t.equal(r.server?.sha256, r.sentSha, 'client → server bytes identical');
      t.equal(r.receivedBytes, 100 * MB, 'client received every byte after half-closing its side');
      t.ok(r.replyIntact, 'server → client bytes identical');
      // b's sidecar made the last hop, from b's own address: the app saw b, not a.
      t.equal(unmap(r.server?.peer), family === 4 ? b.ipv4 : b.ipv6, 'server saw the connection come from its own sidecar');
      const [afterA, afterB] = [await scrape(a), await scrape(b)];
      t.equal(afterA.value(...opened('source')) - beforeA.value(...opened('source')), 1, "a's outbound listener carried it");
      t.equal(afterB.value(...opened('destination')) - beforeB.value(...opened('destination')), 1, "b's inbound listener carried it");
      t.ok(afterA.value('meshlet_tcp_received_bytes_total', { reporter: 'source' }) - beforeA.value('meshlet_tcp_received_bytes_total', { reporter: 'source' }) >= 100 * MB);
    });
  }

  /** Runs `fn` and returns how many connections a's outbound and b's inbound listener accepted meanwhile. */
  async function intercepted(fn: () => Promise<void>): Promise<{ aOutbound: number; bInbound: number }> {
    const [beforeA, beforeB] = [await scrape(a), await scrape(b)];
    await fn();
    const [afterA, afterB] = [await scrape(a), await scrape(b)];
    return {
      aOutbound: afterA.value(...opened('source')) - beforeA.value(...opened('source')),
      bInbound: afterB.value(...opened('destination')) - beforeB.value(...opened('destination')),
    };
  }

  await t.test('loopback traffic bypasses the proxy', async (t) => {
    const local = await server(a, 7070, '127.0.0.1');
    let r!: ClientResult;
    const counts = await intercepted(async () => {
      r = await client(a, '127.0.0.1', 7070);
    });
    t.ok(r.ok, r.error ?? 'client succeeded');
    t.equal(unmap(r.server?.peer), '127.0.0.1');
    t.equal(counts.aOutbound, 0);
    await local.stop();
  });

  await t.test('an excluded outbound port bypasses the outbound proxy (and an excluded inbound port the inbound one)', async (t) => {
    let r!: ClientResult;
    const counts = await intercepted(async () => {
      r = await client(a, b.ipv4, 9090);
    });
    t.ok(r.ok, r.error ?? 'client succeeded');
    t.equal(unmap(r.server?.peer), a.ipv4, 'server saw a directly');
    t.same(counts, { aOutbound: 0, bInbound: 0 });
  });

  await t.test('excluded CIDRs bypass the outbound proxy, IPv4 and IPv6', async (t) => {
    for (const host of [c.ipv4, c.ipv6]) {
      let r!: ClientResult;
      const counts = await intercepted(async () => {
        r = await client(a, host, 8080);
      });
      t.ok(r.ok, r.error ?? 'client succeeded');
      t.equal(unmap(r.server?.peer), host === c.ipv4 ? a.ipv4 : a.ipv6);
      t.equal(counts.aOutbound, 0, `to ${host}`);
    }
  });

  await t.test("the proxy UID's own traffic is not redirected (no loop)", async (t) => {
    let r!: ClientResult;
    const counts = await intercepted(async () => {
      r = await client(a, b.ipv4, 8080, { uid: PROXY_UID });
    });
    t.ok(r.ok, r.error ?? 'client succeeded');
    t.equal(counts.aOutbound, 0, "a's outbound listener did not see it");
    t.equal(counts.bInbound, 1, "b's inbound still intercepts what arrives");
  });

  await t.test('an app reaching its own pod IP works, through the outbound proxy, without a loop', async (t) => {
    const own = await server(a, 7071);
    let r!: ClientResult;
    const counts = await intercepted(async () => {
      r = await client(a, a.ipv4, 7071);
    });
    t.ok(r.ok, r.error ?? 'client succeeded');
    t.equal(counts.aOutbound, 1);
    await own.stop();
  });

  await t.test('a connection addressed to the proxy itself is refused and counted, never forwarded', async (t) => {
    const before = await scrape(a);
    // Straight to the listener over loopback (not redirected), and to a proxy port on the pod IP (redirected onto itself).
    for (const host of ['127.0.0.1', a.ipv4]) {
      const r = await client(a, host, 15001);
      t.notOk(r.ok, `to ${host}:15001 fails`);
      t.equal(r.error, 'ECONNRESET', 'with a reset');
    }
    const after = await scrape(a);
    t.equal(after.value('meshlet_proxy_connections_refused_total', { reason: 'loop' }) - before.value('meshlet_proxy_connections_refused_total', { reason: 'loop' }), 2);
    t.equal(after.value(...opened('source')) - before.value(...opened('source')), 0);
  });

  await t.test('a destination that never answers is closed after the connect timeout (UF), not left hanging', async (t) => {
    // b silently drops SYNs to 7777 before its own rules see them: a black hole.
    await b.runOk(['iptables', '-t', 'raw', '-A', 'PREROUTING', '-p', 'tcp', '--dport', '7777', '-j', 'DROP']);
    const before = await scrape(a);
    const r = await client(a, b.ipv4, 7777);
    t.notOk(r.ok);
    t.equal(r.error, 'closed before any response');
    const after = await scrape(a);
    const uf = { reporter: 'source', response_flags: 'UF' };
    t.equal(after.value('meshlet_tcp_connections_closed_total', uf) - before.value('meshlet_tcp_connections_closed_total', uf), 1);
  });

  await t.test('the health port stays reachable from other pods (excluded inbound)', async (t) => {
    const r = await a.run(['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', `http://${b.ipv4}:15020/healthz/ready`], { uid: APP_UID });
    t.equal(r.stdout, '200');
  });

  await t.test('with the proxy stopped, outbound connections fail fast instead of hanging', async (t) => {
    await proxyA.stop();
    const r = await client(a, b.ipv4, 8080);
    t.notOk(r.ok);
    t.equal(r.error, 'ECONNREFUSED', 'refused at once, not a timeout');
  });
});
