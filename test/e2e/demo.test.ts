import { spawn } from 'node:child_process';
import t from 'tap';
import { run } from '../../src/testbed/exec.ts';
import { MESHLET_BIN, testbedUnavailable } from '../../src/testbed/netns.ts';

// `meshlet demo` end to end: the real binary, real namespaces, rules, sidecars and curl.

const unavailable = testbedUnavailable();
const isRoot = process.getuid?.() === 0;

// tap's process tracker adds itself to NODE_OPTIONS of every child it sees spawned (it
// wraps child_process); a child running as another user cannot write its records and
// prints an EACCES stack on exit. `env -u` drops it after tap's wrapper has run.
const DEMO = ['env', '-u', 'NODE_OPTIONS', process.execPath, MESHLET_BIN, 'demo'];

async function namespacesOf(id: string): Promise<string[]> {
  const { stdout } = await run(['ip', 'netns', 'list']);
  return stdout.split('\n').map((l) => l.split(' ')[0] ?? '').filter((ns) => ns.startsWith(`ml${id}-`));
}

/** The testbed id the demo printed in its "pods" line. */
function testbedId(stdout: string): string | undefined {
  return /network namespaces ml([0-9a-f]+)-\*/.exec(stdout)?.[1];
}

t.test('as root: every request is traced through both sidecars, and everything is removed', { skip: unavailable ?? false }, async (t) => {
  const result = await run(DEMO, { timeoutMs: 120_000 });
  t.equal(result.code, 0, `exits 0 (stderr: ${result.stderr.trim()})`);
  t.equal(result.stderr, '', 'nothing on stderr');
  const out = result.stdout;
  const lines = out.split('\n');
  t.notMatch(out, /"level"|"msg"/, 'no JSON log lines from the proxies');
  t.ok(lines.filter((l) => l.trim() !== '').length <= 16, `short output (${lines.length} lines)`);

  t.match(
    out,
    /^rules {5}meshlet init in a and b \(ip6?tables-(nft|legacy)\): inbound → :15006, outbound → :15001 \(IPv4 and IPv6\)$/m,
    'meshlet init installed rules that send inbound TCP to 15006 and outbound to 15001, for both families',
  );

  const targets = [
    { url: 'http://10.44.0.3:8080/hello', a: '10\\.44\\.0\\.2', b: '10\\.44\\.0\\.3' },
    { url: 'http://[fd00:2c::3]:8080/hello', a: '\\[fd00:2c::2\\]', b: '\\[fd00:2c::3\\]' },
  ];
  for (const { url, a, b } of targets) {
    const index = lines.findIndex((l) => l.startsWith(`GET ${url} → 200 in `));
    t.not(index, -1, `${url} answered 200`);
    const path = lines[index + 1] ?? '';
    const hops = new RegExp(
      `^  a app ${a}:(\\d+) → a meshlet outbound :15001 \\(original dst ${b}:8080\\) → ` +
        `b meshlet inbound :15006 \\(from ${a}:(\\d+)\\) → b app \\(saw source ${b}:(\\d+), b itself, i\\.e\\. b's sidecar\\)$`,
    ).exec(path);
    t.ok(hops, `${url}: outbound hop in a, inbound hop in b, answered by b's app via b's sidecar; got: ${path}`);
    if (hops) {
      // app → a's sidecar, a's sidecar → b's sidecar, b's sidecar → app: three connections.
      const ports = new Set(hops.slice(1, 4));
      t.equal(ports.size, 3, `three distinct connections (ports ${hops.slice(1, 4).join(', ')})`);
    }
  }

  const loopback = lines.findIndex((l) => l.startsWith('GET http://127.0.0.1:8080/hello (loopback, inside a) → 200 in '));
  t.not(loopback, -1, 'the loopback request inside a answered 200');
  const loopbackPath = lines[loopback + 1] ?? '';
  t.match(loopbackPath, /^ {2}a app 127\.0\.0\.1:(\d+) → a app \(saw source 127\.0\.0\.1:\1, the client itself\) — not intercepted/, 'loopback went straight to the app');
  t.notMatch(loopbackPath, /meshlet/, 'no sidecar hop on the loopback path');

  t.match(out, /a's sidecar 2 with reporter="source", b's 2 with reporter="destination"/, 'the metrics count exactly the two mesh requests');

  const id = testbedId(out);
  t.ok(id, 'the demo names its namespaces');
  t.match(out, /\ncleaned up: /, 'says it cleaned up');
  if (id) t.same(await namespacesOf(id), [], 'no namespace of the demo is left');
});

t.test('interrupted with SIGINT: exits 130 and removes the pods', { skip: unavailable ?? false }, async (t) => {
  const child = spawn(DEMO[0]!, DEMO.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  // Interrupt once the sidecars are up: pods, rules and processes all exist by then.
  const deadline = Date.now() + 60_000;
  while (!/^sidecars /m.test(stdout) && child.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  t.match(stdout, /^sidecars /m, 'the demo got as far as starting the sidecars');
  child.kill('SIGINT');
  t.equal(await exited, 130, 'exits 130');
  t.match(stderr, /^meshlet demo: interrupted by SIGINT; removing the pods\n$/, 'says so in one line');
  const id = testbedId(stdout);
  t.ok(id, 'the demo named its namespaces');
  if (id) t.same(await namespacesOf(id), [], 'no namespace of the demo is left');
});

t.test('as a non-root user: one line saying what is missing, non-zero exit', async (t) => {
  // Drop to uid 1000 when root; a non-root runner is already the case under test.
  const drop = isRoot ? ['setpriv', '--reuid=1000', '--regid=1000', '--clear-groups', '--'] : [];
  const result = await run([...drop, ...DEMO], { timeoutMs: 60_000 });
  t.not(result.code, 0, 'exits non-zero');
  t.not(result.code, null, 'exits by itself, not by a signal');
  t.equal(result.stdout, '', 'nothing on stdout');
  t.match(result.stderr, /^meshlet demo needs root[ ,][^\n]*\n$/, `exactly one line naming root; got: ${result.stderr}`);
  t.match(result.stderr, /sudo npm run demo/, 'says how to run it');
});

t.test('as root without the tools on PATH: one line naming each of them', { skip: isRoot ? false : 'needs root (as non-root, root is what is missing)' }, async (t) => {
  const result = await run(['/usr/bin/env', '-u', 'NODE_OPTIONS', 'PATH=/nonexistent', ...DEMO.slice(3)], { timeoutMs: 60_000 });
  t.equal(result.code, 1, 'exits 1');
  t.equal(result.stdout, '', 'nothing on stdout');
  t.equal(
    result.stderr,
    'meshlet demo needs ip, iptables, ip6tables, setpriv, curl (it builds network namespaces with iptables rules): ' +
      'apt-get install iproute2 iptables util-linux curl\n',
  );
});
