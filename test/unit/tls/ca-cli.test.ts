import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { MESHLET_BIN } from '../../../src/testbed/netns.ts';
import { ca, caOk, openssl, tempDir } from './ca-helpers.ts';

// `meshlet ca` on bad input: one line on stderr naming the problem (and the file, for
// CA directories), nothing on stdout, nothing written; exit 2 for usage and bad
// input, 1 for CA files that cannot be used.

const ID = 'spiffe://cluster.local/ns/default/sa/web';
const dir = tempDir();
const root = path.join(dir, 'root');
const inter = path.join(dir, 'inter');
const leaf = path.join(dir, 'leaf');
const otherRoot = path.join(dir, 'other-root');
await caOk(['init', '--out', root]);
await caOk(['init', '--root', root, '--out', inter]);
await caOk(['issue', '--ca', inter, '--spiffe-id', ID, '--out', leaf]);
await caOk(['init', '--out', otherRoot]);

let fresh = 0;
/** A directory name that does not exist yet. */
const out = () => path.join(dir, `out-${++fresh}`);

/** A CA directory assembled from the given files: [name in the new dir, source path]. */
function caDir(files: [string, string][]): string {
  const d = path.join(dir, `ca-${++fresh}`);
  mkdirSync(d);
  for (const [name, source] of files) copyFileSync(source, path.join(d, name));
  return d;
}

/**
 * Checks a refusal: the exit code, nothing on stdout, and one stderr line
 * `meshlet ca[ init| issue]: MESHLET_ERR_<CODE>: <message>`, with ` (see ... --help)`
 * after usage errors; `message` is matched against the text between code and hint.
 */
async function refused(t: Test, argv: string[], code: number, message: RegExp): Promise<void> {
  const run = await ca(argv);
  const label = argv.join(' ');
  t.equal(run.code, code, `exit ${code}: ${label}`);
  t.equal(run.err.length, 1, `one line on stderr: ${label}`);
  t.notMatch(run.err[0] ?? '', /\n/, 'a single line');
  const line = /^(meshlet ca(?: init| issue)?): (MESHLET_ERR_[A-Z_]+): (.*?)( \(see meshlet ca(?: init| issue)? --help\))?$/.exec(run.err[0] ?? '');
  t.ok(line, `meshlet ca...: MESHLET_ERR_...: ...: ${run.err[0]}`);
  const [, command = '', errorCode = '', text = '', hint] = line ?? [];
  t.equal(hint !== undefined, errorCode === 'MESHLET_ERR_USAGE', `a usage error, and only a usage error, points to --help: ${label}`);
  if (hint !== undefined) t.equal(hint, ` (see ${command} --help)`);
  t.equal(code === 2, ['MESHLET_ERR_USAGE', 'MESHLET_ERR_SPIFFE_ID'].includes(errorCode), `exit 2 for bad input, 1 otherwise: ${errorCode}`);
  t.match(text, new RegExp(`^${message.source}`), label);
  t.same(run.out, [], `nothing on stdout: ${label}`);
}

t.test('subcommands and help', async (t) => {
  await refused(t, [], 2, /missing subcommand: init or issue/);
  await refused(t, ['sign'], 2, /unknown subcommand 'sign'/);
  await refused(t, ['isue'], 2, /unknown subcommand 'isue': init or issue; did you mean issue\?$/);
  for (const [argv, first] of [
    [['--help'], 'usage: meshlet ca <init|issue>'],
    [['init', '--help'], 'usage: meshlet ca init'],
    [['issue', '-h'], 'usage: meshlet ca issue'],
  ] as const) {
    const run = await ca([...argv]);
    t.equal(run.code, 0, `${argv.join(' ')} exits 0`);
    t.ok(run.out.join('\n').startsWith(first), `${argv.join(' ')} prints its usage`);
    t.same(run.err, []);
  }
});

t.test("'meshlet ca --help' lists every flag docs/ca.md documents", async (t) => {
  const run = await ca(['--help']);
  const docs = readFileSync(path.join(import.meta.dirname, '../../../docs/ca.md'), 'utf8');
  // The flags on docs/ca.md's `meshlet ca ...` lines and in "Every command also takes ...".
  const lines = docs.split('\n').filter((line) => /meshlet ca (init|issue)|Every command also takes/.test(line));
  const documented = new Set(lines.flatMap((line) => [...line.matchAll(/(?<![\w-])--[a-z][a-z-]+/g)].map((m) => m[0])));
  t.ok(documented.has('--key') && documented.has('--force') && documented.has('--help'), 'docs/ca.md documents --key, --force and --help');
  for (const flag of documented) t.match(run.out.join('\n'), new RegExp(`^ +(?:-\\w, )?${flag}\\b`, 'm'), `${flag} is listed with its meaning`);
});

t.test('flags: missing, unknown, malformed', async (t) => {
  await refused(t, ['init'], 2, /missing --out DIR$/);
  await refused(t, ['init', '--out', ''], 2, /missing --out DIR$/);
  await refused(t, ['init', '--outt', 'x'], 2, /unknown flag '--outt'; did you mean --out\?$/);
  await refused(t, ['init', '--out'], 2, /flag --out needs a value$/);
  await refused(t, ['init', '--out', '--force'], 2, /flag --out needs a value, not the flag '--force'/);
  await refused(t, ['issue', '--ca', inter, '--spiffe-id', ID, '--out', out(), '--ttl'], 2, /flag --ttl needs a value$/);
  await refused(t, ['init', '--out', out(), 'extra'], 2, /unexpected argument 'extra'/);
  await refused(t, ['init', '--out', out(), '--force=yes'], 2, /flag --force takes no value/);
  await refused(t, ['init', '--out', out(), '--key', 'dsa'], 2, /--key dsa is not one of ec, rsa$/);
  await refused(t, ['init', '--out', out(), '--trust-domain', 'Cluster.Local'], 2, /--trust-domain: invalid trust domain 'Cluster\.Local': .*must be lowercase$/);
  await refused(t, ['init', '--out', out(), '--trust-domain', 'spiffe://cluster.local'], 2, /--trust-domain: .*without a scheme/);
  await refused(t, ['issue', '--spiffe-id', ID, '--out', out()], 2, /missing --ca DIR$/);
  await refused(t, ['issue', '--ca', inter, '--out', out()], 2, /missing --spiffe-id spiffe:\/\/TRUST_DOMAIN\/ns\/NAMESPACE\/sa\/SERVICE_ACCOUNT$/);
  await refused(t, ['issue', '--ca', inter, '--spiffe-id', ID], 2, /missing --out DIR$/);
});

t.test('--ttl: Go durations, positive, at least 1s, at most 100 years', async (t) => {
  await refused(t, ['init', '--out', out(), '--ttl', '0s'], 2, /--ttl 0s: a lifetime must be positive$/);
  await refused(t, ['init', '--out', out(), '--ttl=-1h'], 2, /--ttl -1h: a lifetime must be positive$/);
  await refused(t, ['init', '--out', out(), '--ttl', '-1h'], 2, /--ttl -1h: a lifetime must be positive$/);
  await refused(t, ['issue', '--ca', inter, '--spiffe-id', ID, '--out', out(), '--ttl', '500ms'], 2, /--ttl 500ms: a lifetime must be at least 1s$/);
  await refused(t, ['issue', '--ca', inter, '--spiffe-id', ID, '--out', out(), '--ttl', 'forever'], 2, /--ttl forever is not a duration \(Go syntax: 24h, 90m, 1h30m\)$/);
  await refused(t, ['issue', '--ca', inter, '--spiffe-id', ID, '--out', out(), '--ttl', '7d'], 2, /--ttl 7d is not a duration/);
  await refused(t, ['init', '--out', out(), '--ttl', '876001h'], 2, /--ttl 876001h is longer than 876000h \(100 years\)$/);
});

t.test('SPIFFE IDs are checked before any file is read', async (t) => {
  await refused(t, ['issue', '--ca', '/nonexistent', '--spiffe-id', 'spiffe://cluster.local/ns/a/', '--out', out()], 2, /--spiffe-id: invalid SPIFFE ID 'spiffe:\/\/cluster\.local\/ns\/a\/': the path must not end with '\/'$/);
  await refused(t, ['issue', '--ca', inter, '--spiffe-id', 'http://cluster.local/x', '--out', out()], 2, /--spiffe-id: invalid SPIFFE ID .*scheme must be 'spiffe', not 'http'$/);
  await refused(t, ['issue', '--ca', inter, '--spiffe-id', 'spiffe://cluster.local', '--out', out()], 2, /--spiffe-id: spiffe:\/\/cluster\.local is a trust domain's own ID, not a workload's: use spiffe:\/\/cluster\.local\/ns\/NAMESPACE\/sa\/SERVICE_ACCOUNT/);
});

t.test('a workload ID must be spiffe://TD/ns/NS/sa/SA, the form authorization reads the namespace from', async (t) => {
  for (const id of ['spiffe://cluster.local/ns/shop', 'spiffe://cluster.local/ns/shop/sa', 'spiffe://cluster.local/payments/api', 'spiffe://cluster.local/ns/shop/sa/cart/extra', 'spiffe://cluster.local/sa/cart/ns/shop']) {
    const target = out();
    await refused(t, ['issue', '--ca', '/nonexistent', '--spiffe-id', id, '--out', target], 2, new RegExp(`--spiffe-id: ${id.replaceAll('.', '\\.')} is not a workload ID \\(its path is /\\S+\\): use spiffe://cluster\\.local/ns/NAMESPACE/sa/SERVICE_ACCOUNT, the form authorization reads the namespace from$`));
    t.notOk(existsSync(target), 'nothing written');
  }
});

t.test('CA directories that cannot be used are refused with the file named (exit 1), and nothing is written', async (t) => {
  const check = async (caDirectory: string, message: RegExp) => {
    const target = out();
    await refused(t, ['issue', '--ca', caDirectory, '--spiffe-id', ID, '--out', target], 1, new RegExp(`\\S*${message.source}`));
    t.notOk(existsSync(target), '--out was not created');
  };
  const missing = path.join(dir, 'no-such-ca');
  await check(missing, new RegExp(`cannot read ${missing}/ca\\.crt: it does not exist$`));
  await check(caDir([['ca.crt', path.join(root, 'ca.crt')]]), /cannot read .*\/ca\.key: it does not exist$/);
  await check(caDir([['ca.crt', path.join(root, 'ca.crt')], ['ca.key', path.join(otherRoot, 'ca.key')]]), /\/ca\.key does not match .*\/ca\.crt \(the certificate is for another key\)$/);
  await check(caDir([['ca.crt', path.join(root, 'ca.key')], ['ca.key', path.join(root, 'ca.key')]]), /\/ca\.crt holds 0 PEM certificates; expected exactly one$/);
  await check(caDir([['ca.crt', path.join(leaf, 'tls.crt')], ['ca.key', path.join(root, 'ca.key')]]), /\/ca\.crt holds 2 PEM certificates; expected exactly one$/);
  await check(caDir([['ca.crt', path.join(root, 'ca.crt')], ['ca.key', path.join(root, 'ca.crt')]]), /\/ca\.key is not a PEM private key$/);

  const garbage = caDir([['ca.key', path.join(root, 'ca.key')]]);
  writeFileSync(path.join(garbage, 'ca.crt'), '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
  await check(garbage, /\/ca\.crt is not a valid X\.509 certificate/);

  const leafOnly = caDir([['ca.key', path.join(leaf, 'tls.key')]]);
  writeFileSync(path.join(leafOnly, 'ca.crt'), readFileSync(path.join(leaf, 'tls.crt'), 'utf8').split(/(?<=-----END CERTIFICATE-----\n)/)[0]!);
  await check(leafOnly, /\/ca\.crt is not a CA certificate \(no basicConstraints CA:TRUE\)$/);

  await check(caDir([['ca.crt', path.join(inter, 'ca.crt')], ['ca.key', path.join(inter, 'ca.key')]]), /\/ca\.crt is an intermediate \(not self-signed\) but .*\/root\.crt, its root, is missing$/);
  await check(
    caDir([['ca.crt', path.join(inter, 'ca.crt')], ['ca.key', path.join(inter, 'ca.key')], ['root.crt', path.join(otherRoot, 'ca.crt')]]),
    /\/ca\.crt is not signed by .*\/root\.crt$/,
  );
  await check(
    caDir([['ca.crt', path.join(inter, 'ca.crt')], ['ca.key', path.join(inter, 'ca.key')], ['root.crt', path.join(inter, 'ca.crt')]]),
    /\/root\.crt is the same certificate as .*\/ca\.crt, not its root$/,
  );
  const leafAsRoot = caDir([['ca.crt', path.join(inter, 'ca.crt')], ['ca.key', path.join(inter, 'ca.key')]]);
  writeFileSync(path.join(leafAsRoot, 'root.crt'), readFileSync(path.join(leaf, 'tls.crt'), 'utf8').split(/(?<=-----END CERTIFICATE-----\n)/)[0]!);
  await check(leafAsRoot, /\/root\.crt is not a root \(self-signed\) certificate$/);
  const notCaRoot = caDir([['ca.crt', path.join(inter, 'ca.crt')], ['ca.key', path.join(inter, 'ca.key')]]);
  const selfSignedLeaf = openssl([
    ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1'],
    ...['-subj', '/CN=not a CA', '-addext', 'basicConstraints=critical,CA:FALSE'],
    ...['-keyout', path.join(notCaRoot, 'x.key'), '-out', path.join(notCaRoot, 'root.crt')],
  ]);
  t.equal(selfSignedLeaf.status, 0, `openssl made a self-signed non-CA certificate ${selfSignedLeaf.stderr}`);
  await check(notCaRoot, /\/root\.crt is not a CA certificate \(no basicConstraints CA:TRUE\)$/);

  const k1 = caDir([['ca.crt', path.join(root, 'ca.crt')]]);
  const genpkey = openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:secp256k1', '-out', path.join(k1, 'ca.key')]);
  t.equal(genpkey.status, 0, 'openssl made a secp256k1 key');
  await check(k1, /\/ca\.key: EC curve secp256k1 is not supported \(use P-256 or P-384\)$/);
});

t.test('a root CA directory with a copy of its ca.crt as root.crt still works as a root', async (t) => {
  const copied = caDir([['ca.crt', path.join(root, 'ca.crt')], ['ca.key', path.join(root, 'ca.key')], ['root.crt', path.join(root, 'ca.crt')]]);
  const target = out();
  await caOk(['issue', '--ca', copied, '--spiffe-id', ID, '--out', target]);
  t.equal(readFileSync(path.join(target, 'tls.crt'), 'utf8').match(/BEGIN CERTIFICATE/g)?.length, 1, 'tls.crt: the leaf alone, not the root');
});

t.test('--root must be a root CA directory', async (t) => {
  await refused(t, ['init', '--root', inter, '--out', out()], 2, /--root .*inter holds an intermediate CA \(it has root\.crt\); intermediates are signed by the root itself$/);
  await refused(t, ['init', '--root', path.join(dir, 'nowhere'), '--out', out()], 1, /cannot read .*nowhere\/ca\.crt: it does not exist$/);
});

t.test('--out: not empty (without --force), not a directory, never the CA directory itself', async (t) => {
  await refused(t, ['issue', '--ca', inter, '--spiffe-id', ID, '--out', leaf], 2, /--out .*leaf is not empty \(ca\.crt, tls\.crt, tls\.key\); pass --force to overwrite$/);
  await refused(t, ['init', '--out', root], 2, /--out .*root is not empty \(ca\.crt, ca\.key\); pass --force to overwrite$/);
  await refused(t, ['init', '--out', path.join(root, 'ca.crt')], 2, /--out .*ca\.crt exists and is not a directory$/);
  const caBefore = readFileSync(path.join(inter, 'ca.crt'), 'utf8');
  await refused(t, ['issue', '--ca', inter, '--spiffe-id', ID, '--out', inter, '--force'], 2, /--out .*inter is the CA directory being read; choose another directory$/);
  await refused(t, ['issue', '--ca', inter, '--spiffe-id', ID, '--out', `${inter}/./`, '--force'], 2, /--out .*inter\/\.\/ is the CA directory being read/);
  await refused(t, ['init', '--root', root, '--out', root, '--force'], 2, /--out .*root is the CA directory being read/);
  t.equal(readFileSync(path.join(inter, 'ca.crt'), 'utf8'), caBefore, 'the CA was not touched');
});

t.test('through the meshlet binary: exit codes and one line on stderr', async (t) => {
  const run = (args: string[]) => spawnSync(process.execPath, [MESHLET_BIN, ...args], { encoding: 'utf8' });
  const help = run(['--help']);
  t.match(help.stdout, /\n {2}ca {7}create a CA and issue SPIFFE workload certificates/, 'meshlet --help lists ca');
  const caHelp = run(['ca', '--help']);
  t.equal(caHelp.status, 0);
  t.match(caHelp.stdout, /^usage: meshlet ca <init\|issue>/);
  const bad = run(['ca', 'issue', '--ca', path.join(dir, 'nowhere'), '--spiffe-id', ID, '--out', out()]);
  t.equal(bad.status, 1);
  t.match(bad.stderr, /^meshlet ca issue: MESHLET_ERR_CA: cannot read .*nowhere\/ca\.crt: it does not exist\n$/);
  t.equal(bad.stdout, '');
  const usage = run(['ca', 'init']);
  t.equal(usage.status, 2);
  t.equal(usage.stderr, 'meshlet ca init: MESHLET_ERR_USAGE: missing --out DIR (see meshlet ca init --help)\n');
  const target = out();
  const ok = run(['ca', 'issue', '--ca', inter, '--spiffe-id', ID, '--out', target]);
  t.equal(ok.status, 0, ok.stderr);
  t.match(ok.stdout, /^meshlet ca issue: certificate for spiffe:\/\/cluster\.local\/ns\/default\/sa\/web \(ECDSA P-256\) written to .* \(tls\.crt, tls\.key, ca\.crt\); valid until \S+\n$/);
  t.ok(existsSync(path.join(target, 'tls.key')));
});
