import t, { type Test } from 'tap';
import { clusterEntries } from '../../../src/admin/clusters.ts';
import { h1App, h2App, h2Request, h2Session, header, RawClient } from '../../helpers/http.ts';
import { through, TOPOLOGIES } from '../../helpers/http-sidecars.ts';
import { sidecar, until, type Sidecar } from '../proxy/mtls-harness.ts';

// The HTTP servers' part of the graceful drain, on real sockets through real sidecar
// stacks: after drain() an HTTP/1.1 response says Connection: close and its connection
// closes after it, a response under way when idle connections are closed still
// arrives whole, and an HTTP/2 client gets GOAWAY while its open stream completes.
// Also /clusters' view of the pools those requests used.

const GET = (path = '/') => `GET ${path} HTTP/1.1\r\nHost: app\r\n\r\n`;

/** An HTTP/1.1 app behind an outbound sidecar, and raw keep-alive clients of the sidecar; all closed when `t` ends. */
async function h1Path(t: Test, handle: Parameters<typeof h1App>[0]) {
  const app = await h1App(handle);
  t.teardown(() => app.close());
  const proxy = await sidecar('outbound', () => app.port);
  t.teardown(() => proxy.close());
  const client = () => {
    const c = new RawClient(proxy.port);
    t.teardown(() => c.close());
    return c;
  };
  return { app, proxy, client };
}

const drain = (proxy: Sidecar) => proxy.parts.servers.outbound.forEach((s) => s.drain());
const closeIdle = (proxy: Sidecar) => proxy.parts.servers.outbound.forEach((s) => s.closeIdle());

t.test('HTTP/1.1: after drain(), the next response says Connection: close and the connection closes after it', async (t) => {
  const { proxy, client: connect } = await h1Path(t, (_req, res) => res.end('ok'));
  const client = connect();
  client.write(GET());
  const [before] = await client.read(['GET']);
  t.equal(header(before!, 'connection'), undefined, 'keep-alive before the drain');
  drain(proxy);
  client.write(GET());
  const [during] = await client.read(['GET']);
  t.equal(during!.status, 200, 'still served while draining');
  t.equal(during!.body.toString(), 'ok');
  t.equal(header(during!, 'connection'), 'close');
  await until(() => client.closed, 'the proxy closes the connection after that response');
});

t.test('HTTP/1.1: closeIdle() closes idle connections, but a response under way finishes first', async (t) => {
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  const { app, proxy, client } = await h1Path(t, (req, res) => {
    if (req.url === '/slow') void held.then(() => res.end('slow and whole'));
    else res.end('ok');
  });
  const idle = client();
  const busy = client();
  idle.write(GET());
  await idle.read(['GET']);
  busy.write(GET('/slow'));
  await until(() => app.requests.some((r) => r.url === '/slow'), 'the slow request reached the app');

  drain(proxy);
  closeIdle(proxy);
  await until(() => idle.closed, 'the idle connection is closed');
  t.equal(busy.closed, false, 'the busy one is not');
  release();
  const [slow] = await busy.read(['GET']);
  t.equal(slow!.body.toString(), 'slow and whole');
  t.equal(header(slow!, 'connection'), 'close');
  await until(() => busy.closed, 'then it closes too');
});

t.test('HTTP/1.1: a response that went out keep-alive before the drain closes its connection when it ends after the delay', async (t) => {
  let finish!: () => void;
  const finished = new Promise<void>((r) => (finish = r));
  const { proxy, client: connect } = await h1Path(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('streamed ');
    void finished.then(() => res.end('to the end'));
  });
  const client = connect();
  client.write(GET());
  await until(() => client.socket.bytesRead > 0, 'the response head arrived (keep-alive, before the drain)');
  drain(proxy);
  closeIdle(proxy);
  t.equal(client.closed, false, 'not cut while its response is under way');
  finish();
  const [r] = await client.read(['GET']);
  t.equal(r!.body.toString(), 'streamed to the end');
  t.equal(header(r!, 'connection'), undefined, 'its head had gone out keep-alive');
  await until(() => client.closed, 'the connection closes after it all the same (nothing else would close it)');
});

for (const topology of TOPOLOGIES) {
  t.test(`HTTP/2 (${topology}): drain() sends GOAWAY; the stream under way completes`, async (t) => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const app = await h2App((stream, headers) => {
      stream.respond({ ':status': 200 });
      if (headers[':path'] === '/slow') void held.then(() => stream.end('slow and whole'));
      else stream.end('ok');
    });
    t.teardown(() => app.close());
    const path = await through(t, topology, () => app.port);
    const session = h2Session(t, path.port);
    let goaway = false;
    session.on('goaway', () => (goaway = true));
    t.equal((await h2Request(session, {})).status, 200);
    const slow = h2Request(session, { ':path': '/slow' });
    await until(() => app.streams === 2, 'the slow stream reached the app');

    // The side the client talks to drains (the outbound sidecar; with the pair, the inbound one too).
    for (const s of path.outbound.parts.servers.outbound) s.drain();
    if (path.inbound) for (const s of path.inbound.parts.servers.inbound) s.drain();
    await until(() => goaway, 'the client got GOAWAY');
    release();
    const r = await slow;
    t.equal(r.status, 200);
    t.equal(r.end, 'end', 'ended normally, not reset');
    t.equal(r.body.toString(), 'slow and whole');
    await until(() => session.closed || session.destroyed, 'the session ends once its streams are done');
  });
}

t.test('/clusters: the pools a request used show its destination, connections and idle ones', async (t) => {
  const { app, proxy, client: connect } = await h1Path(t, (_req, res) => res.end('ok'));
  t.same(clusterEntries(proxy.parts.pools), [], 'nothing before any request');
  const client = connect();
  client.write(GET());
  await client.read(['GET']);
  await until(() => clusterEntries(proxy.parts.pools)[0]?.idle === 1, 'the connection went back to the pool');
  t.same(clusterEntries(proxy.parts.pools), [
    { pool: 'outbound/http1', direction: 'outbound', protocol: 'http1', mtls: false, destination: `127.0.0.1:${app.port}`, connections: 1, idle: 1, breaker: null },
  ]);
});

t.test('/clusters: a meshlet/h2 session to the peer sidecar, with its open streams', async (t) => {
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  const app = await h2App((stream) => {
    stream.respond({ ':status': 200 });
    void held.then(() => stream.end('ok'));
  });
  t.teardown(() => app.close());
  const path = await through(t, 'mesh', () => app.port);
  const session = h2Session(t, path.port);
  const pending = h2Request(session, {});
  await until(() => app.streams === 1, 'the stream reached the app');
  const mesh = clusterEntries(path.outbound.parts.pools).find((c) => c.pool === 'outbound/mesh-h2');
  t.match(mesh, { protocol: 'meshlet/h2', mtls: true, connections: 1, streams: 1, breaker: null });
  release();
  t.equal((await pending).status, 200);
  await until(() => clusterEntries(path.outbound.parts.pools).find((c) => c.pool === 'outbound/mesh-h2')?.streams === 0, 'the closed stream left the count');
});
