import t from 'tap';
import { Testbed, testbedUnavailable } from '../../src/testbed/netns.ts';
import {
  checkClients,
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

  await checkClients(t, s, [proxy]);
});
