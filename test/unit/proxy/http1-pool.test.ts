import net from 'node:net';
import t, { type Test } from 'tap';
import { origDst } from '../../../src/net/addresses.ts';
import type { BodySink } from '../../../src/pipeline/body.ts';
import type { ProxyResponse } from '../../../src/pipeline/exchange.ts';
import { Http1Upstream } from '../../../src/proxy/http/http1-upstream.ts';
import { proxyRequest } from '../../helpers/proxy-request.ts';

// The HTTP/1.1 upstream pool on real sockets: a connection goes back to the pool as soon as
// its response is complete, even while the reader of that response is still behind; the
// next request on it must be answered (it was not, once: the connection stayed paused by
// the previous body's backpressure, and the second request hung).

/** A keep-alive server that answers every request with `body` in one write (head and body together). */
async function oneWriteServer(t: Test, body: Buffer): Promise<{ port: number; connections: () => number; requests: () => number }> {
  let connections = 0;
  let requests = 0;
  const server = net.createServer((socket) => {
    connections++;
    let pending = '';
    socket.on('data', (d) => {
      pending += d.toString('latin1');
      let end: number;
      while ((end = pending.indexOf('\r\n\r\n')) !== -1) {
        pending = pending.slice(end + 4);
        requests++;
        socket.write(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n`), body]));
      }
    });
    socket.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => server.close());
  return { port: (server.address() as net.AddressInfo).port, connections: () => connections, requests: () => requests };
}

/** Reads a response body the way a slow client does: full after the first chunk, room again a moment later. */
function slowRead(res: ProxyResponse): Promise<number> {
  return new Promise((resolve, reject) => {
    let bytes = 0;
    const sink: BodySink = {
      data: (chunk) => {
        bytes += chunk.length;
        setImmediate(() => res.body!.resume());
        return false;
      },
      end: () => resolve(bytes),
      abort: reject,
    };
    res.body!.pipe(sink);
  });
}

t.test('a response read by a slow reader: its connection is reused and the next request on it is answered', async (t) => {
  t.setTimeout(20_000); // a stalled connection shows as this test timing out, not the whole file
  const server = await oneWriteServer(t, Buffer.alloc(10_000, 'x'));
  const pool = new Http1Upstream({ connectTimeoutMs: 1000, idleTimeoutMs: 30_000 });
  t.teardown(() => pool.close());
  const dst = origDst('127.0.0.1', server.port);
  for (let i = 0; i < 3; i++) {
    const res = await pool.send(proxyRequest({ path: `/${i}` }), dst);
    t.equal(res.status, 200);
    t.equal(await slowRead(res), 10_000, `response ${i}: the whole body`);
  }
  t.equal(server.requests(), 3);
  t.equal(server.connections(), 1, 'one connection carried all three');
});
