import { spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import t, { type Test } from 'tap';
import { waitUntilReady } from '../../../src/admin/wait.ts';
import { MESHLET_BIN } from '../../../src/testbed/netns.ts';

// `meshlet wait` against a real HTTP server standing in for the health port: it exits 0
// once /healthz/ready answers 200, 1 with the last answer when the time is up, and 2 on
// a usage error, in the style of the other subcommands.

async function healthServer(t: Test, ready: () => boolean): Promise<number> {
  const server = http.createServer((req, res) => {
    if (req.url !== '/healthz/ready') return void res.writeHead(404).end();
    const ok = ready();
    res.writeHead(ok ? 200 : 503).end(ok ? 'ready\n' : 'not ready: not draining\n');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  return (server.address() as net.AddressInfo).port;
}

function meshletWait(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([n]) => !n.startsWith('MESHLET_')));
  const child = spawn(process.execPath, [MESHLET_BIN, 'wait', ...args], { env: { ...clean, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

t.test('waitUntilReady: not ready, then ready: resolves ready after the probes that failed', async (t) => {
  let probes = 0;
  const port = await healthServer(t, () => ++probes >= 3);
  const result = await waitUntilReady({ host: '127.0.0.1', port, timeoutMs: 10_000, intervalMs: 10 });
  t.equal(result.ready, true);
  t.equal(probes, 3, 'asked until the third answer was 200');
});

t.test('waitUntilReady: never ready: the last answer is given', async (t) => {
  const port = await healthServer(t, () => false);
  t.same(await waitUntilReady({ host: '127.0.0.1', port, timeoutMs: 50, intervalMs: 10 }), { ready: false, last: '503 not ready: not draining' });
});

t.test('meshlet wait: exit 0 once ready, the port also from MESHLET_HEALTH_PORT', async (t) => {
  let probes = 0;
  const port = await healthServer(t, () => ++probes >= 2);
  const r = await meshletWait(['--timeout', '20s', '--port', String(port)]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^meshlet wait: the proxy is ready \(after \d+(ms|s)\)\n$/);
  const fromEnv = await meshletWait(['--timeout', '20s'], { MESHLET_HEALTH_PORT: String(port) });
  t.equal(fromEnv.code, 0, fromEnv.stderr);
});

t.test('meshlet wait: not ready in time: exit 1, one line with the code and the last answer', async (t) => {
  const port = await healthServer(t, () => false);
  const r = await meshletWait(['--timeout', '300ms', '--port', String(port)]);
  t.equal(r.code, 1);
  t.equal(r.stdout, '');
  t.match(r.stderr, new RegExp(`^meshlet wait: MESHLET_ERR_NOT_READY: the proxy on 127\\.0\\.0\\.1:${port} was not ready within 300ms; last answer: 503 not ready: not draining\\n$`));
});

t.test('meshlet wait: nothing listening: exit 1 saying so', async (t) => {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((r) => server.close(r));
  const r = await meshletWait(['--timeout', '200ms', '--port', String(port)]);
  t.equal(r.code, 1);
  t.match(r.stderr, /last answer: nothing listens on 127\.0\.0\.1:\d+ \(ECONNREFUSED\)\n$/);
});

t.test('meshlet wait: usage errors exit 2 in the common style', async (t) => {
  const cases: Array<[string[], NodeJS.ProcessEnv, RegExp]> = [
    [['--timeout', 'soon'], {}, /--timeout soon is not a duration/],
    [['--timeout', '0s'], {}, /--timeout 0s: the timeout must be positive/],
    [['--port', '70000'], {}, /--port: '70000' is not a port number/],
    [[], { MESHLET_HEALTH_PORT: 'x' }, /MESHLET_HEALTH_PORT: 'x' is not a port number/],
    [['--tiemout', '1s'], {}, /unknown flag '--tiemout'; did you mean --timeout\?/],
  ];
  for (const [args, env, what] of cases) {
    const r = await meshletWait(args, env);
    t.equal(r.code, 2, args.join(' '));
    t.match(r.stderr, /^meshlet wait: MESHLET_ERR_USAGE: .* \(see meshlet wait --help\)\n$/);
    t.match(r.stderr, what);
  }
});
