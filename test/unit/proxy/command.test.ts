import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { MESHLET_BIN } from '../../../src/testbed/netns.ts';
import { proxyPorts, type ProxyPorts } from '../../helpers/ports.ts';

// `meshlet proxy` as a process: starts with no config file, reports ready, serves
// health and metrics, refuses bad configuration with the field named.

function start(env: NodeJS.ProcessEnv, args: string[] = []) {
  const child = spawn(process.execPath, [MESHLET_BIN, 'proxy', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  const ready = new Promise<Record<string, unknown>>((resolve, reject) => {
    child.stdout.on('data', () => {
      const line = stdout.split('\n').find((l) => l.includes('"msg":"ready"'));
      if (line) resolve(JSON.parse(line) as Record<string, unknown>);
    });
    exited.then((code) => reject(new Error(`exited ${code}: ${stderr}`)));
  });
  ready.catch(() => {}); // tests that expect a failed start look at `exited` instead
  return { child, ready, exited, output: () => ({ stdout, stderr }) };
}

/** The listeners' ports as a config file's lines. */
const portsYaml = (ports: ProxyPorts) =>
  `outbound:\n  port: ${ports.MESHLET_OUTBOUND_PORT}\ninbound:\n  port: ${ports.MESHLET_INBOUND_PORT}\nhealth:\n  port: ${ports.MESHLET_HEALTH_PORT}\nadmin:\n  port: ${ports.MESHLET_ADMIN_PORT}\n`;

t.test('starts with no config file, serves health and metrics, drains and exits by itself on SIGTERM', async (t) => {
  const proxy = start({ ...(await proxyPorts()), MESHLET_CONFIG: '', MESHLET_DRAIN_DELAY: '100ms' });
  const ready = await proxy.ready;
  t.equal(ready.level, 'info', 'logs are JSON');
  const base = `http://127.0.0.1:${ready.health as number}`;
  t.equal((await fetch(`${base}/healthz/ready`)).status, 200);
  t.equal((await fetch(`${base}/healthz/live`)).status, 200);
  const metrics = await (await fetch(`${base}/stats/prometheus`)).text();
  t.match(metrics, /# TYPE meshlet_tcp_connections_opened_total counter/);
  t.match(metrics, /process_resident_memory_bytes/);
  t.equal(await (await fetch(`${base}/metrics`)).text().then((m) => m.includes('meshlet_tcp_connections_opened_total')), true, '/metrics is an alias');
  t.equal((await fetch(`${base}/nope`)).status, 404);
  proxy.child.kill('SIGTERM');
  t.equal(await proxy.exited, 0);
  t.match(proxy.output().stdout, /"msg":"draining".*\n.*"how":"drained"/s, 'drained, with nothing open, and stopped');
});

t.test('a config file is read and a typo in it is named', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'meshlet-proxy-'));
  const file = path.join(dir, 'meshlet.yaml');
  writeFileSync(file, `${portsYaml(await proxyPorts())}log:\n  level: warn\n  formatt: json\n`);
  const proxy = start({}, ['--config', file]);
  t.equal(await proxy.exited, 2);
  t.match(proxy.output().stderr, /log\.formatt: unknown field \(in .*meshlet\.yaml, line 11\)/);
});

t.test('a bad environment override names the variable and the field', async (t) => {
  const proxy = start({ ...(await proxyPorts()), MESHLET_TCP_IDLE_TIMEOUT: 'forever' });
  t.equal(await proxy.exited, 2);
  t.match(proxy.output().stderr, /tcp\.idleTimeout: "forever" is not a duration .*MESHLET_TCP_IDLE_TIMEOUT/);
});

t.test('an unknown flag is a usage error', async (t) => {
  const proxy = start(await proxyPorts(), ['--confg', 'x']);
  t.equal(await proxy.exited, 2);
  t.match(proxy.output().stderr, /confg/);
});

t.test('a port already in use fails start-up with the reason', async (t) => {
  const first = start(await proxyPorts());
  const ready = await first.ready;
  const second = start({ ...(await proxyPorts()), MESHLET_HEALTH_PORT: String(ready.health) });
  t.equal(await second.exited, 1);
  t.match(second.output().stdout, /EADDRINUSE/);
  first.child.kill('SIGTERM');
  await first.exited;
});

t.test('SIGHUP and file changes reload the config; an invalid file is refused and the proxy stays up', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'meshlet-proxy-'));
  const file = path.join(dir, 'meshlet.yaml');
  const ports = portsYaml(await proxyPorts());
  writeFileSync(file, `${ports}resilience:\n  defaults:\n    timeout: 1s\n`);
  const proxy = start({}, ['--config', file]);
  const ready = await proxy.ready;
  t.teardown(() => proxy.child.kill('SIGKILL'));
  const seen = async (pattern: RegExp) => {
    for (let i = 0; i < 100 && !pattern.test(proxy.output().stdout); i++) await new Promise((r) => setTimeout(r, 50));
    return pattern.test(proxy.output().stdout);
  };
  writeFileSync(file, `${ports}resilience:\n  defaults:\n    timeout: 2s\n`);
  t.ok(await seen(/"trigger":"file change","msg":"config reloaded"/), 'a file change reloads');
  writeFileSync(file, `${ports}resilience:\n  defaults:\n    timeout: soon\n`);
  t.ok(await seen(/resilience\.defaults\.timeout: \\"soon\\" is not a duration.*"msg":"config reload refused; the configuration in force stays"/), 'an invalid file is refused with the field named');
  writeFileSync(file, `${ports}resilience:\n  defaults:\n    timeout: 3s\ntcp:\n  idleTimeout: 5m\n`);
  t.ok(await seen(/"sections":\["tcp"\],"msg":"config reload: these sections changed and apply only after a restart"/), 'what a reload cannot apply is said');
  proxy.child.kill('SIGHUP');
  t.ok(await seen(/"trigger":"SIGHUP","msg":"config reloaded"/), 'SIGHUP reloads');
  t.equal((await fetch(`http://127.0.0.1:${ready.health as number}/healthz/ready`)).status, 200, 'still up and ready');
  proxy.child.kill('SIGTERM');
  t.equal(await proxy.exited, 0);
});

t.test('the proxy restarts itself with a small young generation and serves the configuration the first process validated', async (t) => {
  const cmdline = async (env: NodeJS.ProcessEnv) => {
    const proxy = start({ ...(await proxyPorts()), MESHLET_CONFIG: '', ...env });
    const ready = await proxy.ready;
    t.teardown(() => proxy.child.kill('SIGKILL'));
    t.equal(ready.pid, proxy.child.pid, 'execve keeps the PID');
    const { readFileSync } = await import('node:fs');
    return { proxy, ready, argv: readFileSync(`/proc/${proxy.child.pid}/cmdline`, 'utf8').split('\0') };
  };
  t.ok((await cmdline({ MESHLET_PROXY_SEMI_SPACE_SIZE: '6' })).argv.includes('--max-semi-space-size=6'), 'proxy.semiSpaceSize sets the flag');
  const { ready, argv } = await cmdline({ MESHLET_DRAIN_DELAY: '250ms', MESHLET_TCP_IDLE_TIMEOUT: '7m' });
  t.ok(argv.includes('--max-semi-space-size=2'), 'restarted with the heap flag, 2 MiB by default');
  const dump = (await (await fetch(`http://127.0.0.1:${ready.admin as number}/config_dump`)).json()) as { drain: { delay: number }; tcp: { idleTimeout: number } };
  t.equal(dump.drain.delay, 250, 'the environment overrides validated before the restart are in force');
  t.equal(dump.tcp.idleTimeout, 7 * 60_000);
});
