import { readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { APP_UID, testbedUnavailable } from '../../src/testbed/netns.ts';
import { readHello, readPcap, tcpConnections, tlsRecords, type TcpConnection } from '../../src/testbed/pcap.ts';
import { eventually, greeterClient, meshedPair, PORT, wsClient } from './l7-common.ts';

// Connection reuse between sidecars, counted on the wire: many app connections from a to
// b become at most a couple of mTLS connections between the pods, each a TLS handshake
// offering ALPN meshlet/h2 — while WebSocket and opaque TCP keep one meshlet/tcp
// connection per app connection. Packets are captured on b's eth0 (tcpdump, read by
// src/testbed/pcap.ts), outside both proxies. A fresh pair of pods, so no pooled
// connection exists before the first capture starts.

const skip = testbedUnavailable();
if (skip) {
  t.plan(0, skip);
  process.exit(0);
}

const K = 20; // app connections (curl processes)
const PER = 10; // sequential keep-alive requests on each

t.test('pooled mesh connections a → b', async (t) => {
  const { a, b, proxyA, proxyB, apps, dir } = await meshedPair(t);

  const tcpdump = await b.run(['sh', '-c', 'command -v tcpdump']);
  if (tcpdump.code !== 0) {
    t.fail('needs tcpdump (apt-get install tcpdump; scripts/setup.sh and .ci/run install it)');
    return;
  }

  let captures = 0;
  /** The TCP connections a → b seen on b's eth0 while `fn` ran. */
  async function captured(fn: () => Promise<void>): Promise<TcpConnection[]> {
    const file = path.join(dir, `b-${++captures}.pcap`);
    // -U and --immediate-mode: every packet is in the file when tcpdump exits on SIGINT.
    const dump = b.spawn(['tcpdump', '-i', 'eth0', '-n', '-s', '0', '-U', '--immediate-mode', '-Z', 'root', '-w', file, 'tcp']);
    if (!(await eventually(() => dump.output().stderr.includes('listening on'), 'tcpdump to start'))) throw new Error(`tcpdump did not start: ${dump.output().stderr}`);
    await fn();
    await dump.stop('SIGINT');
    return tcpConnections(readPcap(readFileSync(file))).filter((c) => c.client.address === a.ipv4 && c.server.address === b.ipv4);
  }
  const alpnOf = (c: TcpConnection) => {
    try {
      return readHello(tlsRecords(c.fromClient)[0]!).alpn;
    } catch (err) {
      return [`not a TLS ClientHello: ${(err as Error).message}`];
    }
  };
  const describe = (conns: TcpConnection[]) => JSON.stringify(conns.map((c) => ({ port: c.server.port, alpn: alpnOf(c) })));

  await t.test(`${K * PER} HTTP/1.1 requests on ${K} keep-alive app connections: no more connections between the pods than concurrent requests, ALPN meshlet/http1`, async (t) => {
    const url = (i: number, j: number) => `http://${b.ipv4}:${PORT.h1}/reuse/${i}/${j}`;
    let outputs: string[] = [];
    const conns = await captured(async () => {
      const runs = Array.from({ length: K }, (_, i) =>
        a.run(['curl', '-sS', '--max-time', '30', '-w', '%{http_code} %{num_connects}\\n', ...Array.from({ length: PER }, (_, j) => ['-o', '/dev/null', url(i, j)]).flat()], {
          uid: APP_UID,
          timeoutMs: 60_000,
        }),
      );
      outputs = (await Promise.all(runs)).map((r) => r.stdout + (r.code === 0 ? '' : `exit ${r.code}: ${r.stderr}`));
    });
    const lines = outputs.flatMap((o) => o.trim().split('\n'));
    t.equal(lines.filter((l) => l.startsWith('200 ')).length, K * PER, `every request answered 200: ${lines.filter((l) => !l.startsWith('200 ')).slice(0, 5).join(' | ')}`);
    const connects = lines.reduce((sum, l) => sum + Number(l.split(' ')[1] ?? 0), 0);
    t.equal(connects, K, `curl opened ${K} app connections, one per process (keep-alive)`);
    const seen = apps.http.output().stdout.split('\n').filter((l) => l.includes('"url":"/reuse/')).length;
    t.equal(seen, K * PER, 'the app served every request');

    // HTTP/1.1 between sidecars carries one request at a time per connection: at most one
    // connection per request in flight (K curls at once), reused for the rest.
    t.ok(conns.length >= 1 && conns.length <= K, `1 to ${K} TCP connections a → b on the wire for ${K * PER} requests (got ${conns.length}: ${describe(conns)})`);
    for (const c of conns) t.same(alpnOf(c), ['meshlet/http1'], `connection to :${c.server.port} offers ALPN meshlet/http1`);
  });

  await t.test('100 h2c requests on 10 app connections (h2load): at most 2 more connections between the pods, ALPN meshlet/h2', async (t) => {
    let out = '';
    const conns = await captured(async () => {
      const r = await a.run(['h2load', '-n', '100', '-c', '10', '-m', '5', '-T', '30', `http://${b.ipv4}:${PORT.h2c}/reuse-h2`], { uid: APP_UID, timeoutMs: 60_000 });
      out = r.stdout + r.stderr;
    });
    t.match(out, /requests: 100 total, 100 started, 100 done, 100 succeeded/, out.split('\n').filter((l) => /requests:|status codes:|client/.test(l)).join(' | '));
    t.ok(conns.length <= 2, `at most 2 new TCP connections a → b (got ${conns.length}: ${describe(conns)})`);
    for (const c of conns) t.same(alpnOf(c), ['meshlet/h2'], `connection to :${c.server.port} offers ALPN meshlet/h2`);
  });

  await t.test('WebSocket and opaque TCP: one meshlet/tcp connection per app connection', async (t) => {
    let ws: Awaited<ReturnType<typeof wsClient>> | undefined;
    let greeted: Array<Awaited<ReturnType<typeof greeterClient>>> = [];
    const conns = await captured(async () => {
      ws = await wsClient(a, b.ipv4, PORT.ws, 4);
      greeted = [await greeterClient(a, b.ipv4, PORT.mysql), await greeterClient(a, b.ipv4, PORT.mysql)];
    });
    t.ok(ws?.ok, `WebSocket session: ${ws?.error ?? 'ok'}`);
    t.ok(greeted.every((g) => g.ok), `two opaque sessions on ${PORT.mysql}: ${greeted.map((g) => g.error ?? 'ok').join(', ')}`);
    const byPort = (port: number) => conns.filter((c) => c.server.port === port);
    t.equal(byPort(PORT.ws).length, 1, `one connection for the WebSocket (${describe(conns)})`);
    t.same(byPort(PORT.ws).map(alpnOf), [['meshlet/tcp']], 'with ALPN meshlet/tcp');
    t.equal(byPort(PORT.mysql).length, 2, 'one connection per opaque app connection');
    t.same(byPort(PORT.mysql).map(alpnOf), [['meshlet/tcp'], ['meshlet/tcp']], 'with ALPN meshlet/tcp');
  });
});
