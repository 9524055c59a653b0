import { readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { run } from '../../src/testbed/exec.ts';
import { IdentityStore, type IssuedIdentity } from '../../src/testbed/identities.ts';
import { scrape, type Scrape } from '../../src/testbed/metrics.ts';
import { APP_UID, PROXY_UID, REPO_ROOT, Testbed, testbedUnavailable, type Pod, type SpawnedProcess } from '../../src/testbed/netns.ts';
import { readHello, readPcap, TLS_CONTENT, tcpConnections, tlsRecords } from '../../src/testbed/pcap.ts';

// Mutual TLS between real sidecars. Pods a and b are meshed (meshlet init + meshlet
// proxy, each with its own identity from `meshlet ca`); c has no sidecar and no rules.
// a's mesh.peers covers b's addresses only, so a → c stays plaintext. b's inbound is
// strict except on two permissive ports, and its authorization rules are scoped to
// ports so that one configuration shows allow and deny by principal and by namespace.
// Evidence comes from outside the proxies: packet captures, openssl s_client, what the
// apps saw, and the proxies' metrics and logs.

const skip = testbedUnavailable();
if (skip) {
  t.plan(0, skip);
  process.exit(0);
}

const ECHO_APP = path.join(REPO_ROOT, 'src/testbed/apps/echo-app.ts');
const TD = 'cluster.local';
const ID = {
  a: `spiffe://${TD}/ns/ns-a/sa/sa-a`,
  b: `spiffe://${TD}/ns/ns-b/sa/sa-b`,
  x: `spiffe://${TD}/ns/ns-x/sa/sa-x`,
  notB: `spiffe://${TD}/ns/ns-b/sa/not-b`,
};

// Ports of the apps in b.
const PORT = {
  strict: 8080, // plain echo, inbound.mtls strict (the default for b)
  permissive: 8081, // plain echo, perPort permissive
  denyNsA: 8082, // authorization: deny namespace ns-a
  allowPrincipalA: 8083, // allow a's principal, deny the rest
  denyPrincipalA: 8084, // deny a's principal
  allowNsA: 8085, // allow namespace ns-a, deny the rest
  expectNotB: 8086, // a's mesh.peers expects another SPIFFE ID here
  expectB: 8087, // a's mesh.peers expects b's exact SPIFFE ID here
  appTls: 8443, // the app's own TLS, perPort permissive
  impostor: 9443, // not intercepted in b: a TLS server with a certificate from a foreign CA
} as const;
const ECHO_PORTS = [PORT.strict, PORT.permissive, PORT.denyNsA, PORT.allowPrincipalA, PORT.denyPrincipalA, PORT.allowNsA, PORT.expectNotB, PORT.expectB];

const AUTHORIZATION = `[
  {action: deny, namespaces: [ns-a], ports: [${PORT.denyNsA}]},
  {action: allow, principals: ["${ID.a}"], ports: [${PORT.allowPrincipalA}]},
  {action: deny, ports: [${PORT.allowPrincipalA}]},
  {action: deny, principals: ["${ID.a}"], ports: [${PORT.denyPrincipalA}]},
  {action: allow, namespaces: [ns-a], ports: [${PORT.allowNsA}]},
  {action: deny, ports: [${PORT.allowNsA}]}
]`;

interface EchoResult {
  ok: boolean;
  echoed: string;
  error?: string;
  peerCert?: { subject: string; fingerprint256: string; serialNumber: string };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const marker = (what: string) => `MESHLET-MARKER-${what}-${Math.random().toString(36).slice(2, 10)}`;

async function echo(pod: Pod, host: string, port: number, send: string, options: { tls?: { ca: string; servername: string }; uid?: number } = {}): Promise<EchoResult> {
  const tlsArgs = options.tls ? ['--tls', '--ca', options.tls.ca, '--servername', options.tls.servername] : [];
  const r = await pod.run([process.execPath, ECHO_APP, 'client', '--host', host, '--port', String(port), '--send', send, '--timeout', '10000', ...tlsArgs], {
    uid: options.uid ?? APP_UID,
    timeoutMs: 30_000,
  });
  const line = r.stdout.trim().split('\n').at(-1) ?? '';
  try {
    return JSON.parse(line) as EchoResult;
  } catch {
    throw new Error(`echo client printed no result (exit ${r.code}): ${r.stdout} ${r.stderr}`);
  }
}

/** Waits until `check` holds (the proxies log and count right after the client returns, not before). */
async function eventually(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** JSON log lines of a process written since `from` (a length of its stdout). */
function logsSince(proc: SpawnedProcess, from: number): Array<Record<string, unknown>> {
  return proc
    .output()
    .stdout.slice(from)
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** How many connections the echo server has reported on `port`. */
function accepted(server: SpawnedProcess, port: number): number {
  return server.output().stdout.split('\n').filter((l) => l.includes(`"accepted":${port},`)).length;
}

/** `openssl s_client` to host:port, sending `input`; -ign_eof keeps it reading until the server closes. */
function sClient(pod: Pod, host: string, port: number, input: string, args: string[], uid?: number) {
  return pod.run(['openssl', 's_client', '-connect', `${host}:${port}`, '-ign_eof', ...args], { uid, input, timeoutMs: 20_000 });
}
const withCert = (id: IssuedIdentity, ca = id.dir) => ['-cert', path.join(id.dir, 'tls.crt'), '-key', path.join(id.dir, 'tls.key'), '-CAfile', path.join(ca, 'ca.crt')];

t.test('mutual TLS between sidecars in pods a and b; c unmeshed', async (t) => {
  const ids = new IdentityStore();
  t.teardown(() => ids.remove());
  const tb = await Testbed.create(['a', 'b', 'c']);
  t.teardown(() => tb.destroy());
  const [a, b, c] = [tb.pod('a'), tb.pod('b'), tb.pod('c')];

  const ca = await ids.ca('ca');
  const foreignCa = await ids.ca('foreign-ca');
  const idA = await ids.issue(ca, ID.a, { name: 'a' });
  const idB = await ids.issue(ca, ID.b, { name: 'b' });
  const idX = await ids.issue(ca, ID.x, { name: 'x' });
  const foreignA = await ids.issue(foreignCa, ID.a, { name: 'foreign-a' });
  const foreignB = await ids.issue(foreignCa, ID.b, { name: 'foreign-b' });
  const expiredA = await ids.issue(ca, ID.a, { name: 'expired-a', ttl: '1s' });
  const appCert = await ids.selfSigned('app-tls', '/CN=app.ns-b.example/O=the app itself');

  t.equal((await a.init()).code, 0, 'init in a');
  t.equal((await b.init(['--exclude-inbound-ports', String(PORT.impostor)])).code, 0, 'init in b');

  const bCidrs = `[${b.ipv4}/32, "${b.ipv6}/128"]`;
  const proxyA = await a.startProxy({
    MESHLET_IDENTITY_DIR: idA.dir,
    MESHLET_MESH_PEERS: `[
      {cidrs: ${bCidrs}, ports: [${PORT.expectNotB}], spiffeId: "${ID.notB}"},
      {cidrs: ${bCidrs}, ports: [${PORT.expectB}], spiffeId: "${ID.b}"},
      {cidrs: ${bCidrs}}
    ]`,
  });
  const proxyB = await b.startProxy({
    MESHLET_IDENTITY_DIR: idB.dir,
    MESHLET_INBOUND_MTLS: 'strict',
    MESHLET_INBOUND_PER_PORT: `{"${PORT.permissive}": {mtls: permissive}, "${PORT.appTls}": {mtls: permissive}}`,
    MESHLET_INBOUND_AUTHORIZATION: AUTHORIZATION,
  });
  const appB = b.node([ECHO_APP, 'server', '--port', ECHO_PORTS.join(',')], { uid: APP_UID });
  const appTlsB = b.node([ECHO_APP, 'server', '--port', String(PORT.appTls), '--tls-cert', appCert.cert, '--tls-key', appCert.key], { uid: APP_UID });
  const impostor = b.node([ECHO_APP, 'server', '--port', String(PORT.impostor), '--tls-cert', path.join(foreignB.dir, 'tls.crt'), '--tls-key', path.join(foreignB.dir, 'tls.key'), '--alpn', 'meshlet/tcp']);
  const appC = c.node([ECHO_APP, 'server', '--port', String(PORT.strict)], { uid: APP_UID });
  for (const app of [appB, appTlsB, impostor, appC]) await app.waitForLine(/listening/);
  await eventually(() => appB.output().stdout.split('\n').filter((l) => l.includes('listening')).length === ECHO_PORTS.length, "b's echo ports");

  /** Metric deltas over `fn`. */
  async function measure<T>(fn: () => Promise<T>): Promise<{ result: T; before: (pod: Pod) => Scrape; delta: (pod: Pod, name: string, labels: Record<string, string>) => number }> {
    const before = new Map<Pod, Scrape>([
      [a, await scrape(a)],
      [b, await scrape(b)],
    ]);
    const result = await fn();
    // Counters move when a connection is opened or refused, which may be a moment after the client is done.
    await sleep(200);
    const after = new Map<Pod, Scrape>([
      [a, await scrape(a)],
      [b, await scrape(b)],
    ]);
    return { result, before: (pod) => before.get(pod)!, delta: (pod, name, labels) => after.get(pod)!.value(name, labels) - before.get(pod)!.value(name, labels) };
  }
  /** The reason of the first 'inbound mTLS handshake failed' b logged since `from`. */
  async function inboundFailure(from: number): Promise<unknown> {
    const find = () => logsSince(proxyB, from).find((l) => l.msg === 'inbound mTLS handshake failed');
    await eventually(() => find() !== undefined, "b's 'inbound mTLS handshake failed' line");
    return find()!.err;
  }
  const OPENED = 'meshlet_tcp_connections_opened_total';
  const REFUSED = 'meshlet_proxy_connections_refused_total';

  await t.test('meshed traffic a → b is mutual TLS at both ends, IPv4 and IPv6; a → c stays plaintext', async (t) => {
    for (const host of [b.ipv4, b.ipv6]) {
      const send = marker('path');
      const { result, delta } = await measure(() => echo(a, host, PORT.strict, send));
      t.ok(result.ok, `a → ${host}: ${result.error ?? 'echoed'}`);
      t.equal(delta(a, OPENED, { reporter: 'source', connection_security_policy: 'mutual_tls' }), 1, "a's outbound opened it as mutual_tls");
      t.equal(delta(b, OPENED, { reporter: 'destination', connection_security_policy: 'mutual_tls' }), 1, "b's inbound terminated it as mutual_tls");
      t.equal(delta(b, OPENED, { reporter: 'destination', connection_security_policy: 'none' }), 0, 'b saw no plaintext connection');
    }
    const { result, delta } = await measure(() => echo(a, c.ipv4, PORT.strict, marker('to-c')));
    t.ok(result.ok, `a → c: ${result.error ?? 'echoed'}`);
    t.equal(delta(a, OPENED, { reporter: 'source', connection_security_policy: 'none' }), 1, "a's outbound carried it as plaintext (c is not a mesh peer)");
    t.equal(delta(a, OPENED, { reporter: 'source', connection_security_policy: 'mutual_tls' }), 0);
  });

  await t.test('on the wire: a → b is a TLS 1.3 handshake then only encrypted records; the same payload to c is visible', async (t) => {
    // tcpdump rather than tshark: a small package (tshark brings Wireshark's libraries), and
    // reading the TLS records ourselves (src/testbed/pcap.ts) keeps every check explicit.
    const tcpdump = await run(['sh', '-c', 'command -v tcpdump']);
    if (tcpdump.code !== 0) {
      t.fail('needs tcpdump (apt-get install tcpdump; scripts/setup.sh and .ci/run install it)');
      return;
    }
    const pcapB = path.join(ids.root, 'b.pcap');
    const pcapC = path.join(ids.root, 'c.pcap');
    // -U and --immediate-mode: every packet is in the file when tcpdump exits on SIGINT.
    const capture = (pod: Pod, file: string) => pod.spawn(['tcpdump', '-i', 'eth0', '-n', '-s', '0', '-U', '--immediate-mode', '-Z', 'root', '-w', file, 'tcp', 'port', String(PORT.strict)]);
    const dumps = [capture(b, pcapB), capture(c, pcapC)];
    for (const d of dumps) await eventually(() => d.output().stderr.includes('listening on'), 'tcpdump to start');

    const secret = marker('secret');
    const toB = await echo(a, b.ipv4, PORT.strict, secret);
    const toC = await echo(a, c.ipv4, PORT.strict, secret);
    t.ok(toB.ok, `a → b echoed the marker: ${toB.error ?? ''}`);
    t.ok(toC.ok, `a → c echoed the marker: ${toC.error ?? ''}`);
    for (const d of dumps) await d.stop('SIGINT');

    // b's eth0: the only leg on the wire is a's sidecar → b's sidecar (b's sidecar reaches its app over lo).
    const rawB = readFileSync(pcapB);
    const connsB = tcpConnections(readPcap(rawB));
    t.equal(connsB.length, 1, 'one connection a → b:8080 captured');
    const conn = connsB[0]!;
    t.same([conn.client.address, conn.server.address, conn.server.port], [a.ipv4, b.ipv4, PORT.strict]);
    t.notOk(rawB.includes(secret), 'the marker appears nowhere in the capture file');
    t.notOk(conn.fromClient.includes(secret) || conn.fromServer.includes(secret), 'nor in either reassembled direction');

    const fromClient = tlsRecords(conn.fromClient);
    const fromServer = tlsRecords(conn.fromServer);
    const clientHello = readHello(fromClient[0]!);
    t.equal(clientHello.handshakeType, 1, 'the client opens with a ClientHello');
    t.ok(clientHello.supportedVersions.includes(0x0304), 'offering TLS 1.3 (supported_versions 0x0304)');
    t.same(clientHello.alpn, ['meshlet/tcp'], "with meshlet's ALPN");
    const serverHello = readHello(fromServer[0]!);
    t.equal(serverHello.handshakeType, 2, 'the server answers with a ServerHello');
    t.same(serverHello.supportedVersions, [0x0304], 'selecting TLS 1.3');
    // In TLS 1.3 everything after the hellos is encrypted (application_data records;
    // change_cipher_spec is the middlebox-compatibility dummy).
    const after = [...fromClient.slice(1), ...fromServer.slice(1)];
    t.ok(after.some((r) => r.type === TLS_CONTENT.applicationData), 'encrypted records follow');
    t.same(
      after.filter((r) => r.type !== TLS_CONTENT.applicationData && r.type !== TLS_CONTENT.changeCipherSpec).map((r) => r.type),
      [],
      'no handshake, alert or other record in the clear after the hellos',
    );

    // Control: the same check fails on a plaintext connection.
    const rawC = readFileSync(pcapC);
    const connsC = tcpConnections(readPcap(rawC));
    t.equal(connsC.length, 1, 'one connection a → c:8080 captured');
    t.ok(rawC.includes(secret), 'to unmeshed c, the marker is in the capture');
    t.ok(connsC[0]!.fromClient.includes(secret) && connsC[0]!.fromServer.includes(secret), 'both ways');
    t.throws(() => tlsRecords(connsC[0]!.fromClient), /not a TLS record/, 'and it is not TLS');
  });

  await t.test('strict refuses plaintext and foreign TLS from unmeshed c; permissive lets plaintext and the app’s own TLS through untouched', async (t) => {
    let before = accepted(appB, PORT.strict);
    let m = await measure(() => echo(c, b.ipv4, PORT.strict, marker('plain')));
    t.notOk(m.result.ok, `plaintext c → b:${PORT.strict} (strict) fails: ${m.result.error}`);
    t.equal(m.result.echoed, '', 'nothing came back');
    t.equal(m.delta(b, REFUSED, { reporter: 'destination', reason: 'mtls_required' }), 1, 'counted as mtls_required');
    t.equal(accepted(appB, PORT.strict), before, 'the app never saw it');

    m = await measure(() => echo(c, b.ipv4, PORT.strict, marker('tls'), { tls: { ca: appCert.cert, servername: 'app.ns-b.example' } }));
    t.notOk(m.result.ok, `TLS without meshlet's ALPN, c → b:${PORT.strict} (strict) fails: ${m.result.error}`);
    t.equal(m.delta(b, REFUSED, { reporter: 'destination', reason: 'mtls_required' }), 1, 'counted as mtls_required');
    t.equal(accepted(appB, PORT.strict), before, 'the app never saw it');

    before = accepted(appB, PORT.permissive);
    const plain = marker('plain');
    m = await measure(() => echo(c, b.ipv4, PORT.permissive, plain));
    t.ok(m.result.ok, `plaintext c → b:${PORT.permissive} (permissive) works: ${m.result.error ?? ''}`);
    t.equal(m.result.echoed, plain);
    t.equal(m.delta(b, OPENED, { reporter: 'destination', connection_security_policy: 'none' }), 1, 'carried as plaintext');
    t.equal(accepted(appB, PORT.permissive), before + 1, 'the app saw it');

    for (const [from, label, security] of [
      [c, 'unmeshed c', 'none'],
      [a, 'meshed a (inside the sidecars’ mTLS)', 'mutual_tls'],
    ] as const) {
      const send = marker('app-tls');
      m = await measure(() => echo(from, b.ipv4, PORT.appTls, send, { tls: { ca: appCert.cert, servername: 'app.ns-b.example' } }));
      t.ok(m.result.ok, `the app's own TLS from ${label}: ${m.result.error ?? 'echoed'}`);
      t.equal(m.result.peerCert?.fingerprint256, appCert.fingerprint256, "the client's handshake was with the app's own certificate");
      t.match(m.result.peerCert?.subject, /CN=app\.ns-b\.example/);
      t.equal(m.delta(b, OPENED, { reporter: 'destination', connection_security_policy: security }), 1, `b's inbound carried it (${security})`);
    }
  });

  await t.test('openssl s_client against b’s inbound listener, from a as the proxy UID (not redirected)', async (t) => {
    const send = marker('s-client');
    let before = accepted(appB, PORT.strict);
    let m = await measure(() => sClient(a, b.ipv4, PORT.strict, `${send}\nbye\n`, ['-alpn', 'meshlet/tcp', ...withCert(idA), '-verify_return_error'], PROXY_UID));
    t.match(m.result.stdout, /Verify return code: 0 \(ok\)/, "b's certificate verifies against ca.crt");
    t.match(m.result.stdout, /New, TLSv1\.3/, 'TLS 1.3');
    t.match(m.result.stdout, /ALPN protocol: meshlet\/tcp/, "meshlet's ALPN");
    t.ok(m.result.stdout.includes(`${send}\nbye\n`), 'the data went to the app and its echo came back');
    t.equal(accepted(appB, PORT.strict), before + 1, 'the app saw one connection');
    t.equal(m.result.code, 0, 's_client ended cleanly when the app closed');
    t.equal(m.delta(b, OPENED, { reporter: 'destination', connection_security_policy: 'mutual_tls' }), 1, "b's inbound terminated it as mutual_tls");

    // Without a client certificate: TLS 1.3 lets the client finish its side of the
    // handshake before the server has checked it; b then closes the connection.
    before = accepted(appB, PORT.strict);
    const logFrom = proxyB.output().stdout.length;
    m = await measure(() => sClient(a, b.ipv4, PORT.strict, `${send}\nbye\n`, ['-alpn', 'meshlet/tcp', '-CAfile', path.join(idA.dir, 'ca.crt')], PROXY_UID));
    t.equal(m.result.signal, null, 's_client was not left hanging (it ended before the test gave up on it)');
    t.not(m.result.code, 0, 's_client reports the connection failed');
    t.notOk(m.result.stdout.includes(send), 'nothing is echoed');
    t.equal(accepted(appB, PORT.strict), before, 'the app saw nothing');
    t.equal(m.delta(b, REFUSED, { reporter: 'destination', reason: 'mtls_handshake' }), 1, 'b refused it as a failed mTLS handshake');
    t.equal(await inboundFailure(logFrom), 'client certificate rejected: none presented', 'b logged that no certificate was presented');
  });

  await t.test('wrong CA, expired certificate and an unexpected SPIFFE ID are each rejected', async (t) => {
    // Client side wrong: a certificate for a's very SPIFFE ID, from another CA; then a's, expired.
    const waitExpired = expiredA.notAfter.getTime() + 1500 - Date.now();
    if (waitExpired > 0) await sleep(waitExpired);
    for (const [label, id, reason] of [
      ['from a foreign CA', foreignA, 'client certificate rejected: UNABLE_TO_VERIFY_LEAF_SIGNATURE'],
      ['expired', expiredA, 'client certificate rejected: CERT_HAS_EXPIRED'],
    ] as const) {
      const send = marker('bad-client');
      const before = accepted(appB, PORT.strict);
      const logFrom = proxyB.output().stdout.length;
      const m = await measure(() => sClient(c, b.ipv4, PORT.strict, `${send}\nbye\n`, ['-alpn', 'meshlet/tcp', ...withCert(id, idB.dir)]));
      t.equal(m.result.signal, null, `client certificate ${label}: s_client ended by itself`);
      t.notOk(m.result.stdout.includes(send), 'nothing echoed');
      t.equal(accepted(appB, PORT.strict), before, 'the app saw nothing');
      t.equal(m.delta(b, REFUSED, { reporter: 'destination', reason: 'mtls_handshake' }), 1, 'b refused it');
      t.equal(await inboundFailure(logFrom), reason, 'b logged why');
    }

    // Server side wrong: a's mesh.peers expects another SPIFFE ID on PORT.expectNotB; b presents its own.
    let logFrom = proxyA.output().stdout.length;
    let m = await measure(() => echo(a, b.ipv4, PORT.expectNotB, marker('spiffe')));
    t.notOk(m.result.ok, `a → b:${PORT.expectNotB} fails: ${m.result.error}`);
    t.equal(m.result.echoed, '');
    t.equal(accepted(appB, PORT.expectNotB), 0, 'the app never saw it');
    // a counts the connection closed once both of its sockets are, which can trail the app's view.
    const uf = { reporter: 'source', response_flags: 'UF' };
    const ufBefore = m.before(a).value('meshlet_tcp_connections_closed_total', uf);
    let ufNow = 0;
    await eventually(async () => (ufNow = (await scrape(a)).value('meshlet_tcp_connections_closed_total', uf)) > ufBefore, "a's closed{UF}").catch(() => {});
    t.equal(ufNow - ufBefore, 1, 'a flagged it UF (upstream connect failure)');
    await eventually(() => logsSince(proxyA, logFrom).some((l) => l.msg === 'outbound mTLS handshake failed'), "a's log line");
    let failure = logsSince(proxyA, logFrom).find((l) => l.msg === 'outbound mTLS handshake failed')!;
    t.equal(failure.expected, ID.notB);
    t.match(String(failure.err), `peer is ${ID.b}, expected ${ID.notB}`);
    // The control: the same check passes when the expected ID is b's.
    m = await measure(() => echo(a, b.ipv4, PORT.expectB, 'expected b'));
    t.ok(m.result.ok, `a → b:${PORT.expectB}, expecting ${ID.b}: ${m.result.error ?? 'echoed'}`);

    // Server certificate from a foreign CA: an impostor on b's address, outside b's sidecar.
    logFrom = proxyA.output().stdout.length;
    m = await measure(() => echo(a, b.ipv4, PORT.impostor, marker('impostor')));
    t.notOk(m.result.ok, `a → impostor fails: ${m.result.error}`);
    t.equal(m.result.echoed, '');
    t.equal(accepted(impostor, PORT.impostor), 0, 'the impostor never completed a handshake');
    await eventually(() => logsSince(proxyA, logFrom).some((l) => l.msg === 'outbound mTLS handshake failed'), "a's log line");
    failure = logsSince(proxyA, logFrom).find((l) => l.msg === 'outbound mTLS handshake failed')!;
    // (Node appends a hint about --use-system-ca to this message.)
    t.match(String(failure.err), /^unable to verify the first certificate/, "a refused the certificate: its issuer is not in a's ca.crt");
  });

  await t.test('authorization allows and denies by principal and by namespace', async (t) => {
    // a goes through its sidecar (principal ID.a, namespace ns-a); x is an mTLS client in c with ID.x.
    const cases = [
      [PORT.denyNsA, 'deny namespace ns-a', { a: false, x: true }],
      [PORT.allowPrincipalA, "allow a's principal, deny the rest", { a: true, x: false }],
      [PORT.denyPrincipalA, "deny a's principal", { a: false, x: true }],
      [PORT.allowNsA, 'allow namespace ns-a, deny the rest', { a: true, x: false }],
    ] as const;
    for (const [port, rule, expect] of cases) {
      await t.test(`port ${port}: ${rule}`, async (t) => {
        let before = accepted(appB, port);
        const send = marker('authz');
        const logFrom = proxyB.output().stdout.length;
        const m = await measure(() => echo(a, b.ipv4, port, send));
        t.equal(m.result.ok, expect.a, `a: ${expect.a ? 'allowed' : 'denied'} (${m.result.error ?? 'echoed'})`);
        t.equal(m.result.echoed, expect.a ? send : '', expect.a ? 'echoed' : 'connection closed, nothing came back');
        t.equal(accepted(appB, port), before + (expect.a ? 1 : 0), 'the app saw it only if allowed');
        t.equal(m.delta(b, REFUSED, { reporter: 'destination', reason: 'rbac' }), expect.a ? 0 : 1, 'rbac refusals');
        if (!expect.a) {
          const denied = logsSince(proxyB, logFrom).find((l) => String(l.msg).startsWith('connection denied by inbound.authorization'));
          t.equal(denied?.principal, ID.a, "b's log names a's verified principal");
        }

        before = accepted(appB, port);
        const x = await measure(() => sClient(c, b.ipv4, port, `${send}\nbye\n`, ['-alpn', 'meshlet/tcp', ...withCert(idX)]));
        t.equal(x.result.signal, null, 's_client ended by itself');
        t.equal(x.result.stdout.includes(send), expect.x, `x: ${expect.x ? 'allowed, echoed' : 'denied, nothing echoed'}`);
        t.equal(accepted(appB, port), before + (expect.x ? 1 : 0), 'the app saw it only if allowed');
        t.equal(x.delta(b, REFUSED, { reporter: 'destination', reason: 'rbac' }), expect.x ? 0 : 1, 'rbac refusals');
      });
    }
  });

  await t.test('the identity certificate expiry is exported', async (t) => {
    const [sa, sb] = [await scrape(a), await scrape(b)];
    t.equal(sa.value('meshlet_identity_cert_expiration_timestamp_seconds'), Math.floor(idA.notAfter.getTime() / 1000));
    t.equal(sb.value('meshlet_identity_cert_expiration_timestamp_seconds'), Math.floor(idB.notAfter.getTime() / 1000));
  });
});
