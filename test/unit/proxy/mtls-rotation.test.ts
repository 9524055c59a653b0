import { createHash, X509Certificate } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, renameSync, symlinkSync } from 'node:fs';
import type net from 'node:net';
import path from 'node:path';
import t from 'tap';
import { IdentityWatcher } from '../../../src/tls/identity-watcher.ts';
import { caOk, tempDir } from '../tls/ca-helpers.ts';
import { captureLog, collect, connectPlain, echoApp, makeIdentity, metric, mtlsClient, sidecar, until } from './mtls-harness.ts';

// Rotation of the inbound side's certificate under continuous traffic, for 21 s: long-lived
// connections stream the whole time, new connections open and close in a loop, and the
// server's files are replaced twice — once by the atomic `..data` symlink swap a Kubernetes
// secret volume does, once by rewriting the files in place (with a deliberately torn,
// half-written state in between). Every connection must succeed, the long-lived ones must
// keep every byte, and every connection opened after a rotation must see the new serial.

const RUN_MS = 21_000;
const SWAP_AT_MS = 7_000;
const IN_PLACE_AT_MS = 14_000;
const MAX_NEW_CONNECTIONS = 4000; // bounded; pacing keeps the loop far below it
const TD = 'cluster.local';
const SERVER_ID = `spiffe://${TD}/ns/b/sa/server`;

const root = tempDir();
const caDir = path.join(root, 'ca');
await caOk(['init', '--out', caDir]);
const caFile = path.join(caDir, 'ca.crt');
const clientDir = await makeIdentity(root, caDir, 'client', `spiffe://${TD}/ns/a/sa/client`);
const versions = [await makeIdentity(root, caDir, 'v1', SERVER_ID), await makeIdentity(root, caDir, 'v2', SERVER_ID), await makeIdentity(root, caDir, 'v3', SERVER_ID)];
const serials = versions.map((dir) => new X509Certificate(readFileSync(path.join(dir, 'tls.crt'))).serialNumber);
const versionOf = (serial: string | undefined) => serials.indexOf(serial ?? '');

// The layout of a mounted secret: tls.crt → ..data/tls.crt, ..data → ..<timestamp>/.
const volume = path.join(root, 'volume');
mkdirSync(volume);
renameSync(versions[0]!, path.join(volume, '..2026_11_22_v1'));
symlinkSync('..2026_11_22_v1', path.join(volume, '..data'));
for (const f of ['tls.crt', 'tls.key', 'ca.crt']) symlinkSync(`..data/${f}`, path.join(volume, f));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Stream {
  readonly socket: net.Socket;
  readonly via: string;
  readonly serial?: string;
  sent: number;
  readonly sentHash: ReturnType<typeof createHash>;
  echoed: number;
  readonly echoedHash: ReturnType<typeof createHash>;
  error?: string;
  closed: Promise<unknown>;
}

t.test('rotation under traffic: no failed connection, long-lived ones keep flowing, new ones see the new serial', async (t) => {
  const watcherLog = captureLog();
  const watcher = new IdentityWatcher(volume, { log: watcherLog.log, pollIntervalMs: 500 }).start();
  t.teardown(() => watcher.close());
  t.equal(watcher.current.serial, serials[0]);

  const echo = await echoApp();
  t.teardown(() => echo.close());
  const inbound = await sidecar('inbound', () => echo.port, { identity: () => watcher.current, env: { MESHLET_INBOUND_MTLS: 'strict' } });
  t.teardown(() => inbound.close());
  const outbound = await sidecar('outbound', () => inbound.port, { identityDir: clientDir, peer: { trustDomain: TD } });
  t.teardown(() => outbound.close());

  // Long-lived connections: two from an app through the outbound sidecar, two direct mTLS clients.
  const streams: Stream[] = [];
  for (const via of ['outbound', 'outbound', 'direct', 'direct']) {
    const socket = via === 'outbound' ? connectPlain(outbound.port) : mtlsClient(inbound.port, clientDir, caFile);
    let serial: string | undefined;
    if (via === 'direct') {
      await new Promise((r) => socket.once('secureConnect', r));
      serial = (socket as import('node:tls').TLSSocket).getPeerX509Certificate()?.serialNumber;
    }
    const stream: Stream = { socket, via, ...(serial ? { serial } : {}), sent: 0, sentHash: createHash('sha256'), echoed: 0, echoedHash: createHash('sha256'), closed: Promise.resolve() };
    socket.on('data', (d: Buffer) => {
      stream.echoed += d.length;
      stream.echoedHash.update(d);
    });
    socket.on('error', (err: NodeJS.ErrnoException) => (stream.error ??= err.code ?? err.message));
    stream.closed = new Promise((r) => socket.once('close', r));
    streams.push(stream);
  }
  let streaming = true;
  const writers = streams.map(async (s, i) => {
    for (let n = 0; streaming && !s.socket.destroyed; n++) {
      const chunk = Buffer.alloc(1024, `${i}:${n};`);
      s.sent += chunk.length;
      s.sentHash.update(chunk);
      if (!s.socket.write(chunk)) await new Promise((r) => s.socket.once('drain', r));
      await sleep(10);
    }
  });

  // New connections, in a loop of three workers, each checked end to end.
  interface Attempt {
    readonly via: string;
    readonly versionAtStart: number;
    seen?: number;
    ok: boolean;
    detail?: string;
  }
  const attempts: Attempt[] = [];
  let opening = true;
  const workers = [0, 1, 2].map(async (w) => {
    for (let n = 0; opening && attempts.length < MAX_NEW_CONNECTIONS; n++) {
      const via = (n + w) % 2 === 0 ? 'direct' : 'outbound';
      const attempt: Attempt = { via, versionAtStart: versionOf(watcher.current.serial), ok: false };
      attempts.push(attempt);
      const message = `w${w} n${n} ${via}`;
      const socket = via === 'direct' ? mtlsClient(inbound.port, clientDir, caFile) : connectPlain(outbound.port);
      if (via === 'direct') {
        socket.once('secureConnect', () => (attempt.seen = versionOf((socket as import('node:tls').TLSSocket).getPeerX509Certificate()?.serialNumber)));
      }
      socket.end(message);
      const got = await collect(socket);
      attempt.ok = got.error === undefined && got.data.toString() === message;
      if (!attempt.ok) attempt.detail = `${message}: ${got.error ?? ''} got ${JSON.stringify(got.data.toString())}`;
      await sleep(5);
    }
  });

  const started = Date.now();
  const echoedAtSwap: number[][] = [];

  // 1. The Kubernetes way: a new timestamped directory, then ..data is replaced by an atomic rename.
  await sleep(SWAP_AT_MS - (Date.now() - started));
  echoedAtSwap.push(streams.map((s) => s.echoed));
  renameSync(versions[1]!, path.join(volume, '..2026_11_22_v2'));
  symlinkSync('..2026_11_22_v2', path.join(volume, '..data_tmp'));
  renameSync(path.join(volume, '..data_tmp'), path.join(volume, '..data'));
  await until(() => watcher.current.serial === serials[1], 'the symlink swap to be picked up');

  // 2. In place, file by file (as `cp` would): first a torn state (new key, old certificate).
  await sleep(IN_PLACE_AT_MS - (Date.now() - started));
  echoedAtSwap.push(streams.map((s) => s.echoed));
  copyFileSync(path.join(versions[2]!, 'tls.key'), path.join(volume, 'tls.key'));
  t.equal(watcher.reload(), false, 'a half-written identity is refused...');
  t.equal(watcher.current.serial, serials[1], '...and the last good one stays in use');
  await sleep(300); // traffic keeps flowing on the last good identity meanwhile
  copyFileSync(path.join(versions[2]!, 'tls.crt'), path.join(volume, 'tls.crt'));
  copyFileSync(path.join(versions[2]!, 'ca.crt'), path.join(volume, 'ca.crt'));
  await until(() => watcher.current.serial === serials[2], 'the in-place rewrite to be picked up');

  await sleep(RUN_MS - (Date.now() - started));
  opening = false;
  await Promise.all(workers);
  const echoedBeforeEnd = streams.map((s) => s.echoed);
  streaming = false;
  await Promise.all(writers);
  for (const s of streams) s.socket.end();
  await Promise.all(streams.map((s) => s.closed));

  // New connections: none failed, each saw the identity current when it started, or a newer one.
  const failed = attempts.filter((a) => !a.ok);
  t.equal(failed.length, 0, `no failed connection out of ${attempts.length}`);
  for (const f of failed.slice(0, 5)) t.comment(f.detail ?? '');
  const direct = attempts.filter((a) => a.via === 'direct');
  t.ok(direct.every((a) => a.seen !== undefined && a.seen >= a.versionAtStart), 'every direct connection saw the serial current when it started, or a newer one');
  t.ok(direct.every((a) => a.seen !== -1), 'and only serials of our three versions');
  for (const v of [0, 1, 2]) {
    // (One that started just before a rotation may already be served by the next identity.)
    const started = direct.filter((a) => a.versionAtStart === v).length;
    const served = direct.filter((a) => a.seen === v).length;
    t.ok(started >= 5 && served >= 5, `v${v + 1}: ${started} connections started while it was current, ${served} served with its serial`);
  }
  t.ok(attempts.filter((a) => a.via === 'outbound').length >= 5, 'connections through the outbound sidecar too');

  // Long-lived connections: still flowing after each rotation, every byte back, in order.
  for (const [i, s] of streams.entries()) {
    t.equal(s.error, undefined, `long-lived #${i} (${s.via}): no error`);
    t.ok(echoedAtSwap.every((atSwap) => echoedBeforeEnd[i]! > atSwap[i]!), `long-lived #${i}: still flowing after both rotations`);
    t.equal(s.echoed, s.sent, `long-lived #${i}: all ${s.sent} bytes came back`);
    t.equal(s.echoedHash.digest('hex'), s.sentHash.digest('hex'), `long-lived #${i}: unchanged and in order`);
    if (s.via === 'direct') t.equal(s.serial, serials[0], `long-lived #${i}: keeps the identity it started with (v1)`);
  }

  t.equal(await metric(inbound.registry, 'meshlet_proxy_connections_refused_total'), 0, 'inbound refused nothing');
  const closed = await metric(inbound.registry, 'meshlet_tcp_connections_closed_total');
  t.equal(await metric(inbound.registry, 'meshlet_tcp_connections_closed_total', { response_flags: '-' }), closed, 'every inbound connection closed without a flag');
  t.equal(closed, attempts.length + streams.length, 'and the inbound side saw each of them');
  t.equal(await metric(outbound.registry, 'meshlet_tcp_connections_closed_total', { response_flags: 'UF' }), 0, 'no upstream failure on the outbound side');
  const rotations = watcherLog.lines.filter((l) => l.msg === 'identity rotated');
  t.same(rotations.map((l) => [l.previousSerial, l.serial]), [[serials[0], serials[1]], [serials[1], serials[2]]], 'two rotations logged, in order');
  t.ok(watcherLog.lines.some((l) => l.msg === 'identity reload refused; keeping the last good identity' && /tls\.key: does not match/.test(String(l.err))), 'the torn state was logged');
});
