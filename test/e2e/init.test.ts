import { existsSync } from 'node:fs';
import t from 'tap';
import { parseInitOptions } from '../../src/iptables/options.ts';
import { planInstall } from '../../src/iptables/plan.ts';
import { renderRestore } from '../../src/iptables/render.ts';
import { buildRuleSet, type Family } from '../../src/iptables/rules.ts';
import { normalizeSave } from '../../src/iptables/save-format.ts';
import { APP_UID, MESHLET_BIN, Testbed, testbedUnavailable, type Pod } from '../../src/testbed/netns.ts';

// `meshlet init` for real: real iptables (nft and legacy) in real network namespaces,
// run the way the init container runs it (as root), and as an unprivileged user.

type Backend = 'nft' | 'legacy';
const BACKENDS: Backend[] = ['nft', 'legacy'];
const tool = (backend: Backend, family: Family, suffix = '') => `${family === 6 ? 'ip6tables' : 'iptables'}-${backend}${suffix}`;

async function save(pod: Pod, backend: Backend, family: Family): Promise<string> {
  return (await pod.runOk([tool(backend, family, '-save')])).stdout;
}

/** Both families of one backend, normalised (counters, comments, empty tables). */
async function snapshot(pod: Pod, backend: Backend): Promise<{ v4: string; v6: string }> {
  return { v4: normalizeSave(await save(pod, backend, 4)), v6: normalizeSave(await save(pod, backend, 6)) };
}

/** Everything, both backends: "nothing changed" means all four are equal. */
async function everything(pod: Pod) {
  return { nft: await snapshot(pod, 'nft'), legacy: await snapshot(pod, 'legacy') };
}

/** Rules that are not meshlet's, as a CNI plugin might leave them. */
async function seed(pod: Pod, backend: Backend): Promise<void> {
  const input = (services: string) => `*nat
:CNI-HOSTPORT-DNAT - [0:0]
-A PREROUTING -p udp -m udp --dport 53 -j CNI-HOSTPORT-DNAT
-A OUTPUT -d ${services} -p tcp -j CNI-HOSTPORT-DNAT
-A CNI-HOSTPORT-DNAT -p tcp -m tcp --dport 8081 -j RETURN
COMMIT
*filter
-A INPUT -p tcp -m tcp --dport 9 -j DROP
COMMIT
`;
  // -w: the legacy xtables lock is shared by every namespace (other tests run in parallel).
  await pod.runOk([tool(backend, 4, '-restore'), '-w', '10', '--noflush'], { input: input('10.96.0.0/12') });
  await pod.runOk([tool(backend, 6, '-restore'), '-w', '10', '--noflush'], { input: input('fd00:96::/108') });
}

/** `meshlet init` in the pod as a given user (not root), with an optional PATH. */
function initAs(pod: Pod, args: string[], as: { uid?: number; path?: string; env?: NodeJS.ProcessEnv } = {}) {
  const command = [process.execPath, MESHLET_BIN, 'init', ...args];
  return pod.run(as.path === undefined ? command : ['env', `PATH=${as.path}`, ...command], {
    uid: as.uid,
    env: { ...process.env, ...as.env },
  });
}

/** The `-A` lines meshlet renders for a default install of `family`. */
function expectedRuleLines(family: Family): string[] {
  const text = renderRestore(planInstall(buildRuleSet(parseInitOptions([], {}), family), []));
  return text.split('\n').filter((l) => l.startsWith('-A '));
}

const meshletLines = (text: string) => text.split('\n').filter((l) => l.includes('MESHLET_'));

const unavailable = testbedUnavailable();
if (unavailable) {
  t.plan(0, unavailable);
} else {
  const tb = await Testbed.create(['nft', 'legacy', 'auto', 'dry', 'bad', 'busy', 'foreign']);
  t.teardown(() => tb.destroy());

  /** Why a backend cannot be tested here (its probe fails), or false. */
  const broken: Record<Backend, string | false> = { nft: false, legacy: false };
  for (const backend of BACKENDS) {
    const probe = await tb.pod(backend).run([tool(backend, 4), '-w', '10', '-t', 'nat', '-S']);
    broken[backend] = probe.code === 0 ? false : `${tool(backend, 4)} does not work here: ${probe.stderr.trim()}`;
  }

  for (const backend of BACKENDS) {
    t.test(`--backend ${backend}: install, idempotence, validate, cleanup`, { skip: broken[backend] }, async (t) => {
      const pod = tb.pod(backend);
      await seed(pod, backend);
      const before = await snapshot(pod, backend);
      const other = await snapshot(pod, backend === 'nft' ? 'legacy' : 'nft');

      const first = await pod.init(['--backend', backend]);
      t.equal(first.code, 0, `init: ${first.stderr}`);
      t.equal(first.stderr, '');
      t.match(first.stdout, new RegExp(`IPv4 rules installed with ${tool(backend, 4)} \\(forced by --backend\\)`));
      t.match(first.stdout, new RegExp(`IPv6 rules installed with ${tool(backend, 6)}`), 'the pod has a global IPv6 address');

      for (const family of [4, 6] as const) {
        const text = await save(pod, backend, family);
        const present = text.split('\n');
        for (const line of expectedRuleLines(family)) t.ok(present.includes(line), `IPv${family} kernel holds, verbatim: ${line}`);
        t.equal(meshletLines(text).length, expectedRuleLines(family).length + 2, `IPv${family}: our rules, 2 chains, nothing else of ours`);
        t.match(text, /-A OUTPUT -d \S+ -p tcp -j CNI-HOSTPORT-DNAT/, `IPv${family}: the CNI rules are still there`);
      }
      t.same(await snapshot(pod, backend === 'nft' ? 'legacy' : 'nft'), other, 'the other backend is untouched');

      const installed = await snapshot(pod, backend);
      const second = await pod.init(['--backend', backend]);
      t.equal(second.code, 0, `second init: ${second.stderr}`);
      t.same(await snapshot(pod, backend), installed, 'running init twice leaves exactly the same rules');

      const validated = await pod.init(['--backend', backend, '--validate']);
      t.equal(validated.code, 0, `init --validate: ${validated.stderr}`);
      t.match(validated.stdout, /IPv4 validated: a connection to 10\.44\.0\.\d+:\d+ .*was redirected to port 15001 with that original destination; uid 1337's connection reached 10\.44\.0\.\d+:\d+ directly, not redirected/);
      t.match(validated.stdout, /IPv6 validated: a connection to \[fd00:2c::\w+\]:\d+ /);
      t.match(validated.stdout, /192\.0\.2\.2 unreachable \(ENETUNREACH\)/, 'says which target it used and why');
      t.same(await snapshot(pod, backend), installed, 'validation leaves the rules as they were');

      const cleaned = await pod.init(['--backend', backend, '--cleanup']);
      t.equal(cleaned.code, 0, `cleanup: ${cleaned.stderr}`);
      t.match(cleaned.stdout, /IPv4 cleaned up .*removed 2 jumps and chains nat\/MESHLET_INBOUND, nat\/MESHLET_OUTPUT/);
      t.same(await snapshot(pod, backend), before, 'cleanup restores the seeded ruleset exactly, IPv4 and IPv6');
      t.not(before.v4, '', 'the comparison is not between two empty rulesets');

      const again = await pod.init(['--backend', backend, '--cleanup']);
      t.equal(again.code, 0);
      t.match(again.stdout, /nothing to clean up/);

      const invalid = await pod.init(['--backend', backend, '--dry-run', '--validate']);
      t.equal(invalid.code, 6, 'validation fails once the rules are gone');
      t.match(invalid.stderr, /^meshlet init: .*IPv4: a connection to \S+ was NOT redirected to port 15001/);
      t.equal(invalid.stderr.trim().split('\n').length, 1, 'one line');
      t.same(await snapshot(pod, backend), before, '--dry-run --validate changed nothing');
    });
  }

  t.test('auto picks the backend that already holds rules', { skip: broken.legacy || broken.nft }, async (t) => {
    const pod = tb.pod('auto');
    await seed(pod, 'legacy');
    const before = await snapshot(pod, 'legacy');
    const r = await pod.init();
    t.equal(r.code, 0, r.stderr);
    t.match(r.stdout, /IPv4 rules installed with iptables-legacy \(auto: holds \d+ rule lines here, nft holds 0\)/);
    t.same(meshletLines(await save(pod, 'nft', 4)), [], 'nothing in nft');
    t.not(meshletLines(await save(pod, 'legacy', 4)).length, 0);
    const again = await pod.init();
    t.match(again.stdout, /installed with iptables-legacy/, 'and keeps picking it');
    const cleaned = await pod.init(['--cleanup']);
    t.equal(cleaned.code, 0, cleaned.stderr);
    t.same(await snapshot(pod, 'legacy'), before);
  });

  t.test('--dry-run as a non-root user prints the input and changes nothing', async (t) => {
    const pod = tb.pod('dry');
    await seed(pod, 'nft');
    const before = await everything(pod);
    const r = await initAs(pod, ['--dry-run'], { uid: APP_UID });
    t.equal(r.code, 0, r.stderr);
    t.match(r.stdout, /^# meshlet init --dry-run: IPv4 input for: /m);
    t.match(r.stdout, /^# note: could not read the current rules \(no CAP_NET_ADMIN to read them\); showing the input for a namespace without meshlet rules$/m, 'says it could not read the current rules');
    for (const family of [4, 6] as const) {
      for (const line of expectedRuleLines(family)) t.ok(r.stdout.split('\n').includes(line), `prints IPv${family}: ${line}`);
    }
    t.match(r.stdout, /^\*nat\n:MESHLET_INBOUND - \[0:0\]$/m);
    const byEnv = await initAs(pod, [], { uid: APP_UID, env: { MESHLET_DRY_RUN: 'true', MESHLET_IPV6: 'off' } });
    t.equal(byEnv.code, 0, byEnv.stderr);
    t.notMatch(byEnv.stdout, /::1\/128/, 'MESHLET_IPV6=off: no IPv6 input');
    t.match(byEnv.stdout, /# IPv6 skipped: --ipv6 off/);
    const asRoot = await pod.init(['--dry-run', '--backend', 'nft']);
    t.equal(asRoot.code, 0, asRoot.stderr);
    t.match(asRoot.stdout, /# backend: nft \(forced by --backend\)/);
    t.notMatch(asRoot.stdout, /# note/, 'as root the current rules are read');
    t.same(await everything(pod), before, 'no backend, no family changed');
  });

  t.test('bad flags, missing iptables, no privileges: the right exit code and no rules', async (t) => {
    const pod = tb.pod('bad');
    await seed(pod, 'nft');
    const before = await everything(pod);
    const usage: Array<{ args: string[]; env?: NodeJS.ProcessEnv; names: string }> = [
      { args: ['--exclude-outbound-cidrs', '10.0.0.0/8,10.0.0.0/33'], names: '10.0.0.0/33' },
      { args: ['--exclude-outbound-ports', '80,90-x'], names: '90-x' },
      { args: ['--inbound-ports', '70000'], names: '70000' },
      { args: ['--frobnicate'], names: '--frobnicate' },
      { args: ['--ipv6', 'sometimes'], names: 'sometimes' },
      { args: [], env: { MESHLET_PROXY_UID: 'nobody' }, names: 'MESHLET_PROXY_UID' },
      { args: [], env: { MESHLET_INCLUDE_OUTBOUND_CIDRS: '10.0.0.0/8;fd00::/8' }, names: '10.0.0.0/8;fd00::/8' },
    ];
    for (const { args, env, names } of usage) {
      const r = await pod.init(args, env);
      t.equal(r.code, 2, `${JSON.stringify(args)} ${JSON.stringify(env ?? {})} → exit 2`);
      t.ok(r.stderr.includes(names), `the message names ${names}: ${r.stderr.trim()}`);
      t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
    }

    const emptyDir = t.testdir({});
    const missing = await initAs(pod, [], { path: emptyDir });
    t.equal(missing.code, 3, `no iptables on PATH → 3: ${missing.stderr.trim()}`);
    t.match(missing.stderr, /no working iptables backend: tried iptables-nft \(not found on PATH\); iptables-legacy \(not found on PATH\)/);
    const missingForced = await initAs(pod, ['--backend', 'legacy'], { path: emptyDir });
    t.equal(missingForced.code, 3);

    for (const backend of BACKENDS) {
      const denied = await initAs(pod, ['--backend', backend], { uid: APP_UID });
      t.equal(denied.code, 4, `non-root with ${backend} → 4: ${denied.stderr.trim()}`);
      t.match(denied.stderr, /Permission denied/);
      t.match(denied.stderr, /needs root or CAP_NET_ADMIN/);
    }
    const deniedCleanup = await initAs(pod, ['--cleanup'], { uid: APP_UID });
    t.equal(deniedCleanup.code, 4);

    t.same(await everything(pod), before, 'none of these changed any rule');
  });

  t.test('--validate: busy port, not root, wrong proxy uid, include lists', async (t) => {
    const pod = tb.pod('busy');
    const installed = await pod.init();
    t.equal(installed.code, 0, installed.stderr);

    const proxy = pod.node(['-e', "require('node:net').createServer().listen(15001, '::', () => console.log('listening'))"]);
    await proxy.waitForLine(/listening/);
    const busy = await pod.init(['--validate']);
    await proxy.stop();
    t.equal(busy.code, 6);
    t.match(busy.stderr, /port 15001 is already in use — is the proxy already running\?/);

    const notRoot = await initAs(pod, ['--dry-run', '--validate'], { uid: APP_UID });
    t.equal(notRoot.code, 6, 'validating as non-root: the app side can be checked, the proxy side cannot');
    t.match(notRoot.stderr, /starting a process as uid 1337\/gid 1337 failed: needs root \(CAP_SETUID, CAP_SETGID\)/);

    const wrongUid = await pod.init(['--proxy-uid', '2000']);
    t.equal(wrongUid.code, 0, wrongUid.stderr);
    const loop = await pod.init(['--dry-run', '--validate']);
    t.equal(loop.code, 6, 'rules that exempt uid 2000 do not exempt a proxy running as 1337');
    t.match(loop.stderr, /the proxy's own connection \(uid 1337, gid 1337\) to \S+ WAS redirected to port 15001: the proxy would loop/);

    const uncovered = await pod.init(['--include-outbound-cidrs', '192.168.0.0/16', '--validate']);
    t.equal(uncovered.code, 6);
    t.match(uncovered.stderr, /IPv4: validation cannot run: no destination that the rules redirect is reachable from here \(--include-outbound-cidrs limits what is redirected\)/);

    const covered = await pod.init(['--include-outbound-cidrs', `${pod.ipv4}/32,${pod.ipv6}/128`, '--validate']);
    t.equal(covered.code, 0, covered.stderr);
    t.match(covered.stdout, new RegExp(`IPv4 validated: a connection to ${pod.ipv4.replaceAll('.', '\\.')}:`));

    const v4only = await pod.init(['--include-outbound-cidrs', `${pod.ipv4}/32`, '--validate']);
    t.equal(v4only.code, 6, 'IPv6 is installed but nothing of it is redirected: validation says so');
    t.match(v4only.stderr, /IPv6: validation cannot run/);

    t.equal((await pod.init(['--cleanup'])).code, 0);
    t.same(meshletLines(await save(pod, 'nft', 4)), []);
  });

  t.test('an IPv6 table iptables-nft cannot read: nothing applied in either family', { skip: existsSync('/usr/sbin/nft') ? false : 'needs the nft tool' }, async (t) => {
    const pod = tb.pod('foreign');
    await seed(pod, 'nft');
    // Another tool wrote a rule with nft directly, in a form iptables-nft cannot parse.
    await pod.runOk(['nft', 'add', 'rule', 'ip6', 'nat', 'OUTPUT', 'meta', 'cpu', '0', 'counter']);
    const v4Before = normalizeSave(await save(pod, 'nft', 4));
    const r = await pod.init(['--backend', 'nft']);
    t.equal(r.code, 1, r.stderr);
    t.match(r.stderr, /^meshlet init: .*ip6tables-nft.*Parsing nftables rule failed/);
    t.equal(r.stderr.trim().split('\n').length, 1);
    t.equal(normalizeSave(await save(pod, 'nft', 4)), v4Before, 'IPv4 untouched');
    const off = await pod.init(['--backend', 'nft', '--ipv6', 'off']);
    t.equal(off.code, 0, `--ipv6 off works around it: ${off.stderr}`);
  });
}
