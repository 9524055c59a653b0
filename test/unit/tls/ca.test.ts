import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import t, { type Test } from 'tap';
import { ca, caOk, certText, extension, field, openssl, pemBlocks, splitPem, tempDir, verify, x509Date, x509Value } from './ca-helpers.ts';

// `meshlet ca init` (root, intermediate) and `meshlet ca issue` (EC, RSA), each
// certificate read back by the openssl CLI: the extensions RFC 5280 and the SPIFFE
// X509-SVID standard ask for, and `openssl verify -x509_strict` of the chain.

const ID = 'spiffe://cluster.local/ns/default/sa/web';
const now = new Date();
now.setUTCMilliseconds(0); // X.509 times have whole seconds
const dir = tempDir();
const root = path.join(dir, 'root');
const inter = path.join(dir, 'inter');
const leafEc = path.join(dir, 'leaf-ec');
const leafRsa = path.join(dir, 'leaf-rsa');
const leafFromRoot = path.join(dir, 'leaf-from-root');
const file = (d: string, name: string) => path.join(d, name);
const mode = (f: string) => statSync(f).mode & 0o777;
const HOUR = 3_600_000;

const runs = {
  root: await caOk(['init', '--out', root], now),
  inter: await caOk(['init', '--root', root, '--out', inter], now),
  leafEc: await caOk(['issue', '--ca', inter, '--spiffe-id', ID, '--out', leafEc], now),
  leafRsa: await caOk(['issue', '--ca', inter, '--spiffe-id', ID, '--out', leafRsa, '--key', 'rsa', '--ttl', '1h30m'], now),
  leafFromRoot: await caOk(['issue', '--ca', root, '--spiffe-id', ID, '--out', leafFromRoot], now),
};

function ski(text: string): string | undefined {
  return extension(text, 'X509v3 Subject Key Identifier')?.value;
}

function aki(text: string): string | undefined {
  // OpenSSL 3.0 prints "keyid:AB:CD..." in some builds and the bare hex in others.
  return extension(text, 'X509v3 Authority Key Identifier')?.value.replace(/^keyid:/, '');
}

/** The key in a PEM file matches the certificate: same public key, per openssl. */
function keyMatches(t: Test, keyFile: string, certFile: string): void {
  const fromKey = openssl(['pkey', '-in', keyFile, '-pubout']);
  const fromCert = openssl(['x509', '-in', certFile, '-noout', '-pubkey']);
  t.equal(fromKey.status, 0, `openssl reads ${path.basename(keyFile)}`);
  t.equal(fromKey.stdout, fromCert.stdout, `${path.basename(keyFile)} is the key of ${path.basename(certFile)}`);
}

t.test('root CA: self-signed, CA:TRUE pathlen:1, keyCertSign+cRLSign, SKI, URI name constraint', async (t) => {
  t.match(runs.root.out[0], /^meshlet ca init: root CA for trust domain cluster\.local \(ECDSA P-256\) written to .*root \(ca\.crt, ca\.key\); valid until \d{4}-/);
  t.same(readdirSync(root).sort(), ['ca.crt', 'ca.key'], 'exactly ca.crt and ca.key');
  const text = certText(file(root, 'ca.crt'));
  t.equal(field(text, 'Subject'), 'O = cluster.local, CN = meshlet root CA');
  t.equal(field(text, 'Issuer'), field(text, 'Subject'), 'self-issued');
  t.same(extension(text, 'X509v3 Basic Constraints'), { critical: true, value: 'CA:TRUE, pathlen:1' });
  t.same(extension(text, 'X509v3 Key Usage'), { critical: true, value: 'Certificate Sign, CRL Sign' });
  t.match(ski(text), /^([0-9A-F]{2}:){19}[0-9A-F]{2}$/, 'SKI: 20 bytes (SHA-1 of the key)');
  t.equal(extension(text, 'X509v3 Subject Key Identifier')?.critical, false, 'SKI is not critical');
  t.same(extension(text, 'X509v3 Name Constraints'), { critical: true, value: 'Permitted:\nURI:cluster.local' });
  t.same(extension(text, 'X509v3 Subject Alternative Name'), { critical: false, value: 'URI:spiffe://cluster.local' });
  t.equal(extension(text, 'X509v3 Extended Key Usage'), undefined, 'no EKU on a CA');
  t.match(text, /ASN1 OID: prime256v1/);
  t.match(text, /Signature Algorithm: ecdsa-with-SHA256/);
  t.equal(verify(file(root, 'ca.crt'), file(root, 'ca.crt')).status, 0, 'openssl verifies the root against itself');
  t.equal(mode(file(root, 'ca.key')), 0o600, 'ca.key is 0600');
  t.equal(mode(file(root, 'ca.crt')), 0o644, 'ca.crt is 0644');
  t.equal(mode(root), 0o700, 'the directory is 0700');
  t.match(readFileSync(file(root, 'ca.key'), 'utf8'), /^-----BEGIN PRIVATE KEY-----\n/, 'PKCS#8 PEM');
  keyMatches(t, file(root, 'ca.key'), file(root, 'ca.crt'));
  t.equal(x509Date(file(root, 'ca.crt'), 'enddate').getTime(), now.getTime() + 8760 * HOUR, 'default lifetime 8760h');
});

t.test('intermediate CA: signed by the root, pathlen:0, AKI = root SKI, same trust domain, root.crt beside it', async (t) => {
  t.match(runs.inter.out[0], /intermediate CA for trust domain cluster\.local .*signed by .*root\/ca\.crt, written to .*inter \(ca\.crt, ca\.key, root\.crt\)/);
  t.same(readdirSync(inter).sort(), ['ca.crt', 'ca.key', 'root.crt']);
  t.equal(readFileSync(file(inter, 'root.crt'), 'utf8'), readFileSync(file(root, 'ca.crt'), 'utf8'), 'root.crt is the root certificate');
  const text = certText(file(inter, 'ca.crt'));
  const rootText = certText(file(root, 'ca.crt'));
  t.equal(field(text, 'Subject'), 'O = cluster.local, CN = meshlet intermediate CA');
  t.equal(field(text, 'Issuer'), field(rootText, 'Subject'));
  t.same(extension(text, 'X509v3 Basic Constraints'), { critical: true, value: 'CA:TRUE, pathlen:0' });
  t.same(extension(text, 'X509v3 Key Usage'), { critical: true, value: 'Certificate Sign, CRL Sign' });
  t.same(extension(text, 'X509v3 Name Constraints'), { critical: true, value: 'Permitted:\nURI:cluster.local' });
  t.ok(ski(text), 'has an SKI');
  t.not(ski(text), ski(rootText), 'its own key, not the root key');
  t.equal(aki(text), ski(rootText), 'AKI is the root SKI');
  t.equal(verify(file(root, 'ca.crt'), file(inter, 'ca.crt')).status, 0, 'openssl verifies it against the root');
  t.equal(mode(file(inter, 'ca.key')), 0o600);
  keyMatches(t, file(inter, 'ca.key'), file(inter, 'ca.crt'));
  t.equal(
    x509Date(file(inter, 'ca.crt'), 'enddate').getTime(),
    x509Date(file(root, 'ca.crt'), 'enddate').getTime(),
    'the default 8760h from the same instant ends with the root',
  );
});

t.test('workload certificate (EC) from the intermediate: an X509-SVID by the book', async (t) => {
  t.match(runs.leafEc.out[0], /^meshlet ca issue: certificate for spiffe:\/\/cluster\.local\/ns\/default\/sa\/web \(ECDSA P-256\) written to .*leaf-ec \(tls\.crt, tls\.key, ca\.crt\); valid until /);
  t.same(readdirSync(leafEc).sort(), ['ca.crt', 'tls.crt', 'tls.key']);
  const chain = pemBlocks(file(leafEc, 'tls.crt'));
  t.equal(chain.length, 2, 'tls.crt: the leaf and the intermediate');
  t.equal(chain[1], readFileSync(file(inter, 'ca.crt'), 'utf8'), 'the second certificate is the intermediate');
  t.notOk(chain.includes(readFileSync(file(root, 'ca.crt'), 'utf8')), 'the root is not in tls.crt');
  t.equal(readFileSync(file(leafEc, 'ca.crt'), 'utf8'), readFileSync(file(root, 'ca.crt'), 'utf8'), 'ca.crt is the root (trust anchor)');

  const text = certText(chain[0]!);
  t.equal(field(text, 'Subject'), '', 'empty subject: the identity is the URI SAN');
  t.same(extension(text, 'X509v3 Subject Alternative Name'), { critical: true, value: `URI:${ID}` }, 'exactly one SAN, the SPIFFE ID, critical');
  t.equal(text.match(/URI:/g)?.length, 1, 'exactly one URI anywhere in the certificate');
  t.same(extension(text, 'X509v3 Basic Constraints'), { critical: true, value: 'CA:FALSE' });
  t.same(extension(text, 'X509v3 Key Usage'), { critical: true, value: 'Digital Signature' });
  t.same(extension(text, 'X509v3 Extended Key Usage'), { critical: false, value: 'TLS Web Server Authentication, TLS Web Client Authentication' });
  t.equal(extension(text, 'X509v3 Name Constraints'), undefined, 'no name constraints on a leaf');
  t.ok(ski(text), 'has an SKI');
  t.equal(aki(text), ski(certText(file(inter, 'ca.crt'))), 'AKI is the intermediate SKI');
  t.match(text, /ASN1 OID: prime256v1/, 'ECDSA P-256 key');

  const [leafFile, interFile] = splitPem(file(leafEc, 'tls.crt'), dir);
  const ok = verify(file(leafEc, 'ca.crt'), leafFile!, interFile!);
  t.equal(ok.status, 0, `openssl verify -x509_strict: ${ok.stdout}${ok.stderr}`);
  t.equal(verify(file(leafEc, 'ca.crt'), leafFile!, interFile!, ['-purpose', 'sslserver']).status, 0, 'good for a TLS server');
  t.equal(verify(file(leafEc, 'ca.crt'), leafFile!, interFile!, ['-purpose', 'sslclient']).status, 0, 'good for a TLS client');
  const noChain = verify(file(leafEc, 'ca.crt'), leafFile!);
  t.not(noChain.status, 0, 'without the intermediate, openssl cannot build the chain');
  t.match(noChain.stdout + noChain.stderr, /unable to get local issuer certificate/);

  const serial = x509Value(leafFile!, 'serial');
  t.match(serial, /^[4-7][0-9A-F]{31}$/, 'serial: 16 bytes, positive (top bit clear), first byte non-zero');
  t.equal(x509Date(leafFile!, 'startdate').getTime(), now.getTime() - 5 * 60_000, 'notBefore backdated 5 minutes');
  t.equal(x509Date(leafFile!, 'enddate').getTime(), now.getTime() + 24 * HOUR, 'default lifetime 24h');

  t.equal(mode(file(leafEc, 'tls.key')), 0o600, 'tls.key is 0600');
  t.equal(mode(file(leafEc, 'tls.crt')), 0o644);
  t.equal(mode(file(leafEc, 'ca.crt')), 0o644);
  t.match(readFileSync(file(leafEc, 'tls.key'), 'utf8'), /^-----BEGIN PRIVATE KEY-----\n[\s\S]+-----END PRIVATE KEY-----\n$/, 'PKCS#8 PEM, one key');
  keyMatches(t, file(leafEc, 'tls.key'), leafFile!);
});

t.test('workload certificate (RSA): RSA 2048, keyEncipherment too, --ttl honoured', async (t) => {
  t.match(runs.leafRsa.out[0], /\(RSA 2048\)/);
  const [leafFile, interFile] = splitPem(file(leafRsa, 'tls.crt'), dir);
  const text = certText(leafFile!);
  t.match(text, /Public Key Algorithm: rsaEncryption/);
  t.match(text, /Public-Key: \(2048 bit\)/);
  t.match(text, /Signature Algorithm: ecdsa-with-SHA256/, 'signed by the EC intermediate');
  t.same(extension(text, 'X509v3 Key Usage'), { critical: true, value: 'Digital Signature, Key Encipherment' });
  t.same(extension(text, 'X509v3 Basic Constraints'), { critical: true, value: 'CA:FALSE' });
  t.same(extension(text, 'X509v3 Extended Key Usage'), { critical: false, value: 'TLS Web Server Authentication, TLS Web Client Authentication' });
  t.same(extension(text, 'X509v3 Subject Alternative Name'), { critical: true, value: `URI:${ID}` });
  t.equal(aki(text), ski(certText(file(inter, 'ca.crt'))));
  t.equal(x509Date(leafFile!, 'enddate').getTime(), now.getTime() + 1.5 * HOUR, '--ttl 1h30m');
  const ok = verify(file(leafRsa, 'ca.crt'), leafFile!, interFile!, ['-purpose', 'sslserver']);
  t.equal(ok.status, 0, `openssl verify: ${ok.stdout}${ok.stderr}`);
  t.equal(mode(file(leafRsa, 'tls.key')), 0o600);
  t.match(readFileSync(file(leafRsa, 'tls.key'), 'utf8'), /^-----BEGIN PRIVATE KEY-----\n/);
  keyMatches(t, file(leafRsa, 'tls.key'), leafFile!);
});

t.test('workload certificate straight from the root: tls.crt is the leaf alone', async (t) => {
  const chain = pemBlocks(file(leafFromRoot, 'tls.crt'));
  t.equal(chain.length, 1, 'no intermediate to send, and never the root');
  t.equal(aki(certText(chain[0]!)), ski(certText(file(root, 'ca.crt'))), 'AKI is the root SKI');
  t.equal(verify(file(leafFromRoot, 'ca.crt'), file(leafFromRoot, 'tls.crt')).status, 0);
});

t.test('RSA CAs (--key rsa) sign with sha256WithRSAEncryption', async (t) => {
  const rsaRoot = path.join(dir, 'rsa-root');
  const rsaInter = path.join(dir, 'rsa-inter');
  const rsaLeaf = path.join(dir, 'rsa-leaf');
  await caOk(['init', '--out', rsaRoot, '--key', 'rsa']);
  await caOk(['init', '--root', rsaRoot, '--out', rsaInter, '--key', 'rsa']);
  await caOk(['issue', '--ca', rsaInter, '--spiffe-id', ID, '--out', rsaLeaf]);
  const [leafFile, interFile] = splitPem(file(rsaLeaf, 'tls.crt'), dir);
  t.match(certText(file(rsaRoot, 'ca.crt')), /Public-Key: \(2048 bit\)/);
  t.match(certText(leafFile!), /Signature Algorithm: sha256WithRSAEncryption/);
  t.match(certText(leafFile!), /ASN1 OID: prime256v1/, 'the leaf key is still EC by default');
  const ok = verify(file(rsaLeaf, 'ca.crt'), leafFile!, interFile!);
  t.equal(ok.status, 0, `openssl verify: ${ok.stdout}${ok.stderr}`);
});

t.test('another trust domain, with an underscore (valid in SPIFFE, not in PrintableString)', async (t) => {
  const tdRoot = path.join(dir, 'td-root');
  const tdLeaf = path.join(dir, 'td-leaf');
  await caOk(['init', '--out', tdRoot, '--trust-domain', 'prod_eu.example.com']);
  await caOk(['issue', '--ca', tdRoot, '--spiffe-id', 'spiffe://prod_eu.example.com/ns/shop/sa/cart', '--out', tdLeaf]);
  const text = certText(file(tdRoot, 'ca.crt'));
  t.equal(field(text, 'Subject'), 'O = prod_eu.example.com, CN = meshlet root CA');
  t.same(extension(text, 'X509v3 Name Constraints'), { critical: true, value: 'Permitted:\nURI:prod_eu.example.com' });
  const ok = verify(file(tdLeaf, 'ca.crt'), file(tdLeaf, 'tls.crt'));
  t.equal(ok.status, 0, `openssl verify: ${ok.stdout}${ok.stderr}`);
});

t.test('serial numbers are random: no two certificates share one', async (t) => {
  const serials = [file(root, 'ca.crt'), file(inter, 'ca.crt'), file(leafEc, 'tls.crt'), file(leafRsa, 'tls.crt'), file(leafFromRoot, 'tls.crt')].map((f) =>
    x509Value(f, 'serial'),
  );
  t.equal(new Set(serials).size, serials.length, serials.join(' '));
});

t.test('--force writes over an earlier issue, with a new key', async (t) => {
  const again = path.join(dir, 'again');
  await caOk(['issue', '--ca', inter, '--spiffe-id', ID, '--out', again]);
  const firstKey = readFileSync(file(again, 'tls.key'), 'utf8');
  writeFileSync(file(again, 'unrelated.txt'), 'kept');
  const refused = await ca(['issue', '--ca', inter, '--spiffe-id', ID, '--out', again]);
  t.equal(refused.code, 2, 'refused without --force');
  t.equal(readFileSync(file(again, 'tls.key'), 'utf8'), firstKey, 'nothing was changed');
  await caOk(['issue', '--ca', inter, '--spiffe-id', ID, '--out', again, '--force']);
  t.not(readFileSync(file(again, 'tls.key'), 'utf8'), firstKey, 'a new key');
  t.equal(mode(file(again, 'tls.key')), 0o600, 'still 0600');
  t.equal(readFileSync(file(again, 'unrelated.txt'), 'utf8'), 'kept', 'other files are left alone');
  t.same(readdirSync(again).filter((n) => n.includes('.tmp')), [], 'no temporary files left');
  keyMatches(t, file(again, 'tls.key'), file(again, 'tls.crt'));
});

t.test('a root written with --force over an intermediate directory drops the stale root.crt', async (t) => {
  const reused = path.join(dir, 'reused');
  await caOk(['init', '--root', root, '--out', reused]);
  t.same(readdirSync(reused).sort(), ['ca.crt', 'ca.key', 'root.crt']);
  await caOk(['init', '--out', reused, '--force', '--trust-domain', 'other.example']);
  t.same(readdirSync(reused).sort(), ['ca.crt', 'ca.key'], 'a root directory again');
  const leaf = path.join(dir, 'reused-leaf');
  await caOk(['issue', '--ca', reused, '--spiffe-id', 'spiffe://other.example/ns/x/sa/y', '--out', leaf]);
  t.equal(verify(file(leaf, 'ca.crt'), file(leaf, 'tls.crt')).status, 0, 'and it works as one');
});

t.test("Node's TLS accepts the files for mutual TLS (server and client identities from the same CA)", async (t) => {
  const client = path.join(dir, 'tls-client');
  await caOk(['issue', '--ca', inter, '--spiffe-id', 'spiffe://cluster.local/ns/default/sa/client', '--out', client]);
  const read = (d: string, n: string) => readFileSync(file(d, n));
  const server = tls.createServer(
    { cert: read(leafEc, 'tls.crt'), key: read(leafEc, 'tls.key'), ca: read(leafEc, 'ca.crt'), requestCert: true, rejectUnauthorized: true },
    (socket) => socket.end(`hello ${socket.getPeerCertificate().subjectaltname}`),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  const port = (server.address() as { port: number }).port;
  const { reply, peer } = await new Promise<{ reply: string; peer: string | undefined }>((resolve, reject) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      cert: read(client, 'tls.crt'),
      key: read(client, 'tls.key'),
      ca: read(client, 'ca.crt'),
      // SPIFFE peers are checked by their URI SAN, not a hostname.
      checkServerIdentity: () => undefined,
    });
    let data = '';
    socket.setEncoding('utf8').on('data', (d: string) => (data += d));
    socket.on('error', reject);
    socket.on('end', () => resolve({ reply: data, peer: socket.getPeerCertificate().subjectaltname }));
  });
  t.equal(peer, `URI:${ID}`, 'the client sees the server SPIFFE ID');
  t.equal(reply, 'hello URI:spiffe://cluster.local/ns/default/sa/client', 'the server sees the client SPIFFE ID');
});
