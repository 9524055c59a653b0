import t from 'tap';
import { h2App, h2Request, h2Session } from '../../helpers/http.ts';
import { through } from '../../helpers/http-sidecars.ts';
import { until } from '../proxy/mtls-harness.ts';

// HTTP/2 load across a sidecar pair while the inbound sidecar goes through both GOAWAY
// waves of a drain (every session at the start, the sessions opened since at the end of
// the delay). Streams in flight when a GOAWAY crosses them are either finished by the
// inbound sidecar or refused and sent again by the outbound one: none fails.

t.test('h2 load across the drain: no stream fails', async (t) => {
  const app = await h2App((stream) => {
    stream.respond({ ':status': 200 });
    stream.end('ok');
  });
  t.teardown(() => app.close());
  const path = await through(t, 'mesh', () => app.port);
  const session = h2Session(t, path.port);
  const results: Array<{ status: number; end: string; phase: string; cause: string }> = [];
  let phase = 'before';
  let stop = false;
  const loop = async () => {
    while (!stop) {
      const p = phase;
      const r = await h2Request(session, {});
      results.push({ status: r.status, end: r.end, phase: p, cause: String(r.headers['meshlet-error'] ?? '') });
    }
  };
  const loops = Array.from({ length: 32 }, loop);
  // Each phase lasts until 200 requests started in it have finished: no clock involved.
  const served = (p: string) => () => results.filter((r) => r.phase === p).length >= 200;
  await until(served('before'), 'requests before the drain');
  const servers = path.inbound!.parts.servers.inbound;
  phase = 'draining';
  for (const s of servers) s.drain();
  await until(served('draining'), 'requests during the delay');
  phase = 'after the delay';
  for (const s of servers) s.closeIdle();
  await until(served('after the delay'), 'requests after it');
  stop = true;
  await Promise.all(loops);
  for (const p of ['before', 'draining', 'after the delay']) t.ok(results.some((r) => r.phase === p && r.status === 200), `requests served ${p}`);
  t.same(results.filter((r) => r.status !== 200 || r.end !== 'end'), [], `none of ${results.length} failed`);
});
