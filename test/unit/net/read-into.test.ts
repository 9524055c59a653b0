import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import t, { type Test } from 'tap';
import { readAcceptedInto, readAsStream, readDirectly, redirectReads } from '../../../src/net/read-into.ts';
import { until } from '../proxy/mtls-harness.ts';
import { loopbackClient, loopbackServer, serverIdentity } from './sockets.ts';

// Accepted sockets switched to reading into one buffer, on real loopback connections
// (plain and TLS): the bytes already held come back first, later reads reach the callback
// and nothing else, pause() and resume() stop and restart them, the end of the stream is
// still told, and a switched socket can become a stream again for code that reads 'data'.

/** A connection whose accepted side is handed over once the client's first bytes ('held') sit in its stream's buffer. */
async function pair(t: Test, secure?: { key: Buffer; cert: Buffer }) {
  let accepted: net.Socket | undefined;
  // Reads start as on any accepted socket: bytes arriving now are held by the stream.
  const client = await loopbackClient(
    t,
    (s) =>
      s.on('readable', function hold() {
        s.off('readable', hold);
        accepted = s;
      }),
    secure,
  );
  client.write('held');
  await until(() => accepted !== undefined, 'the first bytes to be held');
  return { client, server: accepted! };
}

for (const kind of ['plain', 'TLS'] as const) {
  t.test(`${kind}: held bytes first, then every read to the callback, with pause, resume and end`, async (t) => {
    const secure = kind === 'TLS' ? await serverIdentity(t, 'read-into') : undefined;
    const { client, server } = await pair(t, secure);
    const buffer = Buffer.alloc(64 * 1024);
    const reads: string[] = [];
    const held = readAcceptedInto(server, {
      buffer,
      callback: (bytes, into) => {
        t.equal(into, buffer, 'reads land in the given buffer');
        reads.push(Buffer.from(into.subarray(0, bytes)).toString());
        return true;
      },
    });
    t.ok(held, `a ${kind} accepted socket can be switched`);
    t.equal(Buffer.concat(held!).toString(), 'held', 'what the stream held comes back');
    let datas = 0;
    server.on('data', () => datas++); // would make a stream flow; a switched socket has nothing to emit

    client.write('one');
    await until(() => reads.join('') === 'one', 'the first read');
    server.pause();
    client.write('two');
    await new Promise((r) => setTimeout(r, 100));
    t.same(reads, ['one'], 'nothing is read while paused');
    server.resume();
    await until(() => reads.join('') === 'onetwo', 'the read after resume');

    const ended = new Promise<void>((resolve) => server.once('end', resolve));
    client.end();
    await ended;
    t.pass("the client's end is an 'end' event");
    t.equal(datas, 0, "no 'data' event was emitted");
  });
}

t.test('a switched socket reads as a stream again: a MiB piped through intact, with backpressure', async (t) => {
  const { client, server } = await pair(t);
  const before: string[] = [];
  const held = readAcceptedInto(server, { buffer: Buffer.alloc(16 * 1024), callback: (n, b) => (before.push(Buffer.from(b.subarray(0, n)).toString()), true) });
  t.equal(Buffer.concat(held!).toString(), 'held');
  client.write('codec');
  await until(() => before.join('') === 'codec', 'the codec read');

  readAsStream(server);
  server.pause();
  const payload = randomBytes(1024 * 1024);
  client.end(payload);
  const hash = createHash('sha256');
  let bytes = 0;
  let stops = 0;
  await new Promise<void>((resolve) => {
    server.on('data', (d: Buffer) => {
      hash.update(d);
      bytes += d.length;
      // A slow reader: the socket's own buffering has to hold back the reads.
      server.pause();
      stops++;
      setImmediate(() => server.resume());
    });
    server.on('end', resolve);
    server.resume();
  });
  t.equal(bytes, payload.length, 'every byte');
  t.equal(hash.digest('hex'), createHash('sha256').update(payload).digest('hex'), 'in order (sha256)');
  t.ok(stops > 1, `the reader stopped ${stops} times`);
  t.same(before, ['codec'], 'the first callback saw nothing after the switch');
});

t.test('redirectReads: a callback that refuses stops the reads', async (t) => {
  const { client, server } = await pair(t);
  let first = 0;
  readAcceptedInto(server, { buffer: Buffer.alloc(1024), callback: () => (first++, true) });
  let refused = 0;
  redirectReads(server, () => (refused++, false));
  client.write('x');
  await until(() => refused === 1, 'the refused read');
  client.write('y');
  await new Promise((r) => setTimeout(r, 100));
  t.equal(refused, 1, 'no read after the refusal');
  t.equal(first, 0, 'the first callback is no longer called');
});

/** A client reading into `into`, connected to a loopbackServer (TLS with `secure`) whose accepted sockets go to `onSocket`. */
async function connectInto(t: Test, into: { buffer: Uint8Array; callback: (n: number, b: Uint8Array) => boolean }, onSocket: (s: net.Socket) => void, secure?: { key: Buffer; cert: Buffer }) {
  const port = await loopbackServer(t, onSocket, secure);
  // tls.connect takes `onread` (it makes the TLSSocket with it) though its types do not say so.
  const options = { port, host: '127.0.0.1', rejectUnauthorized: false, onread: into };
  const client = secure ? tls.connect(options) : net.connect(options);
  t.teardown(() => client.destroy());
  return client;
}

for (const kind of ['plain', 'TLS'] as const) {
  t.test(`${kind}: a connecting socket made with onread reads directly: every read, a refusal that stops them, resume, the end`, async (t) => {
    const secure = kind === 'TLS' ? await serverIdentity(t, 'read-direct') : undefined;
    let peer: net.Socket | undefined;
    const reads: string[] = [];
    let refuse = false;
    const buffer = Buffer.alloc(1024);
    const client = await connectInto(t, { buffer, callback: (n, b) => (reads.push(Buffer.from(b.subarray(0, n)).toString()), !refuse) }, (s) => (peer = s), secure);
    t.equal(readDirectly(client), true, 'the socket takes its own read handler');
    const handle = (client as unknown as { _handle: { onread: unknown } })._handle;
    const own = handle.onread;
    t.equal(readDirectly(client), true, 'asked again, it says so');
    t.equal(handle.onread, own, 'and keeps the handler it has rather than wrapping it');
    await until(() => peer !== undefined, 'the connection to be accepted');
    peer!.write('one');
    await until(() => reads.join('') === 'one', 'the first read');
    refuse = true;
    peer!.write('two');
    await until(() => reads.join('') === 'onetwo', 'the refused read');
    peer!.write('three');
    await new Promise((r) => setTimeout(r, 100));
    t.same(reads.join(''), 'onetwo', 'no read after the callback refused one');
    refuse = false;
    client.resume();
    await until(() => reads.join('') === 'onetwothree', 'the read after resume');
    const ended = new Promise<void>((resolve) => client.once('end', resolve));
    peer!.end();
    await ended;
    t.pass("the peer's end is an 'end' event");
  });
}

t.test('a directly read socket with a timeout: reads still re-arm it, and it fires once they stop', async (t) => {
  let peer: net.Socket | undefined;
  let bytes = 0;
  const client = await connectInto(t, { buffer: Buffer.alloc(1024), callback: (n) => ((bytes += n), true) }, (s) => (peer = s));
  t.equal(readDirectly(client), true);
  await until(() => peer !== undefined, 'the connection to be accepted');
  let timedOutAt = -1;
  client.setTimeout(1000, () => (timedOutAt = bytes));
  // Twenty reads 100 ms apart: 2 s in all, twice the timeout, never 1 s without a read.
  for (let i = 0; i < 20; i++) {
    peer!.write('x');
    await new Promise((r) => setTimeout(r, 100));
  }
  t.equal(timedOutAt, -1, 'no timeout while reads kept coming');
  await until(() => timedOutAt !== -1, 'the timeout after the reads stopped', 5000);
  t.equal(timedOutAt, 20, 'every read arrived before it');
});

t.test('a reset connection is an error with the code node:net gives it', async (t) => {
  let peer: net.Socket | undefined;
  const client = await connectInto(t, { buffer: Buffer.alloc(1024), callback: () => true }, (s) => (peer = s));
  t.equal(readDirectly(client), true);
  await until(() => peer !== undefined, 'the connection to be accepted');
  const failed = new Promise<NodeJS.ErrnoException>((resolve) => client.once('error', resolve));
  peer!.resetAndDestroy();
  const err = await failed;
  t.equal(err.code, 'ECONNRESET');
  t.equal(err.syscall, 'read');
});

t.test('a socket that does not read into a buffer is left to its stream', async (t) => {
  let peer: net.Socket | undefined;
  const client = await loopbackClient(t, (s) => (peer = s));
  t.equal(readDirectly(client), false, 'nothing to hand its reads to');
  await until(() => peer !== undefined, 'the connection to be accepted');
  const data = new Promise<string>((resolve) => client.once('data', (d: Buffer) => resolve(d.toString())));
  peer!.write('stream');
  t.equal(await data, 'stream', "its reads are 'data' events as before");
});
