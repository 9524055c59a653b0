import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import t, { type Test } from 'tap';
import { readAcceptedInto, readAsStream, redirectReads } from '../../../src/net/read-into.ts';
import { until } from '../proxy/mtls-harness.ts';
import { loopbackClient, serverIdentity } from './sockets.ts';

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
