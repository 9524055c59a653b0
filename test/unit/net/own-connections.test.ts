import net from 'node:net';
import tls from 'node:tls';
import t from 'tap';
import { isOwnConnection, ownConnectionCount, trackOwnConnection } from '../../../src/net/own-connections.ts';

// Real sockets on loopback: a tracked connection is recognised by the listener that
// accepts it, at its accept (which can come before the client's own 'connect'), and
// forgotten when it closes.

/** A dual-stack server that reports, at each accept, whether the peer is one of ours. */
async function server() {
  const seen: boolean[] = [];
  const accepted: net.Socket[] = [];
  const srv = net.createServer((socket) => {
    seen.push(isOwnConnection(socket.remoteAddress ?? '', socket.remotePort ?? 0));
    accepted.push(socket);
  });
  await new Promise<void>((resolve) => srv.listen(0, '::', resolve));
  const port = (srv.address() as net.AddressInfo).port;
  return {
    port,
    seen,
    close: () => {
      for (const s of accepted) s.destroy();
      return new Promise((resolve) => srv.close(resolve));
    },
  };
}

/** Destroys `socket` and resolves once it has closed. */
const destroyed = (socket: net.Socket) =>
  new Promise((resolve) => {
    socket.once('close', resolve);
    socket.destroy();
  });
const until = async (check: () => boolean) => {
  while (!check()) await new Promise((resolve) => setTimeout(resolve, 5));
};

t.test('a tracked connection is known at its accept, on IPv4 and IPv6, and forgotten when it closes', async (t) => {
  const srv = await server();
  t.teardown(srv.close);
  const before = ownConnectionCount();
  const clients = [];
  for (let i = 0; i < 40; i++) clients.push(trackOwnConnection(net.connect({ host: i % 2 ? '127.0.0.1' : '::1', port: srv.port })));
  await until(() => srv.seen.length === clients.length);
  t.same(srv.seen, clients.map(() => true), 'every accept saw its peer as our own connection');
  t.equal(ownConnectionCount() - before, 40);
  await Promise.all(clients.map(destroyed));
  t.equal(ownConnectionCount(), before, 'closed connections are forgotten');
});

t.test('a connection nobody tracked is not ours', async (t) => {
  const srv = await server();
  t.teardown(srv.close);
  const c = net.connect({ host: '127.0.0.1', port: srv.port });
  await until(() => srv.seen.length === 1);
  t.same(srv.seen, [false]);
  c.destroy();
});

t.test('TLS clients, and sockets tracked once connected (as an HTTP client hands them over), count too', async (t) => {
  const srv = await server();
  t.teardown(srv.close);
  const secure = trackOwnConnection(tls.connect({ host: '127.0.0.1', port: srv.port, rejectUnauthorized: false }));
  secure.on('error', () => {});
  await until(() => srv.seen.length === 1);
  const late = net.connect({ host: '127.0.0.1', port: srv.port });
  await new Promise((resolve) => late.once('connect', resolve));
  trackOwnConnection(late);
  trackOwnConnection(late); // twice is harmless
  const [address, port] = [late.localAddress!, late.localPort!];
  t.ok(isOwnConnection(address, port), 'known from when it was handed over');
  t.equal(srv.seen[0], true, 'the TLS client was known at its accept');
  await Promise.all([destroyed(secure), destroyed(late)]);
  t.notOk(isOwnConnection(address, port));
});

t.test('a connection that fails leaves nothing behind', async (t) => {
  const srv = await server();
  const port = srv.port;
  await srv.close();
  const before = ownConnectionCount();
  const c = trackOwnConnection(net.connect({ host: '127.0.0.1', port }));
  const closed = new Promise((resolve) => c.once('close', resolve));
  const err = await new Promise<NodeJS.ErrnoException>((resolve) => c.once('error', resolve));
  t.equal(err.code, 'ECONNREFUSED');
  await closed;
  t.equal(ownConnectionCount(), before);
});

t.test('the same local port towards another destination is not ours: an app can share an ephemeral port with one of our connections', async (t) => {
  const srv = await server();
  t.teardown(srv.close);
  const ours = trackOwnConnection(net.connect({ host: '127.0.0.1', port: srv.port }), { address: '127.0.0.1', port: srv.port });
  await new Promise((resolve) => ours.once('connect', resolve));
  const [address, port] = [ours.localAddress!, ours.localPort!];
  t.ok(isOwnConnection(address, port, { address: '127.0.0.1', port: srv.port }), 'ours, redirected back with its own destination');
  t.notOk(isOwnConnection(address, port, { address: '10.1.2.3', port: 8080 }), 'an app on the same local port, going elsewhere');
  t.ok(isOwnConnection(address, port), 'without a destination to compare, the port alone decides');
  await destroyed(ours);
});
