import t from 'tap';
import { isMeshletError } from '../../../src/errors.ts';
import { binary, chooseBackend, detectBackend, type Probe } from '../../../src/iptables/backend.ts';
import type { CommandResult, Exec } from '../../../src/iptables/exec.ts';
import { classifyFailure, failureDetail } from '../../../src/iptables/failures.ts';

const works = (backend: Probe['backend'], ruleLines = 0): Probe => ({ backend, works: true, ruleLines });
const broken = (backend: Probe['backend'], kind: NonNullable<Probe['failure']>['kind'], detail: string): Probe => ({
  backend,
  works: false,
  failure: { kind, detail },
  ruleLines: 0,
});

function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected an error');
}

t.test('binary names', async (t) => {
  t.equal(binary('nft', 4), 'iptables-nft');
  t.equal(binary('legacy', 6, '-restore'), 'ip6tables-legacy-restore');
  t.equal(binary('nft', 6, '-save'), 'ip6tables-nft-save');
});

t.test('auto prefers the backend that already holds rules', async (t) => {
  t.equal(chooseBackend('auto', [works('nft', 0), works('legacy', 5)]).backend, 'legacy');
  t.equal(chooseBackend('auto', [works('nft', 12), works('legacy', 5)]).backend, 'nft');
  t.match(chooseBackend('auto', [works('nft', 0), works('legacy', 5)]).reason, /holds 5 rule lines here, nft holds 0/);
});

t.test('auto with no rules anywhere, or a tie, picks nft', async (t) => {
  const none = chooseBackend('auto', [works('nft'), works('legacy')]);
  t.equal(none.backend, 'nft');
  t.match(none.reason, /neither holds rules/);
  t.equal(chooseBackend('auto', [works('legacy', 3), works('nft', 3)]).backend, 'nft');
});

t.test('auto picks the only one that works', async (t) => {
  const choice = chooseBackend('auto', [broken('nft', 'kernel', 'table does not exist'), works('legacy')]);
  t.equal(choice.backend, 'legacy');
  t.match(choice.reason, /only one that works.*nft: table does not exist/);
  t.equal(chooseBackend('auto', [works('nft'), broken('legacy', 'missing', 'not found on PATH')]).backend, 'nft');
});

t.test('auto with nothing working: one line naming what was tried and why, classified', async (t) => {
  const missing = thrown(() => chooseBackend('auto', [broken('nft', 'missing', 'not found on PATH'), broken('legacy', 'missing', 'not found on PATH')]));
  t.ok(isMeshletError(missing, 'MESHLET_ERR_IPTABLES_MISSING'));
  t.match(missing.message, /no working iptables backend: tried iptables-nft \(not found on PATH\); iptables-legacy \(not found on PATH\)/);
  t.notMatch(missing.message, /\n/);
  const perm = thrown(() => chooseBackend('auto', [broken('nft', 'permission', 'Permission denied (you must be root)'), broken('legacy', 'missing', 'x')]));
  t.ok(isMeshletError(perm, 'MESHLET_ERR_IPTABLES_PERMISSION'), 'a permission problem wins: it is the actionable one');
  const kernel = thrown(() => chooseBackend('auto', [broken('nft', 'kernel', 'table does not exist'), broken('legacy', 'missing', 'x')]));
  t.ok(isMeshletError(kernel, 'MESHLET_ERR_IPTABLES_KERNEL'));
});

t.test('a forced backend is used as is, or fails with its own reason', async (t) => {
  t.equal(chooseBackend('legacy', [works('legacy', 0)]).backend, 'legacy');
  const err = thrown(() => chooseBackend('nft', [broken('nft', 'kernel', "table 'nat' does not exist")]));
  t.ok(isMeshletError(err, 'MESHLET_ERR_IPTABLES_KERNEL'));
  t.match(err.message, /--backend nft: iptables-nft does not work: table 'nat' does not exist/);
});

const ok = (stdout = ''): CommandResult => ({ code: 0, stdout, stderr: '' });
const enoent = (): CommandResult => ({ code: null, stdout: '', stderr: '', spawnError: Object.assign(new Error('spawn ENOENT'), { code: 'ENOENT' }) });

/** A fake `exec` answering from a table of command lines. */
function fakeExec(answers: Record<string, CommandResult>): Exec & { calls: string[] } {
  const calls: string[] = [];
  const exec = async (command: string, args: readonly string[]) => {
    const line = [command, ...args].join(' ');
    calls.push(line);
    return answers[line] ?? answers[command] ?? enoent();
  };
  return Object.assign(exec, { calls });
}

t.test('detectBackend probes with the real commands and counts rules in both families', async (t) => {
  const legacyRules = '*nat\n:PREROUTING ACCEPT [0:0]\n:CNI - [0:0]\n-A PREROUTING -j CNI\nCOMMIT\n';
  const exec = fakeExec({
    'iptables-nft -w 10 -t nat -S': ok('-P PREROUTING ACCEPT\n'),
    'iptables-legacy -w 10 -t nat -S': ok('-P PREROUTING ACCEPT\n'),
    'iptables-nft-save': ok(''),
    'ip6tables-nft-save': ok(''),
    'iptables-legacy-save': ok(''),
    'ip6tables-legacy-save': ok(legacyRules),
  });
  const choice = await detectBackend(exec, 'auto');
  t.equal(choice.backend, 'legacy', 'IPv6 rules count too');
  t.same(choice.probes.map((p) => [p.backend, p.ruleLines]), [['nft', 0], ['legacy', 2]]);
});

t.test('dry-run probes only read (no nat -S, which creates legacy tables)', async (t) => {
  const exec = fakeExec({ 'iptables-nft-save': ok(''), 'ip6tables-nft-save': ok(''), 'iptables-legacy-save': ok(''), 'ip6tables-legacy-save': ok('') });
  await detectBackend(exec, 'auto', true);
  t.notOk(exec.calls.some((c) => c.includes(' -S')), exec.calls.join(', '));
});

t.test('detectBackend as non-root: permission, from the real messages', async (t) => {
  const exec = fakeExec({
    'iptables-nft-save': { code: 4, stdout: '', stderr: 'iptables-nft-save v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)\n' },
    'iptables-legacy-save': { code: 1, stdout: '', stderr: 'Failed to list table names in /proc/net/ip_tables_names: Permission denied\n' },
  });
  const err = await detectBackend(exec, 'auto').then(() => undefined, (e: Error) => e);
  t.ok(isMeshletError(err, 'MESHLET_ERR_IPTABLES_PERMISSION'));
  t.match(err?.message, /iptables-nft \(iptables-nft-save v1.8.9 \(nf_tables\): Could not fetch rule set generation id: Permission denied \(you must be root\)\)/);
});

t.test('only the chosen backend lists its nat table; auto falls back when that fails', async (t) => {
  const saves = { 'iptables-nft-save': ok(''), 'ip6tables-nft-save': ok(''), 'iptables-legacy-save': ok(''), 'ip6tables-legacy-save': ok('') };
  const fine = fakeExec({ ...saves, 'iptables-nft -w 10 -t nat -S': ok('-P OUTPUT ACCEPT\n') });
  t.equal((await detectBackend(fine, 'auto')).backend, 'nft');
  t.same(fine.calls.filter((c) => c.endsWith(' -S')), ['iptables-nft -w 10 -t nat -S'], 'iptables-legacy -t nat -S would create a legacy nat table');
  const noNat = { code: 1, stdout: '', stderr: "iptables v1.8.9 (nf_tables): table 'nat' does not exist\n" };
  const fallback = fakeExec({ ...saves, 'iptables-nft -w 10 -t nat -S': noNat, 'iptables-legacy -w 10 -t nat -S': ok('') });
  const choice = await detectBackend(fallback, 'auto');
  t.equal(choice.backend, 'legacy');
  t.match(choice.reason, /the only one that works \(nft: iptables v1.8.9 \(nf_tables\): table 'nat' does not exist\)/);
  const forced = await detectBackend(fakeExec({ ...saves, 'iptables-nft -w 10 -t nat -S': noNat }), 'nft').then(() => undefined, (e: Error) => e);
  t.ok(isMeshletError(forced, 'MESHLET_ERR_IPTABLES_KERNEL'), 'forced: the nat failure is the error');
});

t.test('classifyFailure on real iptables messages', async (t) => {
  const r = (stderr: string): CommandResult => ({ code: 1, stdout: '', stderr });
  t.equal(classifyFailure(enoent()), 'missing');
  t.equal(classifyFailure(r('iptables-restore v1.8.9 (legacy): Couldn\'t load target `REDIRECT\':No such file or directory\n')), 'kernel');
  t.equal(classifyFailure(r("iptables v1.8.9 (legacy): can't initialize iptables table `nat': Table does not exist (do you need to insmod?)")), 'kernel');
  t.equal(classifyFailure(r("iptables v1.8.9 (nf_tables): table 'nat' does not exist")), 'kernel');
  t.equal(classifyFailure(r('iptables: No chain/target/match by that name.')), 'kernel');
  t.equal(classifyFailure(r('iptables-restore v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)')), 'permission');
  t.equal(classifyFailure(r('iptables-restore: line 3 failed')), 'other');
});

t.test('rules written with nft directly are not a kernel problem', async (t) => {
  const result: CommandResult = {
    code: 3,
    stdout: '',
    stderr: 'Error: unknown ipv6 meta key\nip6tables v1.8.9 (nf_tables): Parsing nftables rule failed\nPerhaps ip6tables or your kernel needs to be upgraded.\n',
  };
  t.equal(classifyFailure(result), 'other');
  t.equal(failureDetail(result), 'ip6tables v1.8.9 (nf_tables): Parsing nftables rule failed', "iptables' own line is the detail");
});
