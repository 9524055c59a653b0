import t from 'tap';
import { h2App, h2Request, h2Session } from '../../helpers/http.ts';
import { through } from '../../helpers/http-sidecars.ts';

// HTTP/2 load across a sidecar pair while the inbound sidecar goes through both GOAWAY
// waves of a drain (every session at the start, the sessions opened since at the end of
// the delay). Streams in flight when a GOAWAY crosses them are either finished by the
// inbound sidecar or refused and sent again by the outbound one: none fails.

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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
  await sleep(200);
  const servers = path.inbound!.parts.servers.inbound;
  phase = 'draining';
  for (const s of servers) s.drain();
  await sleep(300);
  phase = 'after the delay';
  for (const s of servers) s.closeIdle();
  await sleep(200);
  stop = true;
  await Promise.all(loops);
  for (const p of ['before', 'draining', 'after the delay']) t.ok(results.some((r) => r.phase === p && r.status === 200), `requests served ${p}`);
  t.same(results.filter((r) => r.status !== 200 || r.end !== 'end'), [], `none of ${results.length} failed`);
});
