import type net from 'node:net';
import t, { type Test } from 'tap';
import { closedPort, get, h1App, h2Request, h2Session, header, RawClient, tcpApp } from '../../helpers/http.ts';
import { through, TOPOLOGIES, type Topology } from '../../helpers/http-sidecars.ts';

// Upstreams that misbehave, and the answers the proxy makes itself for them: each one
// names its cause in meshlet-error. Through one sidecar (the outbound answers) and through
// a sidecar pair (the inbound answers, and the answer crosses meshlet/h2 back unchanged).
// gRPC requests get gRPC-shaped answers: HTTP 200, trailers-only, grpc-status.

type Misbehaviour = 'reset' | 'garbage' | 'closed';
const SHAPES: Record<Misbehaviour, { status: number; cause: string; grpc: string }> = {
  reset: { status: 503, cause: 'upstream_reset', grpc: '14' },
  garbage: { status: 502, cause: 'upstream_protocol_error', grpc: '13' },
  closed: { status: 503, cause: 'upstream_connect_failure', grpc: '14' },
};

/** A port where the app misbehaves: resets once the request arrives, answers with garbage, or is not there. */
async function misbehaving(t: Test, how: Misbehaviour): Promise<number> {
  if (how === 'closed') return closedPort();
  const app = await tcpApp((socket: net.Socket) => {
    socket.once('data', () => {
      if (how === 'reset') socket.resetAndDestroy();
      // Not HTTP at all, and not HTTP/2 either: the same bytes whichever the proxy expects.
      else socket.end('SSH-2.0-OpenSSH_9.6 this is not HTTP\r\n\r\n\0\0\0\0\0\0\0\0\0\0');
    });
  });
  t.teardown(() => app.close());
  return app.port;
}

for (const topology of TOPOLOGIES) {
  t.test(topology === 'one' ? 'through one outbound sidecar' : 'through a sidecar pair over meshlet/h2 (mTLS)', async (t) => {
    for (const how of ['reset', 'garbage', 'closed'] as const) {
      const { status, cause, grpc } = SHAPES[how];

      t.test(`HTTP/1.1: an upstream that ${how === 'closed' ? 'is not listening' : how === 'reset' ? 'resets before responding' : 'answers garbage'} → ${status} ${cause}`, async (t) => {
        const appPort = await misbehaving(t, how);
        const { port } = await through(t, topology, () => appPort);
        const c = new RawClient(port);
        t.teardown(() => c.close());
        for (const path of ['/first', '/second']) {
          c.write(`GET ${path} HTTP/1.1\r\nHost: app\r\n\r\n`);
          const [r] = await c.read(['GET']);
          t.equal(r?.status, status, `${path}: ${status}`);
          t.equal(header(r!, 'meshlet-error'), cause, `${path}: meshlet-error: ${cause}`);
          t.match(r?.body.toString(), new RegExp(`^${cause}: `), 'a body that says why');
        }
        t.notOk(c.closed, "the client's connection stays usable after the proxy's own answers");
      });

      t.test(`h2c: an upstream that ${how === 'closed' ? 'is not listening' : how === 'reset' ? 'resets before responding' : 'answers garbage'} → ${status} ${cause}`, async (t) => {
        const appPort = await misbehaving(t, how);
        const { port } = await through(t, topology, () => appPort);
        const session = h2Session(t, port);
        const r = await h2Request(session, { ':path': '/h2' });
        t.equal(r.status, status);
        t.equal(r.headers['meshlet-error'], cause);
        t.equal(r.end, 'end', 'a whole response, not a reset');
        t.match(r.body.toString(), new RegExp(`^${cause}: `));
      });

      t.test(`gRPC over h2c: an upstream that ${how === 'closed' ? 'is not listening' : how === 'reset' ? 'resets before responding' : 'answers garbage'} → 200, grpc-status ${grpc}`, async (t) => {
        const appPort = await misbehaving(t, how);
        const { port } = await through(t, topology, () => appPort);
        const session = h2Session(t, port);
        const r = await h2Request(session, { ':method': 'POST', ':path': '/pkg.Service/Method', 'content-type': 'application/grpc', te: 'trailers' }, Buffer.from([0, 0, 0, 0, 0]));
        t.equal(r.status, 200, 'HTTP 200, as gRPC wants');
        t.equal(r.headers['grpc-status'], grpc, `grpc-status ${grpc}`);
        t.equal(r.headers['meshlet-error'], cause);
        t.equal(r.headers['content-type'], 'application/grpc');
        t.ok(typeof r.headers['grpc-message'] === 'string' && r.headers['grpc-message'].length > 0, 'a grpc-message');
        t.equal(r.body.length, 0, 'trailers-only: no body');
        t.equal(r.end, 'end');
      });
    }

    t.test('h2c: an upstream that accepts the connection and never speaks HTTP/2 → 503 upstream_connect_failure after the connect timeout', async (t) => {
      const app = await tcpApp(() => {}); // accepts, reads nothing, sends nothing
      t.teardown(() => app.close());
      const { port } = await through(t, topology, () => app.port, { MESHLET_OUTBOUND_CONNECT_TIMEOUT: '300ms', MESHLET_INBOUND_CONNECT_TIMEOUT: '300ms' });
      const session = h2Session(t, port);
      const r = await h2Request(session, { ':path': '/silent' });
      t.same([r.status, r.headers['meshlet-error'], r.end], [503, 'upstream_connect_failure', 'end']);
      const grpc = await h2Request(session, { ':method': 'POST', ':path': '/pkg.S/M', 'content-type': 'application/grpc' }, Buffer.alloc(5));
      t.same([grpc.status, grpc.headers['grpc-status'], grpc.headers['meshlet-error']], [200, '14', 'upstream_connect_failure']);
    });

    t.test('keep-alive race: the app closes its idle connection as the next request arrives; a bodiless request is sent again on a fresh one', async (t) => {
      // On each connection: the first request is answered (keep-alive), the second one is
      // met with a close, FIN or reset by turns: what a server closing an idle connection
      // at that moment looks like to the proxy.
      let closes = 0;
      const app = await tcpApp((socket) => {
        let requests = 0;
        socket.on('data', (d: Buffer) => {
          if (!d.includes('\r\n\r\n')) return;
          if (++requests === 1) {
            socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nKeep-Alive: timeout=60\r\n\r\nok');
            return;
          }
          if (closes++ % 2 === 0) socket.end();
          else socket.resetAndDestroy();
        });
      });
      t.teardown(() => app.close());
      const { port } = await through(t, topology, () => app.port);
      const c = new RawClient(port);
      t.teardown(() => c.close());
      for (let i = 0; i < 6; i++) {
        c.write(`GET /${i} HTTP/1.1\r\nHost: app\r\n\r\n`);
        const [r] = await c.read(['GET']);
        t.equal(r?.status, 200, `request ${i} succeeds`);
        t.equal(header(r!, 'meshlet-error'), undefined);
      }
      // The retry's fresh connection is pooled like any other, so every request after the
      // first meets the app's close once: five closes, each followed by a successful retry.
      t.equal(closes, 5, 'the app closed a kept-alive connection under a request 5 times, and each time the request was sent again');
    });

    t.test('keep-alive race with a real server: keepAliveTimeout 1 ms, sequential bodiless requests all succeed', async (t) => {
      const app = await h1App((req, res) => {
        req.resume();
        res.end(req.url);
      }, { server: { keepAliveTimeout: 1 } });
      t.teardown(() => app.close());
      const { port } = await through(t, topology, () => app.port);
      const c = new RawClient(port);
      t.teardown(() => c.close());
      const statuses: number[] = [];
      for (let i = 0; i < 50; i++) {
        c.write(`GET /${i} HTTP/1.1\r\nHost: app\r\n\r\n`);
        const [r] = await c.read(['GET']);
        statuses.push(r!.status);
        // Sometimes right away, sometimes a little later: both sides of the server's close.
        if (i % 3 === 0) await new Promise((r) => setTimeout(r, 2));
      }
      t.same(statuses, Array(50).fill(200), 'every request succeeded');
    });

    t.test('a request with a body is not sent twice: the close under it is an upstream_reset', async (t) => {
      let bodies = 0;
      const app = await tcpApp((socket) => {
        let requests = 0;
        socket.on('data', (d: Buffer) => {
          if (!d.includes('\r\n\r\n')) return;
          if (d.includes('POST')) bodies++;
          if (++requests === 1) socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
          else socket.resetAndDestroy();
        });
      });
      t.teardown(() => app.close());
      const { port } = await through(t, topology, () => app.port);
      const c = new RawClient(port);
      t.teardown(() => c.close());
      c.write('GET /first HTTP/1.1\r\nHost: app\r\n\r\n');
      t.equal((await c.read(['GET']))[0]?.status, 200);
      c.write('POST /second HTTP/1.1\r\nHost: app\r\nContent-Length: 4\r\n\r\nbody');
      const [r] = await c.read(['POST']);
      t.equal(r?.status, 503);
      t.equal(header(r!, 'meshlet-error'), 'upstream_reset');
      t.equal(bodies, 1, 'the app saw the POST once');
    });

    t.test('an app that was not listening and then is: the same sidecar serves it at once', async (t) => {
      const appPort = await closedPort();
      const { port } = await through(t, topology, () => appPort);
      const down = await get(port);
      t.same([down.status, down.headers['meshlet-error']], [503, 'upstream_connect_failure']);
      const app = await h1App((req, res) => res.end('healthy'), { port: appPort });
      t.teardown(() => app.close());
      const up = await get(port);
      t.same([up.status, up.body], [200, 'healthy']);
    });
  });
}

t.test('meshlet/h2 to a peer that is not who mesh.peers expects → 503 upstream_connect_failure, gRPC 14', async (t) => {
  const app = await h1App((_req, res) => res.end('never'));
  t.teardown(() => app.close());
  const { port } = await through(t, 'mesh', () => app.port, {}, { spiffeId: 'spiffe://cluster.local/ns/b/sa/someone-else' });
  const r = await get(port, '/who');
  t.equal(r.status, 503);
  t.equal(r.headers['meshlet-error'], 'upstream_connect_failure', 'a failed mTLS handshake is a connect failure, not the proxy failing');
  const g = await h2Request(h2Session(t, port), { ':method': 'POST', ':path': '/svc/Call', 'content-type': 'application/grpc', te: 'trailers' }, Buffer.alloc(5));
  t.equal(g.headers['grpc-status'], '14');
  t.equal(g.headers['meshlet-error'], 'upstream_connect_failure');
  t.equal(app.requests.length, 0, 'nothing reached the app');
});

t.test("the access log's request line for an answer the proxy made itself: connect refused and connect timeout carry the status and flag UF", async (t) => {
  const requestLines = async (lines: Array<Record<string, unknown>>, n: number) => {
    // The line is written as the response ends, which may be a turn after the client saw it.
    for (let i = 0; i < 100 && lines.filter((l) => l.msg === 'request').length < n; i++) await new Promise((r) => setTimeout(r, 20));
    return lines.filter((l) => l.msg === 'request');
  };
  const nobody = await closedPort();
  const refused = await through(t, 'one', () => nobody, { MESHLET_ACCESS_LOG_ENABLED: 'true' });
  t.equal((await get(refused.port, '/refused')).status, 503);
  t.match(await requestLines(refused.outbound.lines, 1), [{ path: '/refused', response_code: 503, response_flags: 'UF', meshlet_error: 'upstream_connect_failure' }], 'connect refused');

  const silent = await tcpApp(() => {}); // accepts and never speaks HTTP/2: the session never comes up
  t.teardown(() => silent.close());
  const timedOut = await through(t, 'one', () => silent.port, { MESHLET_ACCESS_LOG_ENABLED: 'true', MESHLET_OUTBOUND_CONNECT_TIMEOUT: '300ms' });
  const r = await h2Request(h2Session(t, timedOut.port), { ':path': '/timeout' });
  t.equal(r.status, 503);
  t.match(await requestLines(timedOut.outbound.lines, 1), [{ path: '/timeout', response_code: 503, response_flags: 'UF', meshlet_error: 'upstream_connect_failure', error: /within 300 ms/ }], 'connect timeout');
});
