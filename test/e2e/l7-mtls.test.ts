import t from 'tap';
import { scrape } from '../../src/testbed/metrics.ts';
import { testbedUnavailable } from '../../src/testbed/netns.ts';
import {
  checkClients,
  curl,
  meshedPair,
  PORT,
  type Setup,
} from './l7-common.ts';

// L7 proxying through a sidecar PAIR: a and b both run meshlet with identities from
// `meshlet ca`; a's mesh.peers covers b, and b's inbound is strict, so nothing reaches b's
// apps except over meshlet mTLS. HTTP/1.1 and HTTP/2 travel between the sidecars on one
// pooled HTTP/2 connection (ALPN meshlet/h2; counted from the wire in l7-reuse.test.ts),
// WebSocket and opaque TCP on meshlet/tcp connections. The same client set as through one
// sidecar (l7.test.ts), plus: the headers the sidecars use between themselves (meshlet-*)
// reach neither the app nor the client, and header-name case survives the h2 hop.

const skip = testbedUnavailable();
if (skip) {
  t.plan(0, skip);
  process.exit(0);
}

t.test('L7 through a sidecar pair over mTLS: a (meshlet) → b (meshlet, strict)', async (t) => {
  const { a, b, idA, proxyA, proxyB, apps, dir } = await meshedPair(t, {
    a: { MESHLET_WORKLOAD_NAME: 'client-a', MESHLET_WORKLOAD_NAMESPACE: 'ns-a', MESHLET_LOG_LEVEL: 'debug' },
    b: { MESHLET_WORKLOAD_NAME: 'server-b', MESHLET_WORKLOAD_NAMESPACE: 'ns-b', MESHLET_LOG_LEVEL: 'debug' },
  });
  const s: Setup = { client: a, server: b, apps, dir };

  await t.test('the pair is in use: b (strict) lets in only mTLS, and a request gets through', async (t) => {
    const before = await scrape(b);
    const r = await curl(a, dir, [`http://${b.ipv4}:${PORT.h1}/first`]);
    t.equal(r.status, 200, r.stderr);
    const after = await scrape(b);
    const refused = (sc: typeof before) => sc.value('meshlet_proxy_connections_refused_total', { reporter: 'destination' });
    t.equal(refused(after) - refused(before), 0, 'b refused nothing');
  });

  await t.test('each sidecar learns the other workload from meshlet-peer-metadata', async (t) => {
    const r = await curl(a, dir, [`http://${b.ipv4}:${PORT.h1}/metadata`]);
    t.equal(r.status, 200, r.stderr);
    // Each sidecar wrote its line before the response left it, but this process reads their
    // output through pipes: wait until both lines have come through.
    await proxyB.waitForLine(/"direction":"inbound".*"path":"\/metadata"/);
    await proxyA.waitForLine(/"direction":"outbound".*"path":"\/metadata"/);
    const requestLines = (proc: typeof proxyA) =>
      proc
        .output()
        .stdout.split('\n')
        .filter((l) => l.includes('"msg":"request"') && l.includes('/metadata'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    const inbound = requestLines(proxyB).find((l) => l.direction === 'inbound');
    t.equal(inbound?.peer_workload, 'ns-a/client-a', "b's sidecar labels the request with a's workload");
    t.equal(inbound?.peer_principal, idA.spiffeId, "and with a's verified SPIFFE ID");
    t.equal(inbound?.protocol, 'HTTP/1.1', 'b learnt that the app spoke HTTP/1.1');
    const outbound = requestLines(proxyA).find((l) => l.direction === 'outbound');
    t.equal(outbound?.peer_workload, 'ns-b/server-b', "a's sidecar labels the request with b's workload (from the response)");
  });

  await checkClients(t, s, [proxyA, proxyB]);
});
