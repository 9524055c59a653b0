import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import t from 'tap';
import { MESHLET_BIN } from '../../../src/testbed/netns.ts';
import { proxyPorts } from '../../helpers/ports.ts';
import { caOk, tempDir } from '../tls/ca-helpers.ts';

// A proxy that cannot start exits at once, non-zero, with the reason in its last lines,
// and leaves nothing bound behind: in Kubernetes a CrashLoopBackOff that says why, not a
// pod that stays NotReady for good.

/** Holds `port` (0: any) on `host` until released; resolves with the port. */
async function hold(host: string, port = 0) {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, ipv6Only: host === '::' ? false : undefined }, resolve);
  });
  return { port: (server.address() as net.AddressInfo).port, release: () => new Promise((resolve) => server.close(resolve)) };
}

/** Whether `port` can be bound dual-stack right now, as the proxy binds it. */
async function isFree(port: number): Promise<boolean> {
  try {
    await (await hold('::', port)).release();
    return true;
  } catch {
    return false;
  }
}

async function run(env: NodeJS.ProcessEnv) {
  // Not root, the proxy cannot read the interception rules and checks its uid against proxy.uid: ours.
  const self = { MESHLET_CONFIG: '', MESHLET_PROXY_UID: String(process.geteuid?.() ?? 0) };
  const child = spawn(process.execPath, [MESHLET_BIN, 'proxy'], { env: { ...process.env, ...self, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  clearTimeout(timer);
  const last = (text: string) => text.trim().split('\n').at(-1) ?? '';
  return { code, lastOut: last(stdout), lastErr: last(stderr), stdout };
}

for (const [taken, field, host] of [
  ['outbound', 'MESHLET_OUTBOUND_PORT', '::'],
  ['inbound', 'MESHLET_INBOUND_PORT', '127.0.0.1'],
  ['health', 'MESHLET_HEALTH_PORT', '::'],
  ['admin', 'MESHLET_ADMIN_PORT', '127.0.0.1'],
] as const) {
  t.test(`the ${taken} port taken (on ${host}): exit 1 with the reason, the other ports free again`, async (t) => {
    const blocker = await hold(host);
    t.teardown(blocker.release);
    const ports = { ...(await proxyPorts()), [field]: String(blocker.port) };
    const r = await run(ports);
    t.equal(r.code, 1, 'exits 1, and at once (not killed by the timeout)');
    const what = taken === 'health' || taken === 'admin' ? `${taken} server` : `${taken} listener`;
    const reason = new RegExp(`MESHLET_ERR_LISTEN: ${what}: port ${blocker.port} is in use by another process \\(EADDRINUSE\\)`);
    t.match(r.lastErr, reason, 'the last line on stderr says why');
    t.match(JSON.parse(r.lastOut), { level: 'fatal', msg: 'cannot start', err: reason }, 'so does the last log line');
    t.notMatch(r.stdout, /"msg":"ready"/);
    for (const [name, port] of Object.entries(ports).filter(([name]) => name !== field)) {
      t.ok(await isFree(Number(port)), `${name}'s port ${port} is free again`);
    }
  });
}

t.test('an identity that does not load: exit 1 with the file and the reason, nothing left bound', async (t) => {
  const dir = tempDir();
  const ports = await proxyPorts();
  const r = await run({ ...ports, MESHLET_IDENTITY_DIR: path.join(dir, 'missing') });
  t.equal(r.code, 1);
  t.match(r.lastErr, /cannot start: MESHLET_ERR_IDENTITY: .*missing/);
  for (const port of Object.values(ports)) t.ok(await isFree(Number(port)), `port ${port} is free`);
});

t.test('with an identity loaded and watched, a taken port still ends the process at once', async (t) => {
  const dir = tempDir();
  await caOk(['init', '--out', path.join(dir, 'ca')]);
  await caOk(['issue', '--ca', path.join(dir, 'ca'), '--spiffe-id', 'spiffe://cluster.local/ns/shop/sa/cart', '--out', path.join(dir, 'id')]);
  const blocker = await hold('::');
  t.teardown(blocker.release);
  const ports = { ...(await proxyPorts()), MESHLET_INBOUND_PORT: String(blocker.port) };
  const r = await run({ ...ports, MESHLET_IDENTITY_DIR: path.join(dir, 'id') });
  t.equal(r.code, 1);
  t.match(r.lastErr, /inbound listener: port \d+ is in use/);
  t.ok(await isFree(Number(ports.MESHLET_OUTBOUND_PORT)), 'outbound port free');
  t.ok(await isFree(Number(ports.MESHLET_HEALTH_PORT)), 'health port free');
});
