// A sample application for the pods of the testbed: a TCP server that hashes what it
// receives and answers after the client half-closes, and a client that proves both
// directions arrived intact. Prints one JSON line so tests and benchmarks can read it.
//
//   server --port P [--host H]
//   client --host H --port P [--send BYTES] [--reply BYTES] [--timeout MS]
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { parseArgs } from 'node:util';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    host: { type: 'string', default: '::' },
    port: { type: 'string' },
    send: { type: 'string', default: '1024' },
    reply: { type: 'string', default: '0' },
    timeout: { type: 'string', default: '30000' },
  },
});
const CHUNK = 64 * 1024;

/** Writes `total` random bytes with backpressure, hashing them; resolves with the hash. */
async function sendRandom(socket: net.Socket, total: number): Promise<string> {
  const hash = createHash('sha256');
  let left = total;
  while (left > 0) {
    const chunk = randomBytes(Math.min(CHUNK, left));
    hash.update(chunk);
    left -= chunk.length;
    if (!socket.write(chunk)) await new Promise((r) => socket.once('drain', r));
  }
  return hash.digest('hex');
}

if (positionals[0] === 'server') {
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    let header = '';
    let reply = 0;
    const hash = createHash('sha256');
    let bytes = 0;
    let gotHeader = false;
    socket.on('data', (data: Buffer) => {
      if (!gotHeader) {
        const nl = data.indexOf(10);
        if (nl < 0) {
          header += data.toString();
          return;
        }
        header += data.subarray(0, nl).toString();
        reply = (JSON.parse(header) as { reply: number }).reply;
        gotHeader = true;
        data = data.subarray(nl + 1);
      }
      hash.update(data);
      bytes += data.length;
    });
    socket.on('end', async () => {
      // The client has shut its write side; it must still receive all of this.
      socket.write(`${JSON.stringify({ peer: socket.remoteAddress, local: socket.localAddress, bytes, sha256: hash.digest('hex') })}\n`);
      await sendRandom(socket, reply).then((sha) => socket.end(`\n${sha}`));
    });
    socket.on('error', () => socket.destroy());
  });
  server.listen({ host: values.host, port: Number(values.port), ipv6Only: false }, () => {
    console.log(JSON.stringify({ listening: (server.address() as net.AddressInfo).port }));
  });
} else if (positionals[0] === 'client') {
  const send = Number(values.send);
  const reply = Number(values.reply);
  const socket = net.connect({ host: values.host, port: Number(values.port), allowHalfOpen: true });
  const timer = setTimeout(() => fail('timeout'), Number(values.timeout));
  const fail = (error: string) => {
    console.log(JSON.stringify({ ok: false, error }));
    process.exit(1);
  };
  socket.on('error', (err: NodeJS.ErrnoException) => fail(err.code ?? err.message));
  socket.once('connect', async () => {
    socket.write(`${JSON.stringify({ reply })}\n`);
    const sentSha = await sendRandom(socket, send);
    socket.end();
    // Response: a JSON line, `reply` random bytes, then "\n<sha of those bytes>" (65 bytes),
    // hashed as it streams so large transfers need no memory.
    const hash = createHash('sha256');
    let head = Buffer.alloc(0);
    let server: Record<string, unknown> | undefined;
    let tail = Buffer.alloc(0);
    let receivedBytes = 0;
    socket.on('data', (d: Buffer) => {
      if (!server) {
        head = Buffer.concat([head, d]);
        const nl = head.indexOf(10);
        if (nl < 0) return;
        server = JSON.parse(head.subarray(0, nl).toString()) as Record<string, unknown>;
        d = head.subarray(nl + 1);
      }
      const all = tail.length ? Buffer.concat([tail, d]) : d;
      const keep = Math.min(all.length, 65);
      const body = all.subarray(0, all.length - keep);
      hash.update(body);
      receivedBytes += body.length;
      tail = Buffer.from(all.subarray(all.length - keep));
    });
    socket.on('end', () => {
      clearTimeout(timer);
      if (!server) fail('closed before any response');
      const receivedSha = hash.digest('hex');
      const claimed = tail.subarray(1).toString();
      console.log(JSON.stringify({ ok: true, sentSha, server, receivedSha, replyIntact: receivedSha === claimed, receivedBytes }));
      socket.end();
    });
  });
} else {
  console.error('usage: tcp-app server|client ...');
  process.exit(2);
}
