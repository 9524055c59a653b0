import { writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { isMeshletError } from '../../../src/errors.ts';
import { certificatePem, issueWorkloadCertificate, keyIdentifier } from '../../../src/tls/ca/certificates.ts';
import { decodePermittedUriHosts, encodePermittedUriHosts } from '../../../src/tls/ca/name-constraints.ts';
import { generateKeyPair } from '../../../src/tls/ca/keys.ts';
import { loadCa } from '../../../src/tls/ca/operations.ts';
import { x509 } from '../../../src/tls/ca/x509.ts';
import { ca, caOk, tempDir, verify, x509Date } from './ca-helpers.ts';

// What the CA's certificates forbid, enforced by openssl rather than by meshlet: the
// URI name constraint keeps each CA to its trust domain, pathlen keeps the hierarchy
// at root → intermediate → workload. Then meshlet's own refusals: another trust
// domain, an expired CA, and lifetimes that outrun the CA (clamped).

const HOUR = 3_600_000;
const now = new Date();
now.setUTCMilliseconds(0);
const dir = tempDir();
const root = path.join(dir, 'root');
const inter = path.join(dir, 'inter');
await caOk(['init', '--out', root], now);
await caOk(['init', '--root', root, '--out', inter], now);

/** A leaf made with the library directly: no trust-domain check, as a rogue issuer would. */
async function craftLeaf(caDir: string, spiffeId: string, name: string): Promise<string> {
  const loaded = await loadCa(caDir, now);
  const leaf = await issueWorkloadCertificate({ issuer: loaded.signer, spiffeId, ttlMs: HOUR, keyType: 'ec', now });
  const file = path.join(dir, `${name}.crt`);
  writeFileSync(file, certificatePem([leaf.cert]));
  return file;
}

t.test('openssl accepts a leaf inside the trust domain and rejects one outside it (name constraints)', async (t) => {
  const rootCa = path.join(root, 'ca.crt');
  const interCa = path.join(inter, 'ca.crt');

  const inside = await craftLeaf(root, 'spiffe://cluster.local/ns/a/sa/b', 'inside-root');
  t.equal(verify(rootCa, inside).status, 0, 'in the trust domain, signed by the root: accepted');
  const insideInter = await craftLeaf(inter, 'spiffe://cluster.local/ns/a/sa/b', 'inside-inter');
  t.equal(verify(rootCa, insideInter, interCa).status, 0, 'in the trust domain, via the intermediate: accepted');

  for (const [id, name] of [
    ['spiffe://evil.example/ns/a/sa/b', 'another trust domain'],
    ['spiffe://sub.cluster.local/ns/a/sa/b', 'a subdomain (trust domains match exactly)'],
    ['spiffe://cluster.localx/ns/a/sa/b', 'a longer name with the same prefix'],
  ] as const) {
    const fromRoot = verify(rootCa, await craftLeaf(root, id, `outside-root-${name.length}`));
    t.not(fromRoot.status, 0, `${name}, signed by the root: rejected`);
    t.match(fromRoot.stdout + fromRoot.stderr, /permitted subtree violation/, `${name}: for the name constraint`);
    const fromInter = verify(rootCa, await craftLeaf(inter, id, `outside-inter-${name.length}`), interCa);
    t.not(fromInter.status, 0, `${name}, via the intermediate: rejected`);
    t.match(fromInter.stdout + fromInter.stderr, /permitted subtree violation/);
  }
});

t.test('pathlen:0 on the intermediate: openssl rejects a CA signed by it', async (t) => {
  const loaded = await loadCa(inter, now);
  // A sub-CA with a name of its own: one with its issuer's name would be "self-issued",
  // which RFC 5280 (6.1.4 l) exempts from pathlen, for key roll-over.
  const subKeys = await generateKeyPair('ec');
  const sub = await x509.X509CertificateGenerator.create({
    subject: 'CN=rogue sub CA',
    issuer: loaded.signer.cert.subjectName,
    notBefore: new Date(now.getTime() - HOUR),
    notAfter: new Date(now.getTime() + HOUR),
    publicKey: subKeys.publicKey,
    signingKey: loaded.signer.key,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true),
      await x509.SubjectKeyIdentifierExtension.create(subKeys.publicKey),
      new x509.AuthorityKeyIdentifierExtension(await keyIdentifier(loaded.signer.cert)),
    ],
  });
  const leaf = await issueWorkloadCertificate({ issuer: { cert: sub, key: subKeys.privateKey }, spiffeId: 'spiffe://cluster.local/x', ttlMs: HOUR, keyType: 'ec', now });
  const chain = path.join(dir, 'sub-chain.crt');
  writeFileSync(chain, certificatePem([sub, loaded.signer.cert]));
  const leafFile = path.join(dir, 'sub-leaf.crt');
  writeFileSync(leafFile, certificatePem([leaf.cert]));
  const result = verify(path.join(root, 'ca.crt'), leafFile, chain);
  t.not(result.status, 0, 'a third level is refused');
  t.match(result.stdout + result.stderr, /path length constraint exceeded/);
});

t.test('issue refuses a SPIFFE ID of another trust domain, naming both', async (t) => {
  const out = path.join(dir, 'refused');
  const run = await ca(['issue', '--ca', inter, '--spiffe-id', 'spiffe://evil.example/ns/a/sa/b', '--out', out], now);
  t.equal(run.code, 2);
  t.same(run.err, [`meshlet ca issue: MESHLET_ERR_USAGE: spiffe://evil.example/ns/a/sa/b is in trust domain evil.example but the CA in ${inter} signs only for trust domain cluster.local (see meshlet ca issue --help)`]);
  t.same(run.out, []);
});

t.test('an intermediate takes its root trust domain; another one is refused, naming both', async (t) => {
  const run = await ca(['init', '--root', root, '--out', path.join(dir, 'inter-other'), '--trust-domain', 'other.example'], now);
  t.equal(run.code, 2);
  t.match(run.err.join('\n'), /^meshlet ca init: MESHLET_ERR_USAGE: --trust-domain other\.example differs from the root's trust domain cluster\.local \(.*root\/ca\.crt\) \(see meshlet ca init --help\)$/);
  const same = await ca(['init', '--root', root, '--out', path.join(dir, 'inter-same'), '--trust-domain', 'cluster.local'], now);
  t.equal(same.code, 0, 'naming the same trust domain is fine');
});

t.test('lifetimes are clamped to the issuing CA: a certificate never outlives its issuer', async (t) => {
  const shortRoot = path.join(dir, 'short-root');
  await caOk(['init', '--out', shortRoot, '--ttl', '2h'], now);
  const rootEnd = x509Date(path.join(shortRoot, 'ca.crt'), 'enddate');
  t.equal(rootEnd.getTime(), now.getTime() + 2 * HOUR);

  const leafDir = path.join(dir, 'clamped-leaf');
  const leaf = await caOk(['issue', '--ca', shortRoot, '--spiffe-id', 'spiffe://cluster.local/ns/a/sa/b', '--out', leafDir, '--ttl', '24h'], now);
  t.equal(x509Date(path.join(leafDir, 'tls.crt'), 'enddate').getTime(), rootEnd.getTime(), 'the leaf ends with the root');
  t.match(leaf.out[0], /valid until .*, the issuing CA's own expiry \(shorter than --ttl 24h\)$/, 'and says so');

  const interDir = path.join(dir, 'clamped-inter');
  const later = new Date(now.getTime() + HOUR);
  const interRun = await caOk(['init', '--root', shortRoot, '--out', interDir, '--ttl', '8760h'], later);
  t.equal(x509Date(path.join(interDir, 'ca.crt'), 'enddate').getTime(), rootEnd.getTime(), 'an intermediate too');
  t.match(interRun.out[0], /the issuing CA's own expiry \(shorter than --ttl 8760h\)/);

  const unclamped = path.join(dir, 'unclamped-leaf');
  const run = await caOk(['issue', '--ca', shortRoot, '--spiffe-id', 'spiffe://cluster.local/ns/a/sa/b', '--out', unclamped, '--ttl', '1h'], now);
  t.equal(x509Date(path.join(unclamped, 'tls.crt'), 'enddate').getTime(), now.getTime() + HOUR, 'a shorter --ttl is kept');
  t.notMatch(run.out[0], /own expiry/, 'and nothing is said');
});

t.test('an expired or not-yet-valid CA is refused (exit 1), naming the file and the date', async (t) => {
  const caFile = path.join(root, 'ca.crt');
  const end = x509Date(caFile, 'enddate');
  const expired = await ca(['issue', '--ca', root, '--spiffe-id', 'spiffe://cluster.local/ns/a/sa/b', '--out', path.join(dir, 'x1')], new Date(end.getTime() + 1000));
  t.equal(expired.code, 1);
  t.same(expired.err, [`meshlet ca issue: MESHLET_ERR_CA: ${caFile} expired at ${end.toISOString()}`]);
  const early = await ca(['issue', '--ca', root, '--spiffe-id', 'spiffe://cluster.local/ns/a/sa/b', '--out', path.join(dir, 'x2')], new Date(now.getTime() - HOUR));
  t.equal(early.code, 1);
  t.match(early.err.join('\n'), /^meshlet ca issue: MESHLET_ERR_CA: .*root\/ca\.crt is not valid before \d{4}-\d\d-\d\dT/);
});

t.test('name constraints DER: round trip, and malformed input refused', async (t) => {
  t.same(decodePermittedUriHosts(encodePermittedUriHosts(['cluster.local', 'b.example'])), ['cluster.local', 'b.example']);
  const long = 'a'.repeat(300); // long-form lengths
  t.same(decodePermittedUriHosts(encodePermittedUriHosts([long])), [long]);
  for (const bad of [Uint8Array.of(), Uint8Array.of(0x30, 0x05, 0xa0), Uint8Array.of(0x04, 0x00)]) {
    let error: unknown;
    try {
      decodePermittedUriHosts(bad);
    } catch (err) {
      error = err;
    }
    t.ok(isMeshletError(error, 'MESHLET_ERR_CA'), `refused: '${Buffer.from(bad).toString('hex')}'`);
  }
});
