import net from 'node:net';
import { Registry } from 'prom-client';
import t from 'tap';
import { origDst, peerOf } from '../../../src/net/addresses.ts';
import type { AcceptedConnection, ConnectionOutcome } from '../../../src/pipeline/connection.ts';
import { listenRedirected } from '../../../src/proxy/listener.ts';
import { LoopRefusalLog } from '../../../src/proxy/loop-guard.ts';
import { forwardTcp } from '../../../src/proxy/tcp/forward.ts';
import { createTcpMetrics } from '../../../src/telemetry/tcp-metrics.ts';
import { captureLog } from '../../helpers/capture-log.ts';

// The proxy's own connection redirected back to its listener (it runs under a UID the
// interception rules do not exempt) is refused at the first hop, counted once, logged
// once, and never reaches the stack.

const listen = (server: net.Server) =>
  new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));

t.test("the proxy's own upstream connection arriving at its listener is refused as a loop, at the first hop", async (t) => {
  const registry = new Registry();
  const metrics = createTcpMetrics(registry, 'meshlet');
  const { log, lines } = captureLog();
  let stackRuns = 0;
  const listener = await listenRedirected(
    'outbound',
    0,
    async () => {
      stackRuns++;
      return { receivedBytes: 0, sentBytes: 0, flag: '-' };
    },
    { log, metrics },
  );
  t.teardown(() => listener.server.close());
  // A front stands in for the redirect of an app's connection; the proxy forwards it to a
  // destination that the (misapplied) rules send back to its own listener.
  const outcomes: Promise<ConnectionOutcome>[] = [];
  const front = net.createServer({ allowHalfOpen: true }, (socket) => {
    const conn: AcceptedConnection = { id: 1, direction: 'outbound', socket, peer: peerOf(socket), origDst: origDst('127.0.0.1', listener.port), security: 'none' };
    outcomes.push(forwardTcp(conn, { connectTimeoutMs: 2000, idleTimeoutMs: 60_000 }));
  });
  const frontPort = await listen(front);
  t.teardown(() => front.close());

  for (let i = 0; i < 3; i++) {
    const client = net.connect({ host: '127.0.0.1', port: frontPort });
    client.on('error', () => {});
    client.end('hello');
    await new Promise((resolve) => client.once('close', resolve));
  }
  const flags = (await Promise.all(outcomes)).map((o) => o.flag);
  t.ok(flags.every((f) => f === 'UF' || f === 'UC'), `each app connection failed upstream (${flags.join(',')})`);
  t.equal(stackRuns, 0, 'the looped connection never reached the stack');
  const text = await registry.metrics();
  t.match(text, /meshlet_proxy_connections_refused_total\{reporter="source",reason="loop"\} 3/);
  const warnings = lines.filter((l) => String(l.msg).includes('a loop'));
  t.equal(warnings.length, 1, 'one line for the burst, not one per connection');
  t.equal(warnings[0]?.refused, 1, 'the first refusal is logged at once');
});

t.test('loop refusals are logged at most once per interval, with the count since the last line', async (t) => {
  const { log, lines } = captureLog();
  const loops = new LoopRefusalLog(log, 100);
  for (let i = 0; i < 5; i++) loops.refused({ peer: `10.0.0.1:${40000 + i}` });
  t.same(lines.map((l) => l.refused), [1], 'the first at once');
  await new Promise((resolve) => setTimeout(resolve, 150));
  t.same(lines.map((l) => l.refused), [1, 4], 'the rest when the interval ends');
  t.equal(lines[1]?.peer, '10.0.0.1:40004', 'with the latest one described');
  await new Promise((resolve) => setTimeout(resolve, 150));
  t.equal(lines.length, 2, 'nothing more to say, nothing said');
  loops.refused({ peer: '10.0.0.1:40005' });
  t.same(lines.map((l) => l.refused), [1, 4, 1], 'a refusal after a quiet interval is logged at once');
});
