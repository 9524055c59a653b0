import { X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync, copyFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import t, { type Test } from 'tap';
import { loadConfig } from '../../../src/config/load.ts';
import { isMeshletError } from '../../../src/errors.ts';
import { startProxy } from '../../../src/proxy/proxy.ts';
import { loadIdentity, type Identity } from '../../../src/tls/identity.ts';
import type { MeshPeer } from '../../../src/tls/mesh-peers.ts';
import { proxyPorts } from '../../helpers/ports.ts';
import { caOk, openssl, tempDir, verify } from '../tls/ca-helpers.ts';
import { captureLog, collect, connectPlain, echoApp, listen, makeIdentity, metric, mtlsClient, sClient, sidecar, type App, type Sidecar } from './mtls-harness.ts';

// Mutual TLS between two sidecars on loopback, with real TLS 1.3 and certificates made
// by `meshlet ca`: an app's connection enters the outbound stack (as if redirected from
// 15001), crosses to the inbound stack (as if redirected to 15006) over meshlet's mTLS,
// and reaches the app. Each bad certificate, mode and authorization rule is tried in the
// direction where it applies, and every bad case is followed by a good connection.

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const TD = 'cluster.local';
const SERVER_ID = `spiffe://${TD}/ns/b/sa/server`;
const CLIENT_ID = `spiffe://${TD}/ns/a/sa/client`;

const root = tempDir();
const past = new Date(Date.now() - 30 * DAY);
const caDir = path.join(root, 'ca');
await caOk(['init', '--out', caDir, '--ttl', '8760h'], past);
const caFile = path.join(caDir, 'ca.crt');
/** Same trust domain, different keys: a CA we do not trust. */
const otherCaDir = path.join(root, 'other-ca');
await caOk(['init', '--out', otherCaDir]);
/** Another trust domain, which a federated trust bundle may trust. */
const foreignCaDir = path.join(root, 'foreign-ca');
await caOk(['init', '--out', foreignCaDir, '--trust-domain', 'other.example']);

const serverDir = await makeIdentity(root, caDir, 'server', SERVER_ID);
const clientDir = await makeIdentity(root, caDir, 'client', CLIENT_ID);
const wrongCaServerDir = await makeIdentity(root, otherCaDir, 'wrong-ca-server', SERVER_ID);
const wrongCaClientDir = await makeIdentity(root, otherCaDir, 'wrong-ca-client', CLIENT_ID);
// Issued 10 days ago for 24 h: expired now, valid when `then` was.
const then = new Date(Date.now() - 10 * DAY);
const expiredServerDir = await makeIdentity(root, caDir, 'expired-server', SERVER_ID, { now: then, ttl: '24h' });
const expiredClientDir = await makeIdentity(root, caDir, 'expired-client', CLIENT_ID, { now: then, ttl: '24h' });
const foreignClientDir = await makeIdentity(root, foreignCaDir, 'foreign-client', 'spiffe://other.example/ns/a/sa/client');

/** Loads an identity as of `at` (the proxy itself refuses expired files; a peer's proxy may not). */
const identityAt = (dir: string, at: Date): (() => Identity) => {
  const identity = loadIdentity(dir, at);
  return () => identity;
};
const expiredAt = new Date(then.getTime() + HOUR);

/** Our server identity, trusting both our CA and the foreign trust domain's (a federated bundle). */
const federatedServerDir = path.join(root, 'federated-server');
mkdirSync(federatedServerDir);
copyFileSync(path.join(serverDir, 'tls.crt'), path.join(federatedServerDir, 'tls.crt'));
copyFileSync(path.join(serverDir, 'tls.key'), path.join(federatedServerDir, 'tls.key'));
writeFileSync(path.join(federatedServerDir, 'ca.crt'), readFileSync(caFile, 'utf8') + readFileSync(path.join(foreignCaDir, 'ca.crt'), 'utf8'));

/** A client certificate signed with our CA's key by openssl, bypassing `meshlet ca issue`'s checks. */
function forgedWithOurCa(name: string, subjectAltName: string): string {
  const dir = path.join(root, name);
  mkdirSync(dir);
  const key = path.join(dir, 'tls.key');
  const csr = path.join(dir, 'req.csr');
  const ext = path.join(dir, 'ext.cnf');
  writeFileSync(ext, `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth,serverAuth\nsubjectAltName=${subjectAltName}\n`);
  for (const args of [
    ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=client', '-keyout', key, '-out', csr],
    ['x509', '-req', '-in', csr, '-CA', caFile, '-CAkey', path.join(caDir, 'ca.key'), '-CAcreateserial', '-days', '1', '-extfile', ext, '-out', path.join(dir, 'tls.crt')],
  ]) {
    const r = openssl(args);
    if (r.status !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr}`);
  }
  copyFileSync(caFile, path.join(dir, 'ca.crt'));
  return dir;
}
/** Our CA's signature, but no SPIFFE ID (a DNS name only). */
const noSpiffeClientDir = forgedWithOurCa('no-spiffe-client', 'DNS:client.a.svc');
/** Our CA's signature on an ID of another trust domain: the CA's name constraint forbids it. */
const outsideConstraintClientDir = forgedWithOurCa('outside-constraint-client', 'critical,URI:spiffe://other.example/ns/a/sa/client');

t.test('the forged certificates are what they claim to be (openssl verify)', async (t) => {
  t.equal(verify(caFile, path.join(noSpiffeClientDir, 'tls.crt')).status, 0, 'no SPIFFE ID: a valid chain');
  const outside = verify(caFile, path.join(outsideConstraintClientDir, 'tls.crt'));
  t.not(outside.status, 0);
  t.match(outside.stdout + outside.stderr, /permitted subtree violation/, 'another trust domain: refused by the name constraint');
});

const meshPeer: MeshPeer = { trustDomain: TD };
const serial = (dir: string) => new X509Certificate(readFileSync(path.join(dir, 'tls.crt'))).serialNumber;

type Tap = Pick<Test, 'teardown'>;
async function up(t: Tap, direction: 'inbound' | 'outbound', target: () => number, options: Parameters<typeof sidecar>[2]): Promise<Sidecar> {
  const s = await sidecar(direction, target, options);
  t.teardown(() => s.close());
  return s;
}
async function app(t: Tap, options: Parameters<typeof echoApp>[0] = {}): Promise<App> {
  const a = await echoApp(options);
  t.teardown(() => a.close());
  return a;
}

/** A good connection through `outbound` (app → outbound → inbound → echo app): the proxies still serve. */
async function stillServes(t: Test, outboundPort: number, what: string): Promise<void> {
  const client = connectPlain(outboundPort);
  client.end(`still serving after ${what}`);
  const got = await collect(client);
  t.equal(got.data.toString(), `still serving after ${what}`, `a good connection still works after ${what}`);
}

/** The warn lines with this message. */
const warnings = (s: Sidecar, msg: string) => s.lines.filter((l) => l.level === 40 && l.msg === msg);

// ---------------------------------------------------------------------------------------

t.test('happy path: app → outbound → mTLS → inbound → app, both ways, half-close, labelled mutual_tls', async (t) => {
  const echo = await app(t, { afterEnd: true });
  const inbound = await up(t, 'inbound', () => echo.port, { identityDir: serverDir });
  // A tap between the sidecars records what crosses the "network".
  const wire: Buffer[] = [];
  const wireBack: Buffer[] = [];
  const relay = net.createServer({ allowHalfOpen: true }, (down) => {
    const upSock = net.connect({ port: inbound.port, host: '127.0.0.1', allowHalfOpen: true });
    down.on('data', (d: Buffer) => wire.push(d));
    upSock.on('data', (d: Buffer) => wireBack.push(d));
    down.pipe(upSock);
    upSock.pipe(down);
    down.on('error', () => upSock.destroy());
    upSock.on('error', () => down.destroy());
  });
  const relayPort = await listen(relay);
  t.teardown(() => relay.close());
  const outbound = await up(t, 'outbound', () => relayPort, { identityDir: clientDir, peer: meshPeer });

  const payload = Buffer.concat([Buffer.from('MESHLET-PLAINTEXT-MARKER:'), Buffer.alloc(256 * 1024, 'x'), Buffer.from(':END')]);
  const client = connectPlain(outbound.port);
  const got = collect(client);
  client.end(payload); // half-close: the app answers everything only after our FIN, then closes
  const result = await got;
  t.equal(result.error, undefined, 'no error on the client');
  t.ok(result.data.equals(payload), 'the client gets back every byte it sent, after its own FIN');
  t.equal(echo.connections, 1);
  t.ok(echo.received[0]!.equals(payload), 'the app received the bytes unchanged');

  const onWire = Buffer.concat(wire);
  t.equal(onWire[0], 0x16, 'what crosses between the sidecars starts with a TLS handshake record');
  t.equal(onWire.indexOf('MESHLET-PLAINTEXT-MARKER'), -1, 'and never shows the plaintext');
  t.ok(onWire.length > payload.length, 'all of it crossed, encrypted');
  const back = Buffer.concat(wireBack);
  t.equal(back.indexOf('MESHLET-PLAINTEXT-MARKER'), -1, 'the answer crossed encrypted too');
  t.ok(back.length > payload.length);

  const [out, inn] = await Promise.all([outbound.outcomes[0]!, inbound.outcomes[0]!]);
  t.same(out, { receivedBytes: payload.length, sentBytes: payload.length, flag: '-' });
  t.same(inn, { receivedBytes: payload.length, sentBytes: payload.length, flag: '-' });

  for (const [side, reporter] of [[outbound, 'source'], [inbound, 'destination']] as const) {
    const labels = { reporter, connection_security_policy: 'mutual_tls' };
    t.equal(await metric(side.registry, 'meshlet_tcp_connections_opened_total', labels), 1, `${reporter}: opened, mutual_tls`);
    t.equal(await metric(side.registry, 'meshlet_tcp_connections_closed_total', { ...labels, response_flags: '-' }), 1, `${reporter}: closed, mutual_tls, no flag`);
    t.equal(await metric(side.registry, 'meshlet_tcp_connections_opened_total', { connection_security_policy: 'none' }), 0, `${reporter}: nothing as none`);
    t.equal(await metric(side.registry, 'meshlet_tcp_received_bytes_total', labels), payload.length, `${reporter}: received bytes (plaintext)`);
    t.equal(await metric(side.registry, 'meshlet_tcp_sent_bytes_total', labels), payload.length, `${reporter}: sent bytes (plaintext)`);
  }
});

t.test('the client certificate carries our SPIFFE ID to the inbound side; the server certificate the server ID', async (t) => {
  const echo = await app(t);
  const inbound = await up(t, 'inbound', () => echo.port, {
    identityDir: serverDir,
    // Only our client's exact principal is allowed: a connection that gets through proves the inbound side read it.
    env: { MESHLET_INBOUND_AUTHORIZATION: `[{action: allow, principals: ["${CLIENT_ID}"]}, {action: deny}]` },
  });
  const outbound = await up(t, 'outbound', () => inbound.port, { identityDir: clientDir, peer: { trustDomain: TD, spiffeId: SERVER_ID } });
  await stillServes(t, outbound.port, 'nothing');

  const direct = mtlsClient(inbound.port, clientDir, caFile);
  const got = collect(direct);
  await new Promise((r) => direct.once('secureConnect', r));
  t.equal(direct.alpnProtocol, 'meshlet/tcp');
  t.equal(direct.getProtocol(), 'TLSv1.3');
  // Read once: on a client socket, Node 24 answers a second getPeerX509Certificate() with undefined.
  const cert = direct.getPeerX509Certificate();
  t.equal(cert?.subjectAltName, `URI:${SERVER_ID}`);
  t.equal(cert?.serialNumber, serial(serverDir));
  direct.end('direct');
  t.equal((await got).data.toString(), 'direct');
});

// ---------------------------------------------------------------------------------------
// The outbound side checks the server.

/** A TLS server that is not a sidecar: a valid identity of our mesh, but no meshlet ALPN. */
async function notASidecar(t: Tap, echo: App): Promise<number> {
  const file = (name: string) => readFileSync(path.join(serverDir, name));
  const server = tls.createServer({ cert: file('tls.crt'), key: file('tls.key'), ca: file('ca.crt'), requestCert: true, allowHalfOpen: true }, (s) => s.pipe(net.connect(echo.port, '127.0.0.1')).pipe(s));
  t.teardown(() => server.close());
  return listen(server);
}

type ServerUnderTest = { identityDir?: string; identity?: () => Identity } | ((t: Tap, echo: App) => Promise<number>);
const outboundRejections: Array<{ name: string; server: ServerUnderTest; peer: MeshPeer; expected: string; err: RegExp }> = [
  { name: 'a server certificate from another CA', server: { identityDir: wrongCaServerDir }, peer: meshPeer, expected: `trust domain ${TD}`, err: /unable to verify|self.signed|issuer/i },
  { name: 'an expired server certificate', server: { identity: identityAt(expiredServerDir, expiredAt) }, peer: meshPeer, expected: `trust domain ${TD}`, err: /expired/i },
  {
    name: 'a server with another SPIFFE ID than the expected one',
    server: { identityDir: serverDir },
    peer: { trustDomain: TD, spiffeId: `spiffe://${TD}/ns/b/sa/not-the-server` },
    expected: `spiffe://${TD}/ns/b/sa/not-the-server`,
    err: new RegExp(`peer is ${SERVER_ID}, expected spiffe://${TD}/ns/b/sa/not-the-server`),
  },
  {
    name: 'a server outside the expected trust domain',
    server: { identityDir: serverDir },
    peer: { trustDomain: 'other.example' },
    expected: 'trust domain other.example',
    err: new RegExp(`peer is ${SERVER_ID}, outside trust domain other.example`),
  },
  { name: 'a TLS server with a good certificate that does not speak meshlet ALPN', server: notASidecar, peer: meshPeer, expected: `trust domain ${TD}`, err: /peer did not accept ALPN meshlet\/tcp/ },
];

for (const c of outboundRejections) {
  t.test(`outbound refuses ${c.name}: the app's connection is reset, UF mtls_handshake, the app behind sees nothing`, async (t) => {
    const echo = await app(t);
    const badPort = typeof c.server === 'function' ? await c.server(t, echo) : (await up(t, 'inbound', () => echo.port, c.server)).port;
    const goodInbound = await up(t, 'inbound', () => echo.port, { identityDir: serverDir });
    let target = badPort;
    let peer = c.peer;
    const outbound = await up(t, 'outbound', () => target, { identityDir: clientDir, peer: () => peer });

    const client = connectPlain(outbound.port);
    client.write('secret request');
    const got = await collect(client);
    t.equal(got.data.length, 0, 'the client gets no byte');
    t.equal(got.error, 'ECONNRESET', 'the client sees a reset, as for a refused connection');
    t.match(await outbound.outcomes[0]!, { sentBytes: 0, flag: 'UF', reason: 'mtls_handshake' }, 'flagged UF, reason mtls_handshake');
    const warn = warnings(outbound, 'outbound mTLS handshake failed');
    t.equal(warn.length, 1, 'one warning');
    t.equal(warn[0]?.expected, c.expected, 'naming what was expected');
    t.match(String(warn[0]?.err), c.err, 'and why the server was refused');
    t.equal(warn[0]?.dst, `127.0.0.1:${badPort}`);
    t.equal(await metric(outbound.registry, 'meshlet_tcp_connections_closed_total', { reporter: 'source', connection_security_policy: 'mutual_tls', response_flags: 'UF' }), 1);
    t.equal(echo.received.join(''), '', 'the app behind the refused server received nothing');
    if (typeof c.server !== 'function') t.equal(echo.connections, 0, 'not even a connection');
    const before = echo.connections;

    // The same sidecar keeps serving: a good server, as expected, is accepted.
    target = goodInbound.port;
    peer = meshPeer;
    await stillServes(t, outbound.port, c.name);
    t.equal(echo.connections, before + 1);
  });
}

// ---------------------------------------------------------------------------------------
// The inbound side checks the client.

/** An identity directory: `from`'s certificate and key, trusting the CAs in `trusts` (ca.crt files). */
function bundle(name: string, from: string, trusts: string[]): string {
  const dir = path.join(root, name);
  mkdirSync(dir);
  copyFileSync(path.join(from, 'tls.crt'), path.join(dir, 'tls.crt'));
  copyFileSync(path.join(from, 'tls.key'), path.join(dir, 'tls.key'));
  writeFileSync(path.join(dir, 'ca.crt'), trusts.map((f) => readFileSync(f, 'utf8')).join(''));
  return dir;
}
/** A client from another CA that trusts our server (it has both CAs in its bundle): only the inbound check can stop it. */
const wrongCaClientTrustingUs = bundle('wrong-ca-client-trusting-us', wrongCaClientDir, [path.join(otherCaDir, 'ca.crt'), caFile]);

type ClientUnderTest =
  | { via: 'outbound'; identity: () => Identity }
  | { via: 'direct'; identityDir: string | undefined };
const inboundRejections: Array<{ name: string; client: ClientUnderTest; server?: string; err: RegExp }> = [
  { name: 'a client certificate from another CA (peer sidecar)', client: { via: 'outbound', identity: () => loadIdentity(wrongCaClientTrustingUs) }, err: /client certificate rejected: (UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN)/ },
  { name: 'a client certificate from another CA (direct client)', client: { via: 'direct', identityDir: wrongCaClientDir }, err: /client certificate rejected: UNABLE_TO_VERIFY_LEAF_SIGNATURE/ },
  { name: 'an expired client certificate (peer sidecar)', client: { via: 'outbound', identity: identityAt(expiredClientDir, expiredAt) }, err: /client certificate rejected: CERT_HAS_EXPIRED/ },
  { name: 'no client certificate', client: { via: 'direct', identityDir: undefined }, err: /client certificate rejected: none presented/ },
  {
    name: 'a client of a trusted CA outside our trust domain (federated bundle)',
    client: { via: 'direct', identityDir: foreignClientDir },
    server: federatedServerDir,
    err: /peer is spiffe:\/\/other\.example\/ns\/a\/sa\/client, outside trust domain cluster\.local/,
  },
  {
    name: "a client certificate signed by our CA's key for another trust domain (name constraint)",
    client: { via: 'direct', identityDir: outsideConstraintClientDir },
    // Node has no name for X509_V_ERR_PERMITTED_VIOLATION and reports UNSPECIFIED (openssl verify: see below).
    err: /client certificate rejected: (PERMITTED_SUBTREE_VIOLATION|UNSPECIFIED)/,
  },
  { name: 'a client certificate of our CA without a SPIFFE ID', client: { via: 'direct', identityDir: noSpiffeClientDir }, err: /peer certificate has no single SPIFFE URI SAN/ },
];

for (const c of inboundRejections) {
  t.test(`inbound refuses ${c.name}: closed after the handshake, refused{reason="mtls_handshake"}, the app sees nothing`, async (t) => {
    const echo = await app(t);
    const inbound = await up(t, 'inbound', () => echo.port, { identityDir: c.server ?? serverDir });
    const refused = () => metric(inbound.registry, 'meshlet_proxy_connections_refused_total', { reporter: 'destination', reason: 'mtls_handshake' });

    let client: net.Socket;
    if (c.client.via === 'outbound') {
      const outbound = await up(t, 'outbound', () => inbound.port, { identity: c.client.identity, peer: meshPeer });
      client = connectPlain(outbound.port);
    } else {
      client = mtlsClient(inbound.port, c.client.identityDir, caFile);
    }
    client.end('secret request');
    const got = await collect(client);
    t.equal(got.data.length, 0, 'the client gets no byte');
    t.match(await inbound.outcomes[0]!, { receivedBytes: 0, sentBytes: 0, reason: 'mtls_handshake' });
    t.equal(await refused(), 1, 'counted as refused, reason mtls_handshake');
    const warn = warnings(inbound, 'inbound mTLS handshake failed');
    t.equal(warn.length, 1, 'one warning');
    t.match(String(warn[0]?.err), c.err, 'naming the reason');
    t.equal(warn[0]?.port, echo.port, 'and the app port');
    t.equal(echo.connections, 0, 'the app received no connection');
    t.equal(await metric(inbound.registry, 'meshlet_tcp_connections_opened_total'), 0, 'a refused connection is not counted as opened');

    // The next good connection is served.
    const good = mtlsClient(inbound.port, clientDir, caFile);
    good.end('next');
    t.equal((await collect(good)).data.toString(), 'next', 'the next good connection is served');
    t.equal(echo.connections, 1);
    t.equal(await refused(), 1);
  });
}

// ---------------------------------------------------------------------------------------
// inbound.mtls: strict, permissive, disable, perPort, and the detect timeout.

/** The app's own TLS: a self-signed certificate for app.example, made by openssl, not by meshlet. */
const appTlsDir = path.join(root, 'app-tls');
mkdirSync(appTlsDir);
const appCert = path.join(appTlsDir, 'app.crt');
const appKey = path.join(appTlsDir, 'app.key');
{
  const r = openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=app.example', '-addext', 'subjectAltName=DNS:app.example', '-keyout', appKey, '-out', appCert, '-days', '1']);
  if (r.status !== 0) throw new Error(`openssl req failed: ${r.stderr}`);
}
const appFingerprint = new X509Certificate(readFileSync(appCert)).fingerprint256;
async function tlsApp(t: Tap): Promise<App> {
  return app(t, { server: tls.createServer({ cert: readFileSync(appCert), key: readFileSync(appKey), ALPNProtocols: ['h2', 'http/1.1'], allowHalfOpen: true }) });
}
/** A client of the app's own TLS (it knows nothing of the mesh). */
function appTlsClient(port: number, alpn: string[] | undefined): tls.TLSSocket {
  return tls.connect({ port, host: '127.0.0.1', servername: 'app.example', ca: readFileSync(appCert), ...(alpn ? { ALPNProtocols: alpn } : {}) });
}

const MODE_ENV = { MESHLET_INBOUND_DETECT_TIMEOUT: '200ms' };
const refusedFor = (s: Sidecar, reason: string) => metric(s.registry, 'meshlet_proxy_connections_refused_total', { reporter: 'destination', reason });

t.test('strict: plaintext, the app\'s own TLS and a silent client are reset (mtls_required); mTLS is served', async (t) => {
  const echo = await app(t);
  const inbound = await up(t, 'inbound', () => echo.port, { identityDir: serverDir, env: { ...MODE_ENV, MESHLET_INBOUND_MTLS: 'strict' } });

  const plain = connectPlain(inbound.port);
  plain.write('GET / HTTP/1.1\r\nhost: b\r\n\r\n');
  const plainResult = await collect(plain);
  t.equal(plainResult.error, 'ECONNRESET', 'plaintext: reset');
  t.equal(plainResult.data.length, 0);
  t.same(await inbound.outcomes[0]!, { receivedBytes: 0, sentBytes: 0, flag: 'RBAC', reason: 'mtls_required' });

  const ownTls = appTlsClient(inbound.port, ['h2']);
  const ownTlsResult = await collect(ownTls);
  t.notOk(ownTlsResult.events.includes('secure'), "the app's own TLS: no handshake");
  t.ok(ownTlsResult.error, `the app's own TLS: the client fails (${ownTlsResult.error})`);

  const silent = connectPlain(inbound.port); // sends nothing: after the detect timeout it is plaintext
  const silentResult = await collect(silent);
  t.equal(silentResult.error, 'ECONNRESET', 'a silent client: reset once the detect timeout passed');

  t.equal(await refusedFor(inbound, 'mtls_required'), 3, 'three refusals counted, reason mtls_required');
  const refusals = warnings(inbound, 'inbound connection refused');
  t.same(refusals.map((l) => [l.reason, l.arrived, l.port]), [
    ['mtls_required', 'plaintext', echo.port],
    ['mtls_required', 'other-tls', echo.port],
    ['mtls_required', 'plaintext', echo.port],
  ]);
  t.equal(echo.connections, 0, 'the app saw none of them');

  const good = mtlsClient(inbound.port, clientDir, caFile);
  good.end('mtls');
  t.equal((await collect(good)).data.toString(), 'mtls', 'a mesh client is served');
  t.equal(await metric(inbound.registry, 'meshlet_tcp_connections_opened_total', { connection_security_policy: 'mutual_tls' }), 1);
});

t.test("permissive: plaintext is passed as none, mTLS is terminated, the app's own TLS passes through untouched", async (t) => {
  const echo = await app(t);
  const secureApp = await tlsApp(t);
  let target = echo.port;
  const inbound = await up(t, 'inbound', () => target, { identityDir: serverDir, env: { ...MODE_ENV, MESHLET_INBOUND_MTLS: 'permissive' } });

  const plain = connectPlain(inbound.port);
  plain.end('plain bytes');
  t.equal((await collect(plain)).data.toString(), 'plain bytes', 'plaintext reaches the app and back');
  t.equal(echo.received[0]?.toString(), 'plain bytes');
  t.equal(await metric(inbound.registry, 'meshlet_tcp_connections_opened_total', { connection_security_policy: 'none' }), 1, 'labelled none');

  const mesh = mtlsClient(inbound.port, clientDir, caFile);
  mesh.end('mesh bytes');
  t.equal((await collect(mesh)).data.toString(), 'mesh bytes', 'mTLS is terminated: the app gets plaintext');
  t.equal(echo.received[1]?.toString(), 'mesh bytes');
  t.equal(await metric(inbound.registry, 'meshlet_tcp_connections_opened_total', { connection_security_policy: 'mutual_tls' }), 1, 'labelled mutual_tls');

  target = secureApp.port;
  for (const alpn of [['h2'], undefined]) {
    const client = appTlsClient(inbound.port, alpn);
    const got = collect(client);
    await new Promise((r) => client.once('secureConnect', r));
    const cert = client.getPeerX509Certificate();
    t.equal(cert?.fingerprint256, appFingerprint, `ALPN ${alpn ?? 'none'}: the client sees the app's own certificate, not meshlet's`);
    t.equal(client.authorized, true, 'and verifies it against the app\'s CA');
    t.equal(client.alpnProtocol, alpn ? 'h2' : false, 'the ALPN the app chose');
    client.end(`tls bytes ${alpn ?? 'none'}`);
    t.equal((await got).data.toString(), `tls bytes ${alpn ?? 'none'}`, 'the app answers through the proxy');
  }
  t.same(secureApp.received.map(String), ['tls bytes h2', 'tls bytes none'], 'the app decrypted its own TLS itself');
  t.equal(await metric(inbound.registry, 'meshlet_tcp_connections_opened_total', { connection_security_policy: 'none' }), 3, "the app's own TLS is none to the mesh");
  t.equal(await metric(inbound.registry, 'meshlet_proxy_connections_refused_total'), 0, 'nothing refused');
});

t.test('permissive: a silent client of a server-first protocol gets the greeting once the detect timeout passed', async (t) => {
  const greeting = '220 mail.example ESMTP ready\r\n';
  const smtp = await app(t, { greeting });
  const inbound = await up(t, 'inbound', () => smtp.port, { identityDir: serverDir, env: { ...MODE_ENV, MESHLET_INBOUND_MTLS: 'permissive' } });
  const client = connectPlain(inbound.port);
  const got = collect(client);
  // Send nothing until the app has spoken.
  const first = await new Promise<Buffer>((r) => client.once('data', r));
  t.equal(first.toString(), greeting, 'the greeting arrives without the client sending a byte');
  client.end('QUIT\r\n');
  t.equal((await got).data.toString(), `${greeting}QUIT\r\n`);
  t.equal(smtp.received[0]?.toString(), 'QUIT\r\n');
  t.same(await inbound.outcomes[0]!, { receivedBytes: 6, sentBytes: greeting.length + 6, flag: '-' });
});

t.test('disable: meshlet never terminates; a mesh client reaches the app as raw TLS and fails', async (t) => {
  const raw = await app(t);
  const inbound = await up(t, 'inbound', () => raw.port, { identityDir: serverDir, env: { MESHLET_INBOUND_MTLS: 'disable' } });

  const direct = mtlsClient(inbound.port, clientDir, caFile);
  const directResult = await collect(direct);
  t.notOk(directResult.events.includes('secure'), 'no TLS handshake with the proxy');
  const hello = raw.received[0]!;
  t.equal(hello[0], 0x16, 'the app received the ClientHello itself');
  t.ok(hello.includes('meshlet/tcp'), "with meshlet's ALPN in it");

  const outbound = await up(t, 'outbound', () => inbound.port, { identityDir: clientDir, peer: meshPeer });
  const client = connectPlain(outbound.port);
  client.write('request');
  const result = await collect(client);
  t.equal(result.error, 'ECONNRESET', "the peer sidecar's handshake fails and its app is reset");
  t.match(await outbound.outcomes[0]!, { flag: 'UF', reason: 'mtls_handshake' });
  t.equal(raw.received[1]?.[0], 0x16, 'the app got that ClientHello too');
  t.notOk(raw.received.some((b) => b.includes('request')), 'never the plaintext');
  t.equal(await metric(inbound.registry, 'meshlet_tcp_connections_opened_total', { connection_security_policy: 'none' }), 2, 'inbound counted both as none');
  t.equal(await metric(inbound.registry, 'meshlet_proxy_connections_refused_total'), 0);

  const plain = connectPlain(inbound.port);
  plain.end('plain');
  t.equal((await collect(plain)).data.toString(), 'plain', 'plaintext passes');
});

t.test('perPort overrides the global mode, on its own port only', async (t) => {
  const p1 = await app(t);
  const p2 = await app(t);
  for (const [global, override] of [['strict', 'permissive'], ['permissive', 'strict']] as const) {
    let target = p1.port;
    const inbound = await up(t, 'inbound', () => target, {
      identityDir: serverDir,
      env: { ...MODE_ENV, MESHLET_INBOUND_MTLS: global, MESHLET_INBOUND_PER_PORT: `{"${p1.port}": {mtls: ${override}}}` },
    });
    const plainTo = async (port: number) => {
      target = port;
      const c = connectPlain(inbound.port);
      c.end(`to ${port}`);
      return collect(c);
    };
    const a = await plainTo(p1.port);
    const b = await plainTo(p2.port);
    const [passed, refused] = override === 'permissive' ? [a, b] : [b, a];
    const [passedPort, refusedPort] = override === 'permissive' ? [p1.port, p2.port] : [p2.port, p1.port];
    t.equal(passed.data.toString(), `to ${passedPort}`, `global ${global}, ${p1.port}: ${override}: plaintext to the permissive port passes`);
    t.equal(refused.error, 'ECONNRESET', `global ${global}, ${p1.port}: ${override}: plaintext to the strict port is reset`);
    const refusals = warnings(inbound, 'inbound connection refused');
    t.same(refusals.map((l) => l.port), [refusedPort], 'the refusal names the strict port');
  }
});

// ---------------------------------------------------------------------------------------
// inbound.authorization: ordered allow/deny rules on principal, namespace and port.

const who = {
  aClient: clientDir,
  aOther: await makeIdentity(root, caDir, 'a-other', `spiffe://${TD}/ns/a/sa/other`),
  abX: await makeIdentity(root, caDir, 'ab-x', `spiffe://${TD}/ns/ab/sa/x`),
  evil: await makeIdentity(root, caDir, 'evil', `spiffe://${TD}/ns/evil/sa/x`),
  bBlocked: await makeIdentity(root, caDir, 'b-blocked', `spiffe://${TD}/ns/b/sa/blocked`),
  bOther: await makeIdentity(root, caDir, 'b-other', `spiffe://${TD}/ns/b/sa/other`),
  plaintext: undefined,
} as const;
type Who = keyof typeof who;
const principalOf = (w: Who) => (w === 'plaintext' ? null : new X509Certificate(readFileSync(path.join(who[w]!, 'tls.crt'))).subjectAltName!.slice(4));

t.test('authorization: first matching rule decides; principal (exact and prefix), namespace, port; no match allows', async (t) => {
  const p1 = await app(t);
  const p2 = await app(t);
  let target = p1.port;
  const rules = [
    `{action: deny, namespaces: [evil]}`,
    `{action: deny, principals: ["spiffe://${TD}/ns/b/sa/blocked"]}`,
    `{action: allow, principals: ["spiffe://${TD}/ns/a/*"], ports: [${p1.port}]}`,
    `{action: deny, ports: [${p1.port}]}`,
  ];
  const inbound = await up(t, 'inbound', () => target, {
    identityDir: serverDir,
    env: { ...MODE_ENV, MESHLET_INBOUND_MTLS: 'permissive', MESHLET_INBOUND_AUTHORIZATION: `[${rules.join(', ')}]` },
  });
  const cases: Array<[port: 'p1' | 'p2', from: Who, rule: number | 'default', allowed: boolean]> = [
    ['p1', 'evil', 0, false],
    ['p2', 'evil', 0, false],
    ['p1', 'bBlocked', 1, false],
    ['p1', 'aClient', 2, true],
    ['p1', 'aOther', 2, true],
    ['p1', 'abX', 3, false], // ns/ab is not ns/a/*: the prefix is compared as text, up to the '/'
    ['p1', 'bOther', 3, false],
    ['p2', 'bOther', 'default', true],
    ['p2', 'aClient', 'default', true],
    ['p1', 'plaintext', 3, false], // a plaintext peer has no principal, so rule 2 cannot match it
    ['p2', 'plaintext', 'default', true],
  ];
  let denied = 0;
  for (const [port, from, rule, allowed] of cases) {
    const what = `${from} → ${port}: ${allowed ? 'allowed' : 'denied'} by ${rule === 'default' ? 'default' : `rule ${rule}`}`;
    const appUnder = port === 'p1' ? p1 : p2;
    target = appUnder.port;
    const before = appUnder.connections;
    const outcomesBefore = inbound.outcomes.length;
    const client = from === 'plaintext' ? connectPlain(inbound.port) : mtlsClient(inbound.port, who[from], caFile);
    client.end(`from ${from}`);
    const got = await collect(client);
    const outcome = await inbound.outcomes[outcomesBefore]!;
    if (allowed) {
      t.equal(got.data.toString(), `from ${from}`, what);
      t.equal(appUnder.connections, before + 1);
      t.equal(outcome.flag, '-');
      continue;
    }
    denied++;
    t.equal(got.data.length, 0, what);
    if (from !== 'plaintext') t.ok(got.events.includes('secure'), 'denied right after a completed handshake');
    t.equal(appUnder.connections, before, 'the app never saw it');
    t.same(outcome, { receivedBytes: 0, sentBytes: 0, flag: 'RBAC', reason: 'rbac' });
    const line = warnings(inbound, `connection denied by inbound.authorization[${rule}]`).at(-1);
    t.ok(line, `logged as denied by rule ${rule}`);
    t.equal(line?.rule, rule);
    t.equal(line?.principal, principalOf(from), 'naming the peer principal');
    t.equal(line?.port, appUnder.port);
  }
  t.equal(await refusedFor(inbound, 'rbac'), denied, `${denied} refusals counted, reason rbac`);
});

t.test('authorization: "*" matches every authenticated peer and never a plaintext one', async (t) => {
  const echo = await app(t);
  for (const [rules, plainAllowed, meshAllowed] of [
    ['[{action: deny, principals: ["*"]}]', true, false],
    ['[{action: allow, principals: ["*"]}, {action: deny}]', false, true], // only authenticated peers
  ] as const) {
    const inbound = await up(t, 'inbound', () => echo.port, { identityDir: serverDir, env: { ...MODE_ENV, MESHLET_INBOUND_AUTHORIZATION: rules } });
    const plain = connectPlain(inbound.port);
    plain.end('plain');
    t.equal((await collect(plain)).data.toString(), plainAllowed ? 'plain' : '', `${rules}: plaintext ${plainAllowed ? 'allowed' : 'denied'}`);
    const mesh = mtlsClient(inbound.port, clientDir, caFile);
    mesh.end('mesh');
    t.equal((await collect(mesh)).data.toString(), meshAllowed ? 'mesh' : '', `${rules}: mTLS peer ${meshAllowed ? 'allowed' : 'denied'}`);
    t.equal(await refusedFor(inbound, 'rbac'), 1);
  }
});

t.test('authorization through a peer sidecar: the denied app connection is closed with nothing delivered', async (t) => {
  const echo = await app(t);
  const inbound = await up(t, 'inbound', () => echo.port, {
    identityDir: serverDir,
    env: { MESHLET_INBOUND_AUTHORIZATION: `[{action: deny, principals: ["${CLIENT_ID}"]}]` },
  });
  const outbound = await up(t, 'outbound', () => inbound.port, { identityDir: clientDir, peer: meshPeer });
  const client = connectPlain(outbound.port);
  client.end('denied request');
  const got = await collect(client);
  t.equal(got.data.length, 0, 'nothing comes back');
  t.equal(echo.connections, 0, 'the app saw nothing');
  t.equal(warnings(inbound, 'connection denied by inbound.authorization[0]')[0]?.principal, CLIENT_ID, 'the inbound side names the peer sidecar\'s principal');
  t.equal(await refusedFor(inbound, 'rbac'), 1);
});

// ---------------------------------------------------------------------------------------
// openssl s_client: an independent TLS client against the inbound listener.

t.test('openssl s_client with a client certificate and ALPN meshlet/tcp: verified TLS 1.3, data reaches the app', async (t) => {
  const echo = await app(t);
  const inbound = await up(t, 'inbound', () => echo.port, { identityDir: serverDir, env: { MESHLET_INBOUND_MTLS: 'strict' } });
  const run = await sClient(inbound.port, ['-alpn', 'meshlet/tcp', '-CAfile', caFile, '-cert', path.join(clientDir, 'tls.crt'), '-key', path.join(clientDir, 'tls.key')], {
    input: 'hello from openssl\n',
    until: /hello from openssl/,
  });
  t.match(run.stdout, /^New, TLSv1\.3, Cipher is TLS_/m, 'TLS 1.3');
  t.match(run.stdout, /^ALPN protocol: meshlet\/tcp$/m);
  t.match(run.stdout, /Verify return code: 0 \(ok\)/, 'the server certificate verifies against ca.crt');
  t.match(run.stdout, /^Acceptable client certificate CA names\n\/?O ?= ?cluster\.local, ?CN ?= ?meshlet root CA/m, 'the server asks for a client certificate of our CA');
  t.match(run.stdout, /hello from openssl/, 'the echo came back through the proxy');
  t.equal(echo.received[0]?.toString(), 'hello from openssl\n', 'the app received the line');
  t.equal(await metric(inbound.registry, 'meshlet_tcp_connections_opened_total', { connection_security_policy: 'mutual_tls' }), 1);
});

for (const [name, certArgs, reason] of [
  ['without a client certificate', [], /none presented/],
  ['with a client certificate of another CA', ['-cert', path.join(wrongCaClientDir, 'tls.crt'), '-key', path.join(wrongCaClientDir, 'tls.key')], /UNABLE_TO_VERIFY_LEAF_SIGNATURE/],
] as const) {
  t.test(`openssl s_client ${name}: the handshake completes on the client's side, then the connection is closed`, async (t) => {
    const echo = await app(t);
    const inbound = await up(t, 'inbound', () => echo.port, { identityDir: serverDir, env: { MESHLET_INBOUND_MTLS: 'strict' } });
    const run = await sClient(inbound.port, ['-alpn', 'meshlet/tcp', '-CAfile', caFile, ...certArgs], { input: 'hello\n', until: /^hello$/m });
    // TLS 1.3: the client is done with its side of the handshake before the server has checked its certificate.
    t.match(run.stdout, /^New, TLSv1\.3/m, 'openssl saw the server side of the handshake');
    t.match(run.stdout, /Verify return code: 0 \(ok\)/, 'and verified the server');
    // No TLS alert: the proxy closes the TCP connection (a reset when the client's first bytes were unread).
    t.match(`${run.stdout}\n${run.stderr}`, /read:errno=104|unexpected eof while reading/, 'then the connection was closed under it');
    t.notMatch(`${run.stdout}\n${run.stderr}`, /alert/, 'without a TLS alert');
    t.notMatch(run.stdout, /^hello$/m, 'nothing came back');
    t.equal(echo.connections, 0, 'the app saw nothing');
    t.equal(await refusedFor(inbound, 'mtls_handshake'), 1);
    t.match(String(warnings(inbound, 'inbound mTLS handshake failed')[0]?.err), reason);
  });
}

t.test("openssl s_client without ALPN (the app's own TLS): permissive passes it to the app, strict refuses it", async (t) => {
  const secureApp = await tlsApp(t);
  const permissive = await up(t, 'inbound', () => secureApp.port, { identityDir: serverDir, env: { MESHLET_INBOUND_MTLS: 'permissive' } });
  const run = await sClient(permissive.port, ['-servername', 'app.example', '-CAfile', appCert], { input: 'hello app\n', until: /^hello app$/m });
  t.match(run.stdout, /^subject=CN ?= ?app\.example$/m, "the certificate is the app's");
  t.match(run.stdout, /Verify return code: 0 \(ok\)/);
  t.match(run.stdout, /^No ALPN negotiated$/m);
  t.match(run.stdout, /^hello app$/m, 'the app answered');
  t.equal(secureApp.received[0]?.toString(), 'hello app\n');

  const strict = await up(t, 'inbound', () => secureApp.port, { identityDir: serverDir, env: { MESHLET_INBOUND_MTLS: 'strict' } });
  const refused = await sClient(strict.port, ['-servername', 'app.example', '-CAfile', appCert], { input: 'hello app\n', until: /^hello app$/m });
  t.notMatch(refused.stdout, /^New, TLS/m, 'strict: no handshake');
  t.match(refused.stderr, /errno=104|unexpected eof|connection reset/i, `strict: openssl reports the reset`);
  t.equal(await refusedFor(strict, 'mtls_required'), 1);
  t.equal(secureApp.connections, 1, 'the app saw only the permissive connection');
});

// ---------------------------------------------------------------------------------------
// The proxy as started by `meshlet proxy`: identity.dir, the expiry gauge, and refusals.

t.test('startProxy: identity.dir is loaded and its expiry exported; mTLS settings without an identity refuse to start', async (t) => {
  const { log, lines } = captureLog();
  // Each proxy its own ports: the first still holds its own while the refusals are tried.
  const proxy = await startProxy(loadConfig({ env: { ...(await proxyPorts()), MESHLET_IDENTITY_DIR: serverDir, MESHLET_INBOUND_MTLS: 'strict' } }), log);
  t.teardown(() => proxy.stop());
  const notAfter = new X509Certificate(readFileSync(path.join(serverDir, 'tls.crt'))).validToDate;
  t.equal(await metric(proxy.registry, 'meshlet_identity_cert_expiration_timestamp_seconds'), notAfter.getTime() / 1000, 'the gauge holds notAfter');
  t.ok(lines.some((l) => l.msg === 'identity loaded' && l.spiffeId === SERVER_ID && l.serial === serial(serverDir)), 'the identity in use is logged');

  for (const [env, needs] of [
    [{ MESHLET_INBOUND_MTLS: 'strict' }, 'inbound.mtls strict'],
    [{ MESHLET_INBOUND_PER_PORT: '{"8080": {mtls: strict}}' }, 'inbound.mtls strict'],
    [{ MESHLET_MESH_PEERS: '[{cidrs: [10.0.0.0/8]}]' }, 'mesh.peers'],
  ] as const) {
    const err = await startProxy(loadConfig({ env: { ...(await proxyPorts()), ...env } }), captureLog().log).then(
      async (p) => {
        await p.stop();
        return undefined;
      },
      (e: unknown) => e,
    );
    t.ok(isMeshletError(err, 'MESHLET_ERR_CONFIG'), `${Object.keys(env)[0]}: refused at start-up`);
    t.match((err as Error | undefined)?.message, `identity.dir: required by ${needs}`);
  }
  const unusable = await startProxy(loadConfig({ env: { ...(await proxyPorts()), MESHLET_IDENTITY_DIR: expiredServerDir } }), captureLog().log).then(
    async (p) => {
      await p.stop();
      return undefined;
    },
    (e: unknown) => e,
  );
  t.ok(isMeshletError(unusable, 'MESHLET_ERR_IDENTITY'), 'an expired identity is refused at start-up');
  t.match((unusable as Error | undefined)?.message, /expired-server\/tls\.crt: expired at /);
});
