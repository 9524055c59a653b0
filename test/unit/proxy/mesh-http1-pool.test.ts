import http from 'node:http';
import net from 'node:net';
import t from 'tap';
import { through } from '../../helpers/http-sidecars.ts';
import { RawClient } from '../../helpers/http.ts';

// HTTP/1.1 between sidecars (meshlet/http1): pooled mTLS connections, no more of them than
// requests in flight, and a new one resumes the TLS session of an earlier one instead of
// paying a full handshake.

t.test('meshlet/http1: connections reused, never more than the requests in flight, and new ones resume a TLS session', async (t) => {
  let inFlight = 0;
  let peak = 0;
  // The three sent together are each held until all three are at the app (a timer of
  // 100 ms was not enough on a loaded CI machine, where a new mTLS connection took 460 ms):
  // if they never are together, the 5 s fallback answers them and the peak says so.
  const held: (() => void)[] = [];
  const app = http.createServer((req, res) => {
    peak = Math.max(peak, ++inFlight);
    req.resume();
    const answer = () => {
      inFlight--;
      res.end(`saw ${req.url}`);
    };
    if (req.url?.startsWith('/one-')) return answer();
    held.push(answer);
    if (held.length === 3) for (const release of held.splice(0)) release();
    else
      setTimeout(() => {
        const at = held.indexOf(answer);
        if (at !== -1) held.splice(at, 1)[0]!();
      }, 5000).unref();
  });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => app.close());
  const { port, outbound } = await through(t, 'mesh', () => (app.address() as net.AddressInfo).port);

  const get = async (path: string) => {
    const c = new RawClient(port);
    try {
      c.write(`GET ${path} HTTP/1.1\r\nHost: app\r\n\r\n`);
      const [r] = await c.read(['GET']);
      return r!;
    } finally {
      c.close();
    }
  };
  // One at a time: one connection between the sidecars carries them all.
  for (let i = 0; i < 3; i++) t.equal((await get(`/one-${i}`)).body.toString(), `saw /one-${i}`);
  // Three at once: the pooled connection plus two new ones, which can resume its session.
  const together = await Promise.all([get('/a'), get('/b'), get('/c')]);
  t.same(together.map((r) => r.status), [200, 200, 200]);
  t.equal(peak, 3, 'the three were in flight together at the app');

  const connections = outbound.lines.filter((l) => l.msg === 'pooled mTLS connection to a peer sidecar' && l.alpn === 'meshlet/http1');
  t.equal(connections.length, 3, `three connections between the sidecars for six requests, three at most at once: ${JSON.stringify(connections)}`);
  t.equal(connections[0]?.resumed, false, 'the first one paid a full handshake');
  t.same(connections.slice(1).map((l) => l.resumed), [true, true], 'the later ones resumed its TLS session');
});

t.test('mesh headers in an app response are dropped, never read as the peer workload', async (t) => {
  const forged = Buffer.from(JSON.stringify({ name: 'forged', namespace: 'evil', app: 'x', version: 'y' })).toString('base64url');
  const app = http.createServer((req, res) => {
    req.resume();
    res.setHeader('meshlet-peer-metadata', forged);
    res.setHeader('Meshlet-Protocol', 'h2');
    res.end('ok');
  });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => app.close());
  const { port, outbound } = await through(t, 'mesh', () => (app.address() as net.AddressInfo).port, {
    MESHLET_ACCESS_LOG_ENABLED: 'true',
    MESHLET_WORKLOAD_NAME: 'server-b',
    MESHLET_WORKLOAD_NAMESPACE: 'ns-b',
  });
  const c = new RawClient(port);
  t.teardown(() => c.close());
  c.write('GET /forge HTTP/1.1\r\nHost: app\r\n\r\n');
  const [r] = await c.read(['GET']);
  t.equal(r!.status, 200);
  t.equal(r!.body.toString(), 'ok');
  t.same(r!.headers.filter(([n]) => n.toLowerCase().startsWith('meshlet-')), [], 'no meshlet-* header reaches the client');
  const line = outbound.lines.find((l) => l.msg === 'request' && l.path === '/forge');
  t.equal(line?.peer_workload, 'ns-b/server-b', "the outbound side labels the response with the inbound sidecar's workload, not the app's forgery");
});
