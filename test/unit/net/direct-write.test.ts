import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import t, { type Test } from 'tap';
import { directWrites, writeMessage } from '../../../src/net/direct-write.ts';
import { until } from '../proxy/mtls-harness.ts';
import { loopbackClient, serverIdentity } from './sockets.ts';

// Messages written to a socket's handle directly, on real loopback connections: bytes
// arrive whole and in order when direct writes, writes libuv had to queue (a reader that
// does not read) and stream writes alternate; the socket's byte count stays right; a write
// to a connection the peer reset fails the socket with the code node:net would give; TLS
// sockets are written through their stream.

/** A connection whose accepted side does not read until the test says so. */
async function pair(t: Test, secure?: { key: Buffer; cert: Buffer }) {
  let accepted: net.Socket | undefined;
  const client = await loopbackClient(
    t,
    (s) => {
      s.pause();
      accepted = s;
    },
    secure,
  );
  await until(() => accepted !== undefined, 'the connection to be accepted');
  return { client, server: accepted! };
}

function digest(parts: (string | Buffer)[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(typeof p === 'string' ? Buffer.from(p, 'latin1') : p);
  return h.digest('hex');
}

t.test('this runtime writes plain TCP sockets directly', async (t) => {
  t.equal(directWrites, true, "node's stream binding has the write request and state the module relies on");
});

for (const kind of ['plain', 'TLS'] as const) {
  t.test(`${kind}: direct, queued and stream writes arrive whole and in order`, async (t) => {
    const secure = kind === 'TLS' ? await serverIdentity(t, 'direct-write') : undefined;
    const { client, server } = await pair(t, secure);
    // Latin-1 text with bytes above 127 (a head's obs-text), and binary chunks large enough
    // that, with nobody reading, the kernel's buffers fill and libuv queues writes.
    const sent: (string | Buffer)[] = [];
    for (let i = 0; i < 200; i++) {
      const head = `HTTP/1.1 200 OK\r\nX-Seq: ${i}\r\nX-Text: caf\u00e9\r\n\r\n`;
      const body = randomBytes(i % 3 === 0 ? 64 * 1024 : 100);
      sent.push(head, body);
      writeMessage(client, head);
      // Every fifth through the stream, as a body chunk written after a full socket would be.
      if (i % 5 === 0) client.write(body);
      else writeMessage(client, body);
    }
    const total = sent.reduce((n, p) => n + (typeof p === 'string' ? Buffer.byteLength(p, 'latin1') : p.length), 0);
    const received: Buffer[] = [];
    let length = 0;
    server.on('data', (chunk: Buffer) => {
      received.push(chunk);
      length += chunk.length;
    });
    server.resume();
    await until(() => length >= total, 'every byte to arrive');
    t.equal(length, total, 'no byte more');
    t.equal(digest(received), digest(sent), 'the bytes in the order written');
    await until(() => client.writableLength === 0, 'the stream to be empty');
    if (kind === 'plain') t.equal(client.bytesWritten, total, 'bytesWritten counts direct writes too');
  });
}

t.test('a write to a connection the peer reset fails the socket with the system error code', async (t) => {
  let accepted: net.Socket | undefined;
  const server = net.createServer((s) => {
    s.on('error', () => {});
    accepted = s;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  // Reading into a buffer of its own, the socket stops reading at the handle when paused:
  // the reset is then seen by a write, not a read.
  const client = net.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', onread: { buffer: Buffer.alloc(1024), callback: () => true } });
  t.teardown(() => {
    client.destroy();
    server.close();
  });
  await new Promise((resolve) => client.once('connect', resolve));
  await until(() => accepted !== undefined, 'the connection to be accepted');
  client.pause();
  accepted!.resetAndDestroy();
  const failed = new Promise<NodeJS.ErrnoException>((resolve) => client.once('error', resolve));
  // The reset may take a write or two to be seen: the first can still reach the kernel.
  const writer = setInterval(() => {
    if (!client.destroyed) writeMessage(client, 'GET / HTTP/1.1\r\nHost: a\r\n\r\n');
  }, 5);
  t.teardown(() => clearInterval(writer));
  const err = await failed;
  clearInterval(writer);
  t.ok(err.code === 'EPIPE' || err.code === 'ECONNRESET', `code ${err.code}`);
  t.equal(err.syscall, 'write');
  t.equal(typeof err.errno, 'number');
  t.ok(client.destroyed, 'the socket is destroyed');
});

t.test('a socket still connecting is written through its stream, which holds the bytes until connected', async (t) => {
  const server = net.createServer((s) => {
    s.on('data', (d) => {
      got += d.toString('latin1');
    });
  });
  let got = '';
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const client = net.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1' });
  t.teardown(() => {
    client.destroy();
    server.close();
  });
  t.ok(client.connecting);
  t.equal(writeMessage(client, 'first;'), true);
  writeMessage(client, Buffer.from('second'));
  await until(() => got === 'first;second', 'both writes to arrive in order');
  t.equal(got, 'first;second');
});

t.test('a write after end() fails as the stream would, and does not reach the handle', async (t) => {
  const { client } = await pair(t);
  client.end();
  const err = await new Promise<NodeJS.ErrnoException>((resolve) => {
    client.once('error', resolve);
    writeMessage(client, 'late');
  });
  t.equal(err.code, 'ERR_STREAM_WRITE_AFTER_END');
});
