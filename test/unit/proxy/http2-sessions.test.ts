import http2 from 'node:http2';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import t, { type Test } from 'tap';
import { CONNECTION_WINDOW, STREAM_WINDOW } from '../../../src/proxy/http/h2-session.ts';
import { MESH_ALPN_H2 } from '../../../src/tls/peer-identity.ts';
import { loadIdentity } from '../../../src/tls/identity.ts';
import { h2App, h2Request, h2Session } from '../../helpers/http.ts';
import { through, TOPOLOGIES, type Topology } from '../../helpers/http-sidecars.ts';
import { caOk, tempDir } from '../tls/ca-helpers.ts';
import { listen, makeIdentity, sidecar, until } from './mtls-harness.ts';

// The life of the HTTP/2 sessions the proxy keeps, at their edges:
//   - the peer ends the connection (TCP FIN, no GOAWAY, as when a process dies): a
//     response that had arrived whole still reaches a slow client whole, a stream the
//     peer had not finished is reset (not left waiting for ever), and the next request
//     goes on a new connection. The peer is the app (h2c, through one sidecar or the
//     pair) or the peer sidecar itself (meshlet/h2 over mTLS);
//   - the client ends its connection to a sidecar: the sidecar closes its side;
//   - many concurrent streams with slow readers: node:http2's session memory limit never
//     refuses a stream (ENHANCE_YOUR_CALM), which after 100 refusals would have taken the
//     whole session down, every stream on it included.

const WHOLE = 1024 * 1024;
const SLOW_START_MS = 300;

/**
 * An HTTP/2 server that answers `/whole` with WHOLE bytes and END_STREAM, holds `/partial`
 * open after its headers and a few bytes, and answers anything else with "ok". `end()`
 * ends (FIN) every connection, without GOAWAY.
 */
async function endingServer(t: Test, server: net.Server): Promise<{ port: number; readonly connections: number; written: Promise<void>; end(): void }> {
  const sockets = new Set<net.Socket>();
  let written!: () => void;
  const whole = new Promise<void>((r) => (written = r));
  const onSocket = (socket: net.Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    const session = http2.performServerHandshake(socket, { settings: { maxConcurrentStreams: 2000 } });
    session.on('error', () => {});
    session.on('stream', (stream, headers) => {
      stream.on('error', () => {});
      stream.respond({ ':status': 200 });
      if (headers[':path'] === '/whole') stream.end(Buffer.alloc(WHOLE, 0x77), written);
      else if (headers[':path'] === '/partial') stream.write('partial');
      else stream.end('ok');
    });
  };
  server.on(server instanceof tls.Server ? 'secureConnection' : 'connection', onSocket);
  const port = await listen(server);
  t.teardown(() => {
    server.close();
    for (const s of sockets) s.destroy();
  });
  return {
    port,
    get connections() {
      return sockets.size;
    },
    written: whole,
    end: () => {
      for (const s of sockets) s.end();
    },
  };
}

/** Reads a response slowly (one chunk per 5 ms after a pause), as a client that has fallen behind. */
function slowRead(session: http2.ClientHttp2Session, path: string): Promise<{ status: number; bytes: number; end: 'end' | 'reset' }> {
  return new Promise((resolve) => {
    const stream = session.request({ ':path': path });
    let status = 0;
    let bytes = 0;
    let ended = false;
    stream.pause();
    setTimeout(() => stream.resume(), SLOW_START_MS);
    stream.on('response', (h) => (status = Number(h[':status'])));
    stream.on('data', (d: Buffer) => {
      bytes += d.length;
      stream.pause();
      setTimeout(() => stream.resume(), 5);
    });
    stream.on('end', () => (ended = true));
    stream.on('error', () => {});
    stream.on('close', () => resolve({ status, bytes, end: ended && stream.rstCode === 0 ? 'end' : 'reset' }));
  });
}

const within = <T>(p: Promise<T>, ms: number, what: string) =>
  Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms).unref())]);

/** The peer behind `port` ends its connections while one response is whole and unread and another unfinished. */
async function peerEnds(t: Test, port: number, peer: Awaited<ReturnType<typeof endingServer>>): Promise<void> {
  const session = h2Session(t, port);
  const whole = slowRead(session, '/whole');
  const partial = h2Request(session, { ':path': '/partial' });
  await peer.written; // every byte of /whole is on its way before the FIN
  peer.end();
  const w = await within(whole, 10_000, '/whole');
  t.same(w, { status: 200, bytes: WHOLE, end: 'end' }, 'the response that had arrived whole reaches the slow client whole');
  const p = await within(partial, 5000, '/partial');
  t.equal(p.end, 'reset', 'the unfinished one is reset, not left waiting');
  t.equal(p.body.toString(), 'partial', 'after what had arrived');
  const next = await within(h2Request(session, { ':path': '/next' }), 5000, 'the next request');
  t.same([next.status, next.body.toString()], [200, 'ok'], 'the next request is answered, on a new connection');
  await until(() => peer.connections === 1, 'the ended connection closing');
  t.pass('the ended connection is gone and one new one is open');
}

for (const topology of TOPOLOGIES) {
  t.test(`the app ends its h2c connection (FIN, no GOAWAY) ${topology === 'one' ? 'behind one sidecar' : 'behind the pair'}`, async (t) => {
    const app = await endingServer(t, net.createServer({ allowHalfOpen: true }));
    const { port } = await through(t, topology, () => app.port);
    await peerEnds(t, port, app);
  });
}

t.test('the peer sidecar ends the meshlet/h2 connection (FIN, no GOAWAY)', async (t) => {
  // A stand-in for the inbound sidecar: meshlet/h2 over mTLS with a mesh identity.
  const root = tempDir();
  const caDir = path.join(root, 'ca');
  await caOk(['init', '--out', caDir]);
  const server = loadIdentity(await makeIdentity(root, caDir, 'server', 'spiffe://cluster.local/ns/b/sa/server'));
  const peer = await endingServer(
    t,
    tls.createServer({ ...server.pem, requestCert: true, rejectUnauthorized: true, ALPNProtocols: [MESH_ALPN_H2], minVersion: 'TLSv1.3', allowHalfOpen: true }),
  );
  const outbound = await sidecar('outbound', () => peer.port, {
    identityDir: await makeIdentity(root, caDir, 'client', 'spiffe://cluster.local/ns/a/sa/client'),
    peer: { trustDomain: 'cluster.local' },
  });
  t.teardown(() => outbound.close());
  await peerEnds(t, outbound.port, peer);
});

for (const topology of TOPOLOGIES) {
  t.test(`a client ends its connection to the sidecar (FIN, no GOAWAY): the sidecar closes its side (${topology})`, async (t) => {
    const app = await h2App((stream) => {
      stream.respond({ ':status': 200 });
      stream.end('ok');
    });
    t.teardown(() => app.close());
    const { port, outbound } = await through(t, topology as Topology, () => app.port);
    const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const session = http2.connect(`http://127.0.0.1:${port}`, { createConnection: () => socket });
    session.on('error', () => {});
    t.teardown(() => session.destroy());
    t.equal((await h2Request(session, { ':path': '/' })).status, 200);
    const closed = new Promise((r) => socket.once('close', r));
    socket.end();
    await within(closed, 5000, "the sidecar's side of the connection closing");
    await within(outbound.outcomes[0]!, 5000, 'the connection accounted for');
    t.pass('the sidecar closed the connection, and its connection pipeline finished');
  });
}

for (const topology of TOPOLOGIES) {
  t.test(`every session the proxy opens or accepts has the stream and connection windows of h2-session.ts (${topology})`, async (t) => {
    let atApp: { stream: number | undefined; connection: number } | undefined;
    const app = await h2App((stream) => {
      const session = stream.session!;
      atApp = { stream: session.remoteSettings.initialWindowSize, connection: session.state.remoteWindowSize! };
      stream.respond({ ':status': 200 });
      stream.end('ok');
    });
    t.teardown(() => app.close());
    const { port } = await through(t, topology, () => app.port);
    const session = h2Session(t, port);
    t.equal((await h2Request(session, { ':path': '/' })).status, 200);
    const announced = { stream: STREAM_WINDOW, connection: CONNECTION_WINDOW };
    t.same(atApp, announced, "the app's view of the proxy's session (h2c upstream)");
    t.same({ stream: session.remoteSettings.initialWindowSize, connection: session.state.remoteWindowSize }, announced, "the client's view of the listener's session");
  });
}

// 990 streams whose reader has stopped, then 200 more (beyond the sidecar's 1000): each
// stream holds what its writer may queue before backpressure (up to 128 KiB), which was
// past node:http2's default session memory of 10 MB.
const STALLED = 990;
const MORE = 200;
const SIZE = 128 * 1024;
for (const topology of TOPOLOGIES) {
  for (const direction of ['responses', 'request bodies'] as const) {
    t.test(`${STALLED} streams with stalled ${direction}, then ${MORE} more: none refused (${topology})`, async (t) => {
      const appStreams: http2.ServerHttp2Stream[] = [];
      let appReads = false;
      const app = await h2App(
        (stream) => {
          if (direction === 'responses') {
            stream.respond({ ':status': 200 });
            stream.end(Buffer.alloc(SIZE, 0x72));
            return;
          }
          appStreams.push(stream);
          if (!appReads) stream.pause();
          stream.on('data', () => {});
          stream.once('end', () => {
            stream.respond({ ':status': 200 });
            stream.end('ok');
          });
        },
        { settings: { maxConcurrentStreams: 5000 }, maxSessionMemory: 1000 },
      );
      t.teardown(() => app.close());
      const { port } = await through(t, topology, () => app.port);
      // The client's own session must not refuse its streams either.
      const session = http2.connect(`http://127.0.0.1:${port}`, { maxSessionMemory: 1000 });
      session.on('error', () => {});
      t.teardown(() => session.destroy());
      const clientStreams: http2.ClientHttp2Stream[] = [];
      const outcome = () =>
        new Promise<string>((resolve) => {
          const upload = direction === 'request bodies';
          const stream = session.request({ ':method': upload ? 'POST' : 'GET', ':path': '/' }, { endStream: !upload });
          clientStreams.push(stream);
          if (upload) stream.end(Buffer.alloc(SIZE, 0x71));
          else stream.pause();
          let bytes = 0;
          stream.on('data', (d: Buffer) => (bytes += d.length));
          stream.on('error', () => {});
          stream.on('close', () => resolve(stream.rstCode === 0 && bytes === (upload ? 2 : SIZE) ? 'ok' : `rst ${stream.rstCode}, ${bytes} bytes`));
        });
      const results = Array.from({ length: STALLED }, outcome);
      await new Promise((r) => setTimeout(r, 1000));
      results.push(...Array.from({ length: MORE }, outcome));
      await new Promise((r) => setTimeout(r, 500));
      appReads = true;
      for (const s of [...clientStreams, ...appStreams]) s.resume();
      const counts: Record<string, number> = {};
      for (const r of await within(Promise.all(results), 60_000, 'every stream')) counts[r] = (counts[r] ?? 0) + 1;
      t.same(counts, { ok: STALLED + MORE }, 'every stream answered whole');
    });
  }
}
