import t from 'tap';
import { MeshletError } from '../../../src/errors.ts';
import type { CommandResult, Exec } from '../../../src/iptables/exec.ts';
import { decideFamilies, hasGlobalIPv6 } from '../../../src/iptables/families.ts';
import { EXIT, exitCodeFor, initCommand, type InitDeps } from '../../../src/iptables/init-command.ts';

// initCommand's glue, with a fake exec standing in for the iptables binaries; the e2e
// tests run the same paths against the real ones.

const PERMISSION: CommandResult = { code: 4, stdout: '', stderr: 'iptables v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)\n' };

function harness(answer: (line: string, input?: string) => CommandResult | undefined, globalIPv6 = false) {
  const out: string[] = [];
  const err: string[] = [];
  const calls: Array<{ line: string; input?: string }> = [];
  const exec: Exec = async (command, args, input) => {
    const line = [command, ...args].join(' ');
    calls.push({ line, input });
    return answer(line, input) ?? { code: 0, stdout: '', stderr: '' };
  };
  const deps: Partial<InitDeps> = { exec, hasGlobalIPv6: () => globalIPv6, out: (l) => out.push(l), err: (l) => err.push(l) };
  return { deps, out, err, calls };
}

t.test('exit codes', async (t) => {
  t.same(EXIT, { OK: 0, FAILURE: 1, USAGE: 2, NO_IPTABLES: 3, PERMISSION: 4, KERNEL: 5, VALIDATION: 6 });
  t.equal(exitCodeFor(new MeshletError('MESHLET_ERR_USAGE', 'x')), 2);
  t.equal(exitCodeFor(new MeshletError('MESHLET_ERR_IPTABLES_MISSING', 'x')), 3);
  t.equal(exitCodeFor(new MeshletError('MESHLET_ERR_IPTABLES_PERMISSION', 'x')), 4);
  t.equal(exitCodeFor(new MeshletError('MESHLET_ERR_IPTABLES_KERNEL', 'x')), 5);
  t.equal(exitCodeFor(new MeshletError('MESHLET_ERR_VALIDATION', 'x')), 6);
  t.equal(exitCodeFor(new MeshletError('MESHLET_ERR_IPTABLES_APPLY', 'x')), 1);
  t.equal(exitCodeFor(new Error('x')), 1);
});

t.test('--help prints usage and exits 0 without touching iptables', async (t) => {
  const h = harness(() => undefined);
  t.equal(await initCommand(['--help'], {}, h.deps), 0);
  t.match(h.out.join('\n'), /usage: meshlet init/);
  t.same(h.calls, []);
});

t.test('a usage error is one stderr line, exit 2, and iptables is never run', async (t) => {
  const h = harness(() => undefined);
  t.equal(await initCommand(['--exclude-outbound-cidrs', '10.0.0.0/8,nope'], {}, h.deps), 2);
  t.equal(h.err.length, 1);
  t.match(h.err[0], /^meshlet init: .*--exclude-outbound-cidrs: .*'nope'/);
  t.same(h.calls, []);
});

t.test('install: probes, reads, applies both families, reports', async (t) => {
  const h = harness(() => undefined, true);
  t.equal(await initCommand([], {}, h.deps), 0, h.err.join('\n'));
  const restores = h.calls.filter((c) => c.line.includes('-restore'));
  t.same(restores.map((c) => c.line), ['iptables-nft-restore -w 10 --noflush', 'ip6tables-nft-restore -w 10 --noflush']);
  t.ok(h.calls.some((c) => c.line === 'ip6tables-nft -w 10 -t nat -S'), 'ip6tables is probed before anything is applied');
  t.match(h.out[0], /^meshlet init: IPv4 rules installed with iptables-nft/);
  t.match(h.out[1], /^meshlet init: IPv6 rules installed with ip6tables-nft/);
});

t.test('install with IPv6 needed but ip6tables broken: nothing applied, exit 5', async (t) => {
  const h = harness((line) => (line.startsWith('ip6tables-nft -w') ? { code: 1, stdout: '', stderr: "ip6tables v1.8.9 (nf_tables): table 'nat' does not exist\n" } : undefined), true);
  t.equal(await initCommand([], {}, h.deps), 5);
  t.match(h.err[0], /IPv6 rules are needed \(the namespace has a global IPv6 address\) but ip6tables-nft failed: .*pass --ipv6 off/);
  t.notOk(h.calls.some((c) => c.line.includes('-restore')));
});

t.test('install without privileges: exit 4', async (t) => {
  const h = harness(() => PERMISSION);
  t.equal(await initCommand([], {}, h.deps), 4);
  t.match(h.err[0], /Permission denied/);
  t.equal(h.err.length, 1);
});

t.test('dry-run without privileges prints the full input and applies nothing', async (t) => {
  const h = harness(() => PERMISSION, true);
  t.equal(await initCommand(['--dry-run'], {}, h.deps), 0, h.err.join('\n'));
  t.notOk(h.calls.some((c) => c.line.includes('-restore') || c.line.includes(' -S')), h.calls.map((c) => c.line).join(', '));
  const text = h.out.join('\n');
  t.match(text, /# meshlet init --dry-run: IPv4 input for: iptables-restore -w 10 --noflush/);
  t.match(text, /# note: could not read the current rules/);
  t.match(text, /^-A OUTPUT -p tcp -m comment --comment "meshlet: outbound TCP to the meshlet proxy" -j MESHLET_OUTPUT$/m);
  t.match(text, /^-A MESHLET_OUTPUT -d ::1\/128 /m, 'IPv6 input too');
});

t.test('dry-run with privileges reflects what is there: no jump twice', async (t) => {
  const present = `*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:MESHLET_INBOUND - [0:0]
:MESHLET_OUTPUT - [0:0]
-A PREROUTING -p tcp -m comment --comment "meshlet: inbound TCP to the meshlet proxy" -j MESHLET_INBOUND
-A OUTPUT -p tcp -m comment --comment "meshlet: outbound TCP to the meshlet proxy" -j MESHLET_OUTPUT
COMMIT
`;
  const h = harness((line) => (line === 'iptables-nft-save' ? { code: 0, stdout: present, stderr: '' } : undefined));
  t.equal(await initCommand(['--dry-run', '--ipv6=off'], {}, h.deps), 0);
  const text = h.out.join('\n');
  t.match(text, /# backend: nft/);
  t.notMatch(text, /^-A (PREROUTING|OUTPUT) /m);
  t.match(text, /^-A MESHLET_OUTPUT .*REDIRECT --to-ports 15001$/m);
  t.match(text, /# IPv6 skipped: --ipv6 off/);
});

t.test('cleanup cleans every backend holding meshlet chains', async (t) => {
  const withChain = (table: string) => `*${table}\n:OUTPUT ACCEPT [0:0]\n:MESHLET_OUTPUT - [0:0]\n-A OUTPUT -j MESHLET_OUTPUT\nCOMMIT\n`;
  const h = harness((line) => {
    if (line === 'iptables-nft-save') return { code: 0, stdout: withChain('nat'), stderr: '' };
    if (line === 'ip6tables-legacy-save') return { code: 0, stdout: withChain('nat'), stderr: '' };
    return undefined;
  });
  t.equal(await initCommand(['--cleanup'], {}, h.deps), 0, h.err.join('\n'));
  const restores = h.calls.filter((c) => c.line.includes('-restore'));
  // nft: the table held only our chain, so it is deleted, as it did not exist before init.
  t.same(restores.map((c) => c.line), ['iptables-nft-restore -w 10', 'ip6tables-legacy-restore -w 10 --noflush']);
  t.equal(restores[0]!.input, '*nat\nCOMMIT\n');
  t.equal(restores[1]!.input, '*nat\n-D OUTPUT -j MESHLET_OUTPUT\n-F MESHLET_OUTPUT\n-X MESHLET_OUTPUT\nCOMMIT\n');
  t.notOk(h.calls.some((c) => c.line.endsWith(' -S')), 'cleanup only reads: no listing that creates a legacy table');
  t.match(h.out.join('\n'), /IPv4 cleaned up with iptables-nft: removed 1 jump and chain nat\/MESHLET_OUTPUT/);
});

t.test('nft cleanup keeps a table that holds more than ours, in one --noflush pass', async (t) => {
  const shared = '*nat\n:OUTPUT ACCEPT [0:0]\n:CNI - [0:0]\n:MESHLET_OUTPUT - [0:0]\n-A OUTPUT -j MESHLET_OUTPUT\n-A OUTPUT -j CNI\nCOMMIT\n';
  const h = harness((line) => (line === 'iptables-nft-save' ? { code: 0, stdout: shared, stderr: '' } : undefined));
  t.equal(await initCommand(['--cleanup'], {}, h.deps), 0, h.err.join('\n'));
  const restores = h.calls.filter((c) => c.line.includes('-restore'));
  t.same(restores.map((c) => c.line), ['iptables-nft-restore -w 10 --noflush']);
});

t.test('a failing table deletion rolls the family back from its snapshot', async (t) => {
  const nat = '*nat\n:OUTPUT ACCEPT [0:0]\n:MESHLET_OUTPUT - [0:0]\n-A OUTPUT -j MESHLET_OUTPUT\nCOMMIT\n';
  const filter = '*filter\n:INPUT ACCEPT [0:0]\n:MESHLET_X - [0:0]\n-A INPUT -j MESHLET_X\n-A INPUT -p udp -j DROP\nCOMMIT\n';
  const h = harness((line, input) => {
    if (line === 'iptables-nft-save') return { code: 0, stdout: nat + filter, stderr: '' };
    if (line === 'iptables-nft-restore -w 10' && input === '*nat\nCOMMIT\n') return { code: 1, stdout: '', stderr: 'iptables-nft-restore: line 1 failed\n' };
    return undefined;
  });
  t.equal(await initCommand(['--cleanup', '--ipv6', 'off'], {}, h.deps), 1);
  const restores = h.calls.filter((c) => c.line.includes('-restore'));
  t.same(restores.map((c) => c.line), ['iptables-nft-restore -w 10 --noflush', 'iptables-nft-restore -w 10', 'iptables-nft-restore -w 10']);
  t.match(restores[0]!.input, /^\*filter\n-D INPUT -j MESHLET_X\n/, 'first the table that keeps content');
  t.equal(restores[1]!.input, '*nat\nCOMMIT\n', 'then the deletion, which fails');
  t.equal(restores[2]!.input, nat + filter, 'the rollback puts both tables back as they were');
  t.match(h.err[0], /iptables-nft-restore failed for IPv4: iptables-nft-restore: line 1 failed; rolled back IPv4, nothing was changed/);
});

t.test('cleanup with nothing to remove says so and runs no restore', async (t) => {
  const h = harness(() => undefined);
  t.equal(await initCommand(['--cleanup'], {}, h.deps), 0);
  t.notOk(h.calls.some((c) => c.line.includes('-restore')));
  t.match(h.out[0], /nothing to clean up/);
});

t.test('families', async (t) => {
  const ifInet6 = (lines: string[]) => () => lines.join('\n');
  t.ok(hasGlobalIPv6(ifInet6(['fd00002c000000000000000000000002 02 40 00 82     eth0', '00000000000000000000000000000001 01 80 10 80       lo'])));
  t.notOk(hasGlobalIPv6(ifInet6(['fe800000000000000000000000000001 02 40 20 80     eth0', '00000000000000000000000000000001 01 80 10 80       lo'])), 'link-local and loopback do not count');
  t.notOk(hasGlobalIPv6(() => { throw new Error('ENOENT'); }), 'no /proc/net/if_inet6: IPv6 is disabled');
  t.same(decideFamilies('auto', true).families, [4, 6]);
  t.same(decideFamilies('auto', false).families, [4]);
  t.same(decideFamilies('on', false).families, [4, 6]);
  t.same(decideFamilies('off', true).families, [4]);
});
