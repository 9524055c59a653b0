import { X509Certificate } from 'node:crypto';
import path from 'node:path';
import t from 'tap';
import { IdentityStore, SecretVolume, type IssuedIdentity } from '../../src/testbed/identities.ts';
import { scrape } from '../../src/testbed/metrics.ts';
import { APP_UID, PROXY_UID, REPO_ROOT, Testbed, testbedUnavailable, type Pod, type SpawnedProcess } from '../../src/testbed/netns.ts';

// Certificate rotation under load, in pods: a streams over one long-lived connection to
// b and opens new connections in a loop, both through the sidecars' mTLS, for 24 s.
// Mid-way both pods' identity directories are swapped the way the kubelet updates a
// secret volume (a new ..data symlink renamed over the old one). Nothing may fail, the
// long-lived connection must keep going, and b must present its new certificate to new
// connections (seen by openssl s_client, independently of the proxies).

const skip = testbedUnavailable();
if (skip) {
  t.plan(0, skip);
  process.exit(0);
}

const ECHO_APP = path.join(REPO_ROOT, 'src/testbed/apps/echo-app.ts');
const PORT = 8080;
const RUN_MS = 24_000;
const SWAP_AFTER_MS = 10_000;
const ID_A = 'spiffe://cluster.local/ns/ns-a/sa/sa-a';
const ID_B = 'spiffe://cluster.local/ns/ns-b/sa/sa-b';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function eventually(check: () => boolean, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const jsonLines = (proc: SpawnedProcess) =>
  proc
    .output()
    .stdout.split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

/** The highest {"progress": n} a client has printed so far. */
const progress = (proc: SpawnedProcess) => Math.max(0, ...jsonLines(proc).map((l) => (typeof l.progress === 'number' ? l.progress : 0)));

/** The serial of the certificate b presents to a new mTLS connection, read by openssl (as a's proxy UID, so not redirected). */
async function presentedSerial(a: Pod, host: string, idA: string): Promise<{ serial: string; verified: boolean }> {
  const r = await a.run(
    ['openssl', 's_client', '-connect', `${host}:${PORT}`, '-ign_eof', '-alpn', 'meshlet/tcp', '-cert', path.join(idA, 'tls.crt'), '-key', path.join(idA, 'tls.key'), '-CAfile', path.join(idA, 'ca.crt')],
    { uid: PROXY_UID, input: 'serial check\nbye\n', timeoutMs: 20_000 },
  );
  const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(r.stdout)?.[0];
  if (!pem) throw new Error(`s_client printed no certificate (exit ${r.code}): ${r.stderr}`);
  const x509 = await a.runOk(['openssl', 'x509', '-noout', '-serial'], { input: pem });
  // Cross-check openssl's reading with Node's.
  const serial = x509.stdout.trim().replace(/^serial=/, '');
  if (serial !== new X509Certificate(pem).serialNumber.toUpperCase()) throw new Error(`openssl and node disagree on the serial: ${serial}`);
  return { serial, verified: /Verify return code: 0 \(ok\)/.test(r.stdout) && r.stdout.includes('serial check\nbye\n') };
}

t.test('rotating both identities under continuous traffic', async (t) => {
  const ids = new IdentityStore();
  t.teardown(() => ids.remove());
  const tb = await Testbed.create(['a', 'b']);
  t.teardown(() => tb.destroy());
  const [a, b] = [tb.pod('a'), tb.pod('b')];

  const ca = await ids.ca('ca');
  const issued: Record<'a1' | 'a2' | 'b1' | 'b2', IssuedIdentity> = {
    a1: await ids.issue(ca, ID_A, { name: 'a1' }),
    a2: await ids.issue(ca, ID_A, { name: 'a2' }),
    b1: await ids.issue(ca, ID_B, { name: 'b1' }),
    b2: await ids.issue(ca, ID_B, { name: 'b2' }),
  };
  t.not(issued.b1.serial, issued.b2.serial, "b's two certificates have different serials");
  const volA = new SecretVolume(path.join(ids.root, 'volume-a'), issued.a1.dir);
  const volB = new SecretVolume(path.join(ids.root, 'volume-b'), issued.b1.dir);

  t.equal((await a.init()).code, 0, 'init in a');
  t.equal((await b.init()).code, 0, 'init in b');
  const proxyA = await a.startProxy({ MESHLET_IDENTITY_DIR: volA.dir, MESHLET_MESH_PEERS: `[{cidrs: [${b.ipv4}/32], spiffeId: "${ID_B}"}]` });
  const proxyB = await b.startProxy({ MESHLET_IDENTITY_DIR: volB.dir, MESHLET_INBOUND_MTLS: 'strict' });
  const app = b.node([ECHO_APP, 'server', '--port', String(PORT)], { uid: APP_UID });
  await app.waitForLine(/listening/);

  const [beforeA, beforeB] = [await scrape(a), await scrape(b)];
  const before = await presentedSerial(a, b.ipv4, volA.dir);
  t.equal(before.serial, issued.b1.serial, 'before the swap b presents its first certificate');
  t.ok(before.verified, 'and the s_client exchange verified and echoed');

  const started = Date.now();
  const common = ['--host', b.ipv4, '--port', String(PORT), '--duration', String(RUN_MS), '--timeout', '10000'];
  const stream = a.node([ECHO_APP, 'stream', ...common, '--interval', '50'], { uid: APP_UID });
  const loop = a.node([ECHO_APP, 'loop', ...common, '--interval', '50'], { uid: APP_UID });
  await eventually(() => progress(stream) >= 10 && progress(loop) >= 10, 'traffic before the swap', 15_000);

  await sleep(Math.max(0, started + SWAP_AFTER_MS - Date.now()));
  const logsFrom = { a: proxyA.output().stdout.length, b: proxyB.output().stdout.length };
  volB.swap(issued.b2.dir);
  volA.swap(issued.a2.dir);
  const rotated = (proxy: SpawnedProcess, from: number) =>
    proxy
      .output()
      .stdout.slice(from)
      .split('\n')
      .filter((l) => l.includes('"identity rotated"'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  // fs.watch sees the rename at once; the watcher's 10 s poll is the fallback.
  await eventually(() => rotated(proxyA, logsFrom.a).length > 0 && rotated(proxyB, logsFrom.b).length > 0, "both proxies' 'identity rotated'", 15_000);
  const atRotation = { stream: progress(stream), loop: progress(loop) };

  const [rotB] = rotated(proxyB, logsFrom.b);
  t.equal(rotB?.serial, issued.b2.serial, "b's proxy logged the new serial");
  t.equal(rotB?.previousSerial, issued.b1.serial, 'and the one it replaced');
  t.equal(rotB?.spiffeId, ID_B);
  const [rotA] = rotated(proxyA, logsFrom.a);
  t.equal(rotA?.serial, issued.a2.serial, "a's proxy logged its new serial");
  t.equal(rotA?.previousSerial, issued.a1.serial);

  const after = await presentedSerial(a, b.ipv4, volA.dir);
  t.equal(after.serial, issued.b2.serial, 'a new connection after the swap is served with the new certificate');
  t.ok(after.verified, 'which verifies against ca.crt, with the data echoed');

  // Both clients stop by themselves after RUN_MS.
  await Promise.all([stream.child, loop.child].map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('close', r)))));
  const streamResult = jsonLines(stream).find((l) => 'roundTrips' in l) as { ok: boolean; roundTrips: number; error?: string } | undefined;
  const loopResult = jsonLines(loop).find((l) => 'connections' in l) as { ok: boolean; connections: number; failures: number; errors: string[] } | undefined;
  t.ok(streamResult?.ok, `the long-lived connection survived: ${streamResult?.error ?? 'every echo came back'}`);
  t.ok((streamResult?.roundTrips ?? 0) > atRotation.stream, `it carried traffic after the rotation (${atRotation.stream} → ${streamResult?.roundTrips} round trips)`);
  t.equal(loopResult?.failures, 0, `no new connection failed (${loopResult?.errors.join(', ')})`);
  t.ok((loopResult?.connections ?? 0) > atRotation.loop, `new connections kept succeeding after the rotation (${atRotation.loop} → ${loopResult?.connections})`);

  const [endA, endB] = [await scrape(a), await scrape(b)];
  const delta = (end: typeof endA, start: typeof endA, name: string, labels: Record<string, string> = {}) => end.value(name, labels) - start.value(name, labels);
  const connections = (loopResult?.connections ?? 0) + 1; // the loop's and the stream's
  t.equal(delta(endA, beforeA, 'meshlet_tcp_connections_opened_total', { reporter: 'source', connection_security_policy: 'mutual_tls' }), connections, "every app connection left a over mTLS");
  // b also terminated the two s_client connections (made from the proxy UID, so not through a's outbound).
  t.equal(
    delta(endB, beforeB, 'meshlet_tcp_connections_opened_total', { reporter: 'destination', connection_security_policy: 'mutual_tls' }),
    connections + 2,
    "b terminated all of them, and the two s_client connections, over mTLS",
  );
  t.equal(delta(endB, beforeB, 'meshlet_proxy_connections_refused_total'), 0, 'b refused nothing');
  t.equal(delta(endA, beforeA, 'meshlet_tcp_connections_closed_total', { reporter: 'source', response_flags: 'UF' }), 0, 'a flagged no upstream failure');
  t.equal(endB.value('meshlet_identity_cert_expiration_timestamp_seconds'), Math.floor(issued.b2.notAfter.getTime() / 1000), "b's expiry metric follows the new certificate");
});
