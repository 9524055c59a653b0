import t from 'tap';
import { Testbed, testbedUnavailable } from '../../src/testbed/netns.ts';
import {
  checkConnectFailure,
  checkGrpc,
  checkHttp1,
  checkHttp2,
  checkServerFirst,
  checkStillUp,
  checkWebSocket,
  scratch,
  startServerApps,
  tail,
  type Setup,
} from './l7-common.ts';

// L7 proxying through ONE sidecar: pod a runs meshlet init + meshlet proxy (no identity,
// so no mTLS); pod b runs the apps and nothing else. Real clients in a (curl, nghttp,
// h2load, @grpc/grpc-js, ws) talk to real servers in b; a's outbound listener detects the
// protocol and proxies HTTP/1.1, h2c, gRPC and WebSocket. What the server app reports
// (rawHeaders) and what the clients print are the evidence. The same checks run through a
// sidecar pair in l7-mtls.test.ts.

const skip = testbedUnavailable();
if (skip) {
  t.plan(0, skip);
  process.exit(0);
}

t.test('L7 through one sidecar: a (meshlet) → b (no sidecar)', async (t) => {
  const tmp = scratch();
  t.teardown(tmp.remove);
  const tb = await Testbed.create(['a', 'b']);
  t.teardown(() => tb.destroy());
  const [a, b] = [tb.pod('a'), tb.pod('b')];

  const init = await a.init();
  t.equal(init.code, 0, `init in a: ${init.stderr}`);
  const proxy = await a.startProxy();
  const apps = await startServerApps(b);
  const s: Setup = { client: a, server: b, apps, dir: tmp.dir };
  t.teardown(() => {
    if (!t.passing()) t.comment(`a's proxy, last lines:\n${tail(proxy)}`);
  });

  await t.test('HTTP/1.1 (curl)', (t) => checkHttp1(t, s));
  await t.test('HTTP/2 prior knowledge (curl, nghttp, h2load)', (t) => checkHttp2(t, s));
  await t.test('gRPC: unary, server and client streaming, error status, deadline, cancel', (t) => checkGrpc(t, s));
  await t.test('WebSocket echo', (t) => checkWebSocket(t, s));
  await t.test('nothing listening: 503 upstream_connect_failure from the proxy; gRPC UNAVAILABLE', (t) => checkConnectFailure(t, s));
  await t.test('server-first protocol, opaque port 3306 and detected port 3307', (t) => checkServerFirst(t, s));
  await t.test('the proxy still serves after the bad cases', (t) => checkStillUp(t, s, [proxy]));
});
