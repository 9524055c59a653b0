import net from 'node:net';
import { Registry } from 'prom-client';
import t from 'tap';
import { origDst, peerOf } from '../../../src/net/addresses.ts';
import type { AcceptedConnection, ConnectionOutcome } from '../../../src/pipeline/connection.ts';
import { listenRedirected } from '../../../src/proxy/listener.ts';
import { LocalAddresses } from '../../../src/proxy/loop-guard.ts';
import { newStackParts } from '../../../src/proxy/stack-deps.ts';
import { outboundStack } from '../../../src/proxy/outbound/stack.ts';
import { forwardTcp, type TcpForwardOptions } from '../../../src/proxy/tcp/forward.ts';
import { loadConfig } from '../../../src/config/load.ts';
import { ResilienceRuntime } from '../../../src/resilience/runtime.ts';
import { createLogger } from '../../../src/log.ts';
import { createTcpMetrics } from '../../../src/telemetry/tcp-metrics.ts';
import { createTelemetry } from '../../../src/telemetry/telemetry.ts';
import { freePort } from '../../helpers/ports.ts';

// Real sockets on loopback. Without netfilter there is no original destination to
// recover, so these tests hand forwardTcp the destination directly; the listener test
// at the end checks what happens to a connection that was not redirected.

const listen = (server: net.Server) =>
  new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));

/** A front server whose every connection is forwarded to `port` on loopback. */
async function front(t: { teardown(fn: () => unknown): void }, port: number, options: Partial<TcpForwardOptions> = {}) {
  const outcomes: Promise<ConnectionOutcome>[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    const conn: AcceptedConnection = { id: 1, direction: 'outbound', socket, peer: peerOf(socket), origDst: origDst('127.0.0.1', port), security: 'none' };
    outcomes.push(forwardTcp(conn, { connectTimeoutMs: 5000, idleTimeoutMs: 60_000, ...options }));
  });
  const frontPort = await listen(server);
  t.teardown(() => server.close());
  return { port: frontPort, outcomes };
}

function collect(socket: net.Socket): Promise<{ data: Buffer; error?: string }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', (err: NodeJS.ErrnoException) => resolve({ data: Buffer.concat(chunks), error: err.code ?? 'error' }));
    socket.on('close', () => resolve({ data: Buffer.concat(chunks) }));
  });
}

t.test('half-close: the client shuts its write side and still receives the whole response', async (t) => {
  const upstream = net.createServer({ allowHalfOpen: true }, (socket) => {
    const chunks: Buffer[] = [];
    socket.on('data', (d: Buffer) => chunks.push(d));
    // Answer only after the client's FIN arrived: a proxy without half-close loses this.
    socket.on('end', () => socket.end(Buffer.concat([Buffer.from('got:'), Buffer.concat(chunks), Buffer.alloc(1 << 20, 7)])));
  });
  const f = await front(t, await listen(upstream));
  t.teardown(() => upstream.close());
  const client = net.connect({ port: f.port, host: '127.0.0.1', allowHalfOpen: true });
  client.end('hello');
  const { data, error } = await collect(client);
  t.equal(error, undefined);
  t.equal(data.subarray(0, 9).toString(), 'got:hello');
  t.equal(data.length, 9 + (1 << 20), 'the full megabyte after the FIN arrived');
  const outcome = await f.outcomes[0]!;
  t.equal(outcome.flag, '-');
  t.equal(outcome.receivedBytes, 5);
  t.equal(outcome.sentBytes, 9 + (1 << 20));
});

t.test('a refused destination resets the client promptly and is flagged UF', async (t) => {
  const closed = net.createServer();
  const deadPort = await listen(closed);
  await new Promise((r) => closed.close(r));
  const f = await front(t, deadPort);
  const client = net.connect({ port: f.port, host: '127.0.0.1' });
  const { error } = await collect(client);
  t.equal(error, 'ECONNRESET', 'the app sees a reset, as it would have seen a refusal');
  const outcome = await f.outcomes[0]!;
  t.equal(outcome.flag, 'UF');
  t.equal(outcome.reason, 'connect_econnrefused');
});

t.test('an upstream reset mid-stream reaches the client as a reset (UC)', async (t) => {
  const upstream = net.createServer((socket) => {
    socket.write('partial');
    socket.once('data', () => socket.resetAndDestroy());
  });
  const f = await front(t, await listen(upstream));
  t.teardown(() => upstream.close());
  const client = net.connect({ port: f.port, host: '127.0.0.1' });
  client.once('data', () => client.write('go'));
  const { data, error } = await collect(client);
  t.equal(data.toString(), 'partial');
  t.equal(error, 'ECONNRESET');
  t.equal((await f.outcomes[0]!).flag, 'UC');
});

t.test('a client reset is carried to the upstream (DC)', async (t) => {
  // Wrapped in an object: resolving with a bare promise would wait for it to settle.
  type Result = { closed: Promise<{ data: Buffer; error?: string }> };
  let onAccept!: (result: Result) => void;
  const accepted = new Promise<Result>((resolve) => (onAccept = resolve));
  const upstream = net.createServer((socket) => onAccept({ closed: collect(socket) }));
  const f = await front(t, await listen(upstream));
  t.teardown(() => upstream.close());
  const client = net.connect({ port: f.port, host: '127.0.0.1' });
  client.on('error', () => {});
  client.write('x');
  const upstreamResult = await accepted;
  client.resetAndDestroy();
  t.equal((await upstreamResult.closed).error, 'ECONNRESET');
  t.equal((await f.outcomes[0]!).flag, 'DC');
});

t.test('an idle connection is closed on both sides', async (t) => {
  let upstreamClosed!: Promise<unknown>;
  const upstream = net.createServer((socket) => {
    upstreamClosed = collect(socket);
  });
  const f = await front(t, await listen(upstream), { idleTimeoutMs: 100 });
  t.teardown(() => upstream.close());
  const client = net.connect({ port: f.port, host: '127.0.0.1' });
  const result = await collect(client);
  await upstreamClosed;
  t.equal(result.error, undefined, 'closed, not reset');
  t.equal((await f.outcomes[0]!).reason, 'idle_timeout');
});

t.test('a connection that was not redirected is refused as a loop, and the listener stays up', async (t) => {
  const registry = new Registry();
  const metrics = createTcpMetrics(registry, 'meshlet');
  const log = createLogger('silent');
  const config = loadConfig({ env: {} });
  const stack = outboundStack({ ...(await createTelemetry(new Registry(), config, log, undefined)), tcpMetrics: metrics, config, log, localAddresses: new LocalAddresses(), proxyPorts: new Set([0]), identity: () => undefined, peers: { lookup: () => undefined }, parts: newStackParts(), resilience: ResilienceRuntime.fromConfig(config) });
  const listener = await listenRedirected('outbound', 0, stack, { log, metrics });
  t.teardown(() => listener.server.close());
  for (let i = 0; i < 2; i++) {
    // Connecting straight to the listener: the kernel reports the listener's own address.
    const client = net.connect({ port: listener.port, host: '127.0.0.1' });
    const { error } = await collect(client);
    t.equal(error, 'ECONNRESET');
  }
  const text = await registry.metrics();
  // Where conntrack tracks loopback the kernel reports the listener itself (a loop); where
  // nothing is tracked there is no original destination at all. Both must be refused.
  t.match(text, /meshlet_proxy_connections_refused_total\{reporter="source",reason="(loop|no_original_dst)"\} 2/);
  t.notMatch(text, /meshlet_tcp_connections_opened_total\{/, 'a loop is not counted as a connection');
});

t.test('connect retries: a destination that refuses at first is tried again, and the client sent its bytes only once', async (t) => {
  const port = await freePort();
  const received: Buffer[] = [];
  const upstream = net.createServer((socket) => socket.on('data', (d: Buffer) => (received.push(d), socket.end('pong'))));
  t.teardown(() => upstream.close());
  const asked: number[] = [];
  const f = await front(t, port, {
    retryConnect: (failed) => {
      asked.push(failed);
      // Nothing listened for the first attempt; something does for the second.
      if (failed === 1) upstream.listen(port, '127.0.0.1');
      return failed < 3 ? 20 : undefined;
    },
  });
  const client = net.connect({ port: f.port, host: '127.0.0.1' });
  client.write('ping');
  const { data, error } = await collect(client);
  t.equal(error, undefined);
  t.equal(data.toString(), 'pong');
  t.same(asked, [1], 'one retry was needed');
  t.equal(Buffer.concat(received).toString(), 'ping', 'the bytes went once, to the attempt that connected');
  t.equal((await f.outcomes[0]!).flag, '-');
});

t.test('connect retries run out: the client is reset, flag UF, after the attempts the policy allowed', async (t) => {
  const port = await freePort();
  const asked: number[] = [];
  const f = await front(t, port, { retryConnect: (failed) => (asked.push(failed), failed < 3 ? 5 : undefined) });
  const client = net.connect({ port: f.port, host: '127.0.0.1' });
  const { error } = await collect(client);
  t.equal(error, 'ECONNRESET', 'reset, as a refused connection would be');
  t.same(asked, [1, 2, 3], 'three attempts');
  t.match(await f.outcomes[0]!, { flag: 'UF', reason: 'connect_econnrefused' });
});

t.test('a client that leaves while a connect retry waits: the connection is over, nothing is left open', async (t) => {
  const port = await freePort();
  let client: net.Socket | undefined;
  const f = await front(t, port, { retryConnect: () => (setImmediate(() => client?.resetAndDestroy()), 60_000) });
  client = net.connect({ port: f.port, host: '127.0.0.1' });
  client.on('error', () => {});
  await new Promise((r) => client!.once('close', r));
  await new Promise((r) => setTimeout(r, 50));
  t.equal(f.outcomes.length, 1);
  const outcome = await f.outcomes[0]!;
  t.equal(outcome.receivedBytes, 0, 'the forwarding finished without waiting for the retry');
});
