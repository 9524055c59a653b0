import { copyFileSync, mkdirSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { isMeshletError } from '../../../src/errors.ts';
import { loadIdentity, remainingLifetime } from '../../../src/tls/identity.ts';
import { IdentityWatcher } from '../../../src/tls/identity-watcher.ts';
import { captureLog } from '../../helpers/capture-log.ts';
import { caOk, openssl, tempDir } from './ca-helpers.ts';

// Identities made by `meshlet ca` (and one by openssl, without a SPIFFE SAN), loaded
// from real files; rotation by in-place writes and by a Kubernetes-style symlink swap.

const DAY = 24 * 3_600_000;
const ID = 'spiffe://cluster.local/ns/shop/sa/cart';

const root = tempDir();
const past = new Date(Date.now() - 30 * DAY);
await caOk(['init', '--out', path.join(root, 'ca'), '--ttl', '8760h'], past);
const caDir = path.join(root, 'ca');

async function issued(name: string, options: { now?: Date; ttl?: string; id?: string; ca?: string } = {}): Promise<string> {
  const out = path.join(root, name);
  await caOk(['issue', '--ca', options.ca ?? caDir, '--spiffe-id', options.id ?? ID, '--out', out, '--ttl', options.ttl ?? '24h'], options.now);
  return out;
}

function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (isMeshletError(err, 'MESHLET_ERR_IDENTITY')) return err.message;
    throw err;
  }
  throw new Error('expected MESHLET_ERR_IDENTITY');
}

t.test('a good identity: SPIFFE ID, trust domain, serial, validity', async (t) => {
  const dir = await issued('good');
  const identity = loadIdentity(dir);
  t.equal(identity.spiffeId, ID);
  t.equal(identity.trustDomain, 'cluster.local');
  const serial = openssl(['x509', '-in', path.join(dir, 'tls.crt'), '-noout', '-serial']).stdout.trim().split('=')[1];
  t.equal(identity.serial, serial);
  t.ok(remainingLifetime(identity) > 0.9);
});

t.test('an identity issued by an intermediate is anchored through tls.crt', async (t) => {
  await caOk(['init', '--root', caDir, '--out', path.join(root, 'intermediate'), '--ttl', '2000h'], past);
  const dir = await issued('via-intermediate', { ca: path.join(root, 'intermediate') });
  t.equal(loadIdentity(dir).intermediates.length, 1);
});

t.test('each unusable identity is refused, naming the file and the reason', async (t) => {
  const missing = await issued('missing');
  writeFileSync(path.join(missing, 'tls.key'), '');
  t.match(errorOf(() => loadIdentity(path.join(root, 'nowhere'))), /nowhere\/tls\.crt: cannot read \(ENOENT\)/);
  t.match(errorOf(() => loadIdentity(missing)), /missing\/tls\.key: not a private key/);

  const mismatch = await issued('mismatch');
  copyFileSync(path.join(await issued('other'), 'tls.key'), path.join(mismatch, 'tls.key'));
  t.match(errorOf(() => loadIdentity(mismatch)), /mismatch\/tls\.key: does not match the certificate in tls\.crt/);

  const expired = await issued('expired', { now: new Date(Date.now() - 3 * DAY), ttl: '24h' });
  t.match(errorOf(() => loadIdentity(expired)), /expired\/tls\.crt: expired at /);
  const future = await issued('future');
  t.match(errorOf(() => loadIdentity(future, new Date(Date.now() - DAY))), /future\/tls\.crt: not valid yet/);

  const foreign = await issued('foreign');
  const otherCa = path.join(root, 'other-ca');
  await caOk(['init', '--out', otherCa], past);
  copyFileSync(path.join(otherCa, 'ca.crt'), path.join(foreign, 'ca.crt'));
  t.match(errorOf(() => loadIdentity(foreign)), /foreign\/tls\.crt: chain is not anchored in ca\.crt/);

  const noSpiffe = path.join(root, 'no-spiffe');
  mkdirSync(noSpiffe);
  const made = openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=web', '-addext', 'subjectAltName=DNS:web.example',
    '-keyout', path.join(noSpiffe, 'tls.key'), '-out', path.join(noSpiffe, 'tls.crt'), '-days', '1']);
  t.equal(made.status, 0, made.stderr);
  copyFileSync(path.join(noSpiffe, 'tls.crt'), path.join(noSpiffe, 'ca.crt'));
  t.match(errorOf(() => loadIdentity(noSpiffe)), /no-spiffe\/tls\.crt: has no SPIFFE URI SAN/);

  const garbage = await issued('garbage');
  writeFileSync(path.join(garbage, 'ca.crt'), 'not a certificate\n');
  t.match(errorOf(() => loadIdentity(garbage)), /garbage\/ca\.crt: holds no PEM CERTIFICATE block/);
});

/** Waits for `check` to hold, re-checking on each log line (no sleeps in assertions). */
async function until(check: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

t.test('files rewritten in place: the new identity is used; a bad rewrite keeps the last good one', async (t) => {
  const dir = await issued('rotate-in-place');
  const { log, lines } = captureLog();
  const rotations: string[] = [];
  const watcher = new IdentityWatcher(dir, { log, onRotate: (next) => rotations.push(next.serial) }).start();
  t.teardown(() => watcher.close());
  const first = watcher.current.serial;

  const next = await issued('rotate-next');
  for (const f of ['tls.key', 'tls.crt', 'ca.crt']) copyFileSync(path.join(next, f), path.join(dir, f));
  await until(() => watcher.current.serial !== first, 'rotation');
  t.same(rotations, [watcher.current.serial]);
  t.ok(lines.some((l) => l.msg === 'identity rotated' && l.previousSerial === first));

  const good = watcher.current.serial;
  writeFileSync(path.join(dir, 'tls.key'), 'oops');
  await until(() => lines.some((l) => l.msg === 'identity reload refused; keeping the last good identity'), 'refusal');
  t.equal(watcher.current.serial, good, 'still the last good identity');
  t.match(String(lines.find((l) => l.level === 50)?.err), /tls\.key: not a private key/);
});

t.test('a Kubernetes-style atomic symlink swap rotates the identity', async (t) => {
  // The layout of a mounted secret: files are links through ..data to a timestamped directory.
  const volume = path.join(root, 'volume');
  mkdirSync(volume);
  const v1 = await issued('k8s-v1');
  const v2 = await issued('k8s-v2');
  renameSync(v1, path.join(volume, '..2026_11_22_v1'));
  renameSync(v2, path.join(volume, '..2026_11_22_v2'));
  symlinkSync('..2026_11_22_v1', path.join(volume, '..data'));
  for (const f of ['tls.crt', 'tls.key', 'ca.crt']) symlinkSync(`..data/${f}`, path.join(volume, f));

  const { log } = captureLog();
  const watcher = new IdentityWatcher(volume, { log }).start();
  t.teardown(() => watcher.close());
  const first = watcher.current.serial;
  symlinkSync('..2026_11_22_v2', path.join(volume, '..data_tmp'));
  renameSync(path.join(volume, '..data_tmp'), path.join(volume, '..data'));
  await until(() => watcher.current.serial !== first, 'rotation after the symlink swap');
  t.equal(watcher.current.serial, loadIdentity(path.join(volume, '..2026_11_22_v2')).serial);
});

t.test('start-up fails on an unusable identity; a warning when under 20 % of the lifetime is left', async (t) => {
  const { log, lines } = captureLog();
  t.throws(() => new IdentityWatcher(path.join(root, 'nowhere'), { log }), { code: 'MESHLET_ERR_IDENTITY' });
  const dir = await issued('ageing', { ttl: '10h' });
  const identity = loadIdentity(dir);
  const late = new Date(identity.notAfter.getTime() - 3_600_000); // 1 h of ~10 h left
  const watcher = new IdentityWatcher(dir, { log, now: () => late });
  watcher.close();
  t.ok(lines.some((l) => l.level === 40 && /less than 20 % of its lifetime left/.test(String(l.msg))));
  const fresh = captureLog();
  new IdentityWatcher(dir, { log: fresh.log }).close();
  t.notOk(fresh.lines.some((l) => l.level === 40), 'no warning for a fresh certificate');
});
