// Shared by the L7 end-to-end tests (l7.test.ts: one sidecar; l7-mtls.test.ts: a sidecar
// pair over mTLS): the server apps in pod b, the real clients (curl, nghttp, h2load, the
// gRPC and WebSocket apps) run in pod a as the app UID, and the checks that hold in
// both set-ups. Every client has its own time limit, so a proxy that stalls fails a check
// instead of hanging the file.
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Test } from 'tap';
import type { CallResult } from '../../src/testbed/apps/grpc-app.ts';
import type { Report } from '../../src/testbed/apps/http-echo-app.ts';
import { IdentityStore, type IssuedIdentity } from '../../src/testbed/identities.ts';
import { APP_UID, REPO_ROOT, Testbed, type Pod, type SpawnedProcess } from '../../src/testbed/netns.ts';

export const APPS = {
  http: path.join(REPO_ROOT, 'src/testbed/apps/http-echo-app.ts'),
  grpc: path.join(REPO_ROOT, 'src/testbed/apps/grpc-app.ts'),
  ws: path.join(REPO_ROOT, 'src/testbed/apps/ws-app.ts'),
  greeter: path.join(REPO_ROOT, 'src/testbed/apps/greeter-app.ts'),
};

/** Ports of the apps in pod b. */
export const PORT = {
  h1: 8080,
  h2c: 8082,
  grpc: 50051,
  ws: 8090,
  mysql: 3306, // in protocols.opaquePorts by default: no detection
  serverFirst: 3307, // not opaque: the proxy waits its detect timeout, then forwards as TCP
  closed: 8099, // nothing listens here
} as const;

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function eventually(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}

export interface ServerApps {
  http: SpawnedProcess;
  grpc: SpawnedProcess;
  ws: SpawnedProcess;
  greeter: SpawnedProcess;
}

/** Starts every server app in `pod` as the app UID and waits until they listen. */
export async function startServerApps(pod: Pod): Promise<ServerApps> {
  const opts = { uid: APP_UID };
  const apps = {
    http: pod.node([APPS.http, '--port', String(PORT.h1), '--h2c-port', String(PORT.h2c), '--pod', pod.name], opts),
    grpc: pod.node([APPS.grpc, 'server', '--port', String(PORT.grpc)], opts),
    ws: pod.node([APPS.ws, 'server', '--port', String(PORT.ws)], opts),
    greeter: pod.node([APPS.greeter, 'server', '--port', `${PORT.mysql},${PORT.serverFirst}`], opts),
  };
  await apps.http.waitForLine(/"proto":"h2c"/);
  await apps.http.waitForLine(/"proto":"http\/1.1"/);
  await apps.grpc.waitForLine(/listening/);
  await apps.ws.waitForLine(/listening/);
  await apps.greeter.waitForLine(new RegExp(`"listening":${PORT.serverFirst}`));
  await apps.greeter.waitForLine(new RegExp(`"listening":${PORT.mysql}`));
  return apps;
}

/** A scratch directory the app UID can write (curl's header dumps and bodies). */
export interface MeshedPair {
  a: Pod;
  b: Pod;
  /** The testbed, with any pods asked for besides a and b (not meshed). */
  tb: Testbed;
  idA: IssuedIdentity;
  idB: IssuedIdentity;
  proxyA: SpawnedProcess;
  proxyB: SpawnedProcess;
  apps: ServerApps;
  /** A scratch directory for the test's files. */
  dir: string;
}

/**
 * Pods a and b, both meshed with identities from one `meshlet ca` (ns-a/sa-a, ns-b/sa-b):
 * a sends b's traffic over mTLS expecting b's exact SPIFFE ID, b's inbound is strict,
 * and the server apps run in b. Everything is removed when `t` ends.
 */
export async function meshedPair(t: Test, env: { a?: NodeJS.ProcessEnv; b?: NodeJS.ProcessEnv } = {}, others: string[] = []): Promise<MeshedPair> {
  const TD = 'cluster.local';
  const ids = new IdentityStore();
  t.teardown(() => ids.remove());
  const tmp = scratch();
  t.teardown(tmp.remove);
  const tb = await Testbed.create(['a', 'b', ...others]);
  t.teardown(() => tb.destroy());
  const [a, b] = [tb.pod('a'), tb.pod('b')];
  const ca = await ids.ca('ca', TD);
  const idA = await ids.issue(ca, `spiffe://${TD}/ns/ns-a/sa/sa-a`, { name: 'a' });
  const idB = await ids.issue(ca, `spiffe://${TD}/ns/ns-b/sa/sa-b`, { name: 'b' });
  t.equal((await a.init()).code, 0, 'init in a');
  t.equal((await b.init()).code, 0, 'init in b');
  const proxyA = await a.startProxy({
    MESHLET_IDENTITY_DIR: idA.dir,
    MESHLET_MESH_PEERS: `[{cidrs: [${b.ipv4}/32, "${b.ipv6}/128"], spiffeId: "${idB.spiffeId}"}]`,
    ...env.a,
  });
  const proxyB = await b.startProxy({ MESHLET_IDENTITY_DIR: idB.dir, MESHLET_INBOUND_MTLS: 'strict', ...env.b });
  const apps = await startServerApps(b);
  t.teardown(() => {
    if (!t.passing()) t.comment(`a's proxy, last lines:\n${tail(proxyA)}\n\nb's proxy, last lines:\n${tail(proxyB)}`);
  });
  return { a, b, tb, idA, idB, proxyA, proxyB, apps, dir: tmp.dir };
}

export function scratch(): { dir: string; remove: () => void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'meshlet-l7-'));
  chmodSync(dir, 0o777);
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

// --- curl ---------------------------------------------------------------------------

export type HeaderList = Array<[string, string]>;

export interface CurlResult {
  exit: number | null;
  stderr: string;
  /** The final (non-1xx) response's status, 0 when there was none. */
  status: number;
  httpVersion: string;
  /** Header names exactly as they came over the wire. */
  headers: HeaderList;
  trailers: HeaderList;
  body: Buffer;
}

let seq = 0;

/** `curl` in `pod` as the app UID; headers (-D) and body (-o) go to files, so bytes stay bytes. */
export async function curl(pod: Pod, dir: string, args: string[]): Promise<CurlResult> {
  const n = ++seq;
  const [hdr, body] = [path.join(dir, `h${n}`), path.join(dir, `b${n}`)];
  const r = await pod.run(['curl', '-sS', '--max-time', '15', '-D', hdr, '-o', body, ...args], { uid: APP_UID, timeoutMs: 30_000 });
  const read = (f: string) => {
    try {
      return readFileSync(f);
    } catch {
      return Buffer.alloc(0);
    }
  };
  return { exit: r.code, stderr: r.stderr, ...parseDump(read(hdr).toString('latin1')), body: read(body) };
}

/** curl's -D dump: 1xx blocks, the final response head, then trailers (if any). */
export function parseDump(text: string): { status: number; httpVersion: string; headers: HeaderList; trailers: HeaderList } {
  const line = (l: string): [string, string] => {
    const colon = l.indexOf(':');
    return [l.slice(0, colon), l.slice(colon + 1).trim()];
  };
  let out = { status: 0, httpVersion: '', headers: [] as HeaderList, trailers: [] as HeaderList };
  for (const block of text.split(/\r?\n\r?\n/).filter((b) => b.trim() !== '')) {
    const lines = block.split(/\r?\n/);
    const statusLine = /^HTTP\/([\d.]+) (\d{3})/.exec(lines[0]!);
    if (statusLine) {
      out = { status: Number(statusLine[2]), httpVersion: statusLine[1]!, headers: lines.slice(1).map(line), trailers: [] };
    } else {
      out.trailers.push(...lines.filter((l) => l.trim() !== '').map(line));
    }
  }
  return out;
}

/** The first value of `name` (any case). */
export const header = (list: HeaderList, name: string) => list.find(([n]) => n.toLowerCase() === name.toLowerCase())?.[1];
/** [name, value] pairs from a Node rawHeaders list. */
export const pairs = (raw: string[]): HeaderList => raw.flatMap((v, i) => (i % 2 === 0 ? [[v, raw[i + 1]!] as [string, string]] : []));
export const meshHeaders = (names: string[]) => names.filter((n) => n.toLowerCase().startsWith('meshlet-'));
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** The JSON report http-echo-app answers with. */
export type { Report };

export function report(r: CurlResult): Report | undefined {
  try {
    return JSON.parse(r.body.toString()) as Report;
  } catch {
    return undefined;
  }
}

// --- the other clients --------------------------------------------------------------

export type GrpcCall = CallResult;

async function jsonLine<T>(pod: Pod, argv: string[], what: string): Promise<T> {
  const r = await pod.run([process.execPath, ...argv], { uid: APP_UID, timeoutMs: 60_000 });
  const last = r.stdout.trim().split('\n').at(-1) ?? '';
  try {
    return JSON.parse(last) as T;
  } catch {
    throw new Error(`${what} printed no result (exit ${r.code ?? r.signal}): ${r.stdout.slice(-1000)} ${r.stderr.slice(-2000)}`);
  }
}

export async function grpcClient(pod: Pod, host: string, port: number, calls: string[]): Promise<Record<string, GrpcCall>> {
  const out = await jsonLine<{ calls: Record<string, GrpcCall> }>(
    pod,
    [APPS.grpc, 'client', '--host', host, '--port', String(port), '--calls', calls.join(','), '--timeout', '10000'],
    'the gRPC client',
  );
  return out.calls;
}

export interface WsResult {
  ok: boolean;
  error?: string;
  status?: number;
  responseRawHeaders?: string[];
  hello?: { url: string; rawHeaders: string[] };
  echoed: number;
  closeCode?: number;
}

export const wsClient = (pod: Pod, host: string, port: number, messages: number) =>
  jsonLine<WsResult>(pod, [APPS.ws, 'client', '--host', host, '--port', String(port), '--messages', String(messages), '--timeout', '15000'], 'the WebSocket client');

export const greeterClient = (pod: Pod, host: string, port: number) =>
  jsonLine<{ ok: boolean; greeting?: string; welcome?: string; error?: string }>(pod, [APPS.greeter, 'client', '--host', host, '--port', String(port), '--timeout', '15000'], 'the greeter client');

// --- checks shared by the one-sidecar and the sidecar-pair set-ups ------------------

export interface Setup {
  client: Pod;
  server: Pod;
  apps: ServerApps;
  dir: string;
}

/** Assertions about what the server app saw that hold for every request through the mesh. */
function checkSeen(t: Test, raw: string[] | undefined, what: string): void {
  if (!raw) {
    t.fail(`${what}: no report from the server app`);
    return;
  }
  const names = pairs(raw).map(([n]) => n);
  t.same(meshHeaders(names), [], `${what}: the app received no meshlet-* header`);
  const ids = pairs(raw).filter(([n]) => n.toLowerCase() === 'x-request-id');
  t.equal(ids.length, 1, `${what}: the app received one x-request-id`);
  t.ok(ids[0]?.[1], `${what}: x-request-id is not empty`);
}

function checkReturned(t: Test, headers: HeaderList, what: string): void {
  t.same(meshHeaders(headers.map(([n]) => n)), [], `${what}: the client got no meshlet-* header back`);
}

async function checkHttp1(t: Test, s: Setup): Promise<void> {
  const host = s.server.ipv4;
  const base = `http://${host}:${PORT.h1}`;

  await t.test('GET: header-name case both ways, Host, x-request-id, no meshlet-* headers', async (t) => {
    const r = await curl(s.client, s.dir, ['-H', 'X-MiXeD-Case: 1', '-H', 'x-lower-case: 2', `${base}/get?q=1`]);
    t.equal(r.exit, 0, `curl exit 0 ${r.stderr}`);
    t.equal(r.status, 200);
    t.equal(r.httpVersion, '1.1', 'answered in HTTP/1.1');
    const seen = report(r);
    t.equal(seen?.proto, 'http/1.1', 'the app was spoken to in HTTP/1.1');
    t.equal(seen?.url, '/get?q=1');
    const got = pairs(seen?.rawHeaders ?? []);
    t.ok(got.some(([n, v]) => n === 'X-MiXeD-Case' && v === '1'), `the app saw "X-MiXeD-Case: 1" in that case: ${JSON.stringify(seen?.rawHeaders)}`);
    t.ok(got.some(([n, v]) => n === 'x-lower-case' && v === '2'), 'and "x-lower-case: 2" in lower case');
    t.equal(header(got, 'host'), `${host}:${PORT.h1}`, 'Host preserved');
    t.ok(got.some(([n]) => n === 'Host'), 'named "Host", as curl sent it');
    checkSeen(t, seen?.rawHeaders, 'GET');
    t.ok(r.headers.some(([n, v]) => n === 'X-Resp-MiXeD' && v === 'yes'), `curl saw "X-Resp-MiXeD: yes" in that case: ${JSON.stringify(r.headers)}`);
    t.ok(r.headers.some(([n]) => n === 'Content-Type'), 'and "Content-Type" as the app wrote it');
    checkReturned(t, r.headers, 'GET');
  });

  await t.test('a client x-request-id is kept as it is', async (t) => {
    const r = await curl(s.client, s.dir, ['-H', 'X-Request-Id: client-chose-this-id', `${base}/id`]);
    t.equal(r.status, 200, r.stderr);
    const ids = pairs(report(r)?.rawHeaders ?? []).filter(([n]) => n.toLowerCase() === 'x-request-id');
    t.same(ids.map(([, v]) => v), ['client-chose-this-id']);
  });

  await t.test('POST with a 300 kB body and Expect: 100-continue arrives intact', async (t) => {
    const data = randomBytes(300_000);
    const file = path.join(s.dir, `post-${++seq}`);
    writeFileSync(file, data, { mode: 0o644 });
    const r = await curl(s.client, s.dir, ['-X', 'POST', '-H', 'Expect: 100-continue', '-H', 'Content-Type: application/octet-stream', '--data-binary', `@${file}`, `${base}/post`]);
    t.equal(r.status, 200, r.stderr);
    const seen = report(r);
    t.equal(seen?.method, 'POST');
    t.equal(seen?.bodyBytes, data.length, 'every byte arrived');
    t.equal(seen?.bodySha256, sha256(data), 'unchanged');
    checkSeen(t, seen?.rawHeaders, 'POST');
    checkReturned(t, r.headers, 'POST');
  });

  await t.test('chunked response with trailers', async (t) => {
    const r = await curl(s.client, s.dir, [`${base}/trailers?bytes=200000`]);
    t.equal(r.status, 200, r.stderr);
    t.equal(r.body.length, 200_000, 'the whole body');
    t.equal(header(r.headers, 'transfer-encoding'), 'chunked', 'chunked to the client (trailers need it)');
    t.equal(header(r.trailers, 'x-body-sha256'), sha256(r.body), `the trailer arrived and matches the body: ${JSON.stringify(r.trailers)}`);
    t.equal(header(r.trailers, 'x-trailer-case'), 'MiXeD', 'the second trailer too');
    checkReturned(t, [...r.headers, ...r.trailers], 'trailers');
  });

  await t.test('no Date header is added when the app sends none', async (t) => {
    const r = await curl(s.client, s.dir, [`${base}/nodate`]);
    t.equal(r.status, 200, r.stderr);
    t.equal(header(r.headers, 'date'), undefined, `no Date: ${JSON.stringify(r.headers)}`);
  });

  await t.test('IPv6', async (t) => {
    const r = await curl(s.client, s.dir, [`http://[${s.server.ipv6}]:${PORT.h1}/v6`]);
    t.equal(r.status, 200, r.stderr);
    t.equal(header(pairs(report(r)?.rawHeaders ?? []), 'host'), `[${s.server.ipv6}]:${PORT.h1}`);
  });
}

async function checkHttp2(t: Test, s: Setup): Promise<void> {
  const host = s.server.ipv4;
  const base = `http://${host}:${PORT.h2c}`;

  await t.test('curl --http2-prior-knowledge GET and POST', async (t) => {
    const r = await curl(s.client, s.dir, ['--http2-prior-knowledge', '-H', 'X-MiXeD-Case: 1', `${base}/get`]);
    t.equal(r.exit, 0, `curl exit 0 ${r.stderr}`);
    t.equal(r.status, 200);
    t.equal(r.httpVersion, '2', 'answered in HTTP/2');
    const seen = report(r);
    t.equal(seen?.proto, 'h2c', 'the app was spoken to in HTTP/2');
    t.equal(header(pairs(seen?.rawHeaders ?? []), ':authority'), `${host}:${PORT.h2c}`, ':authority preserved');
    t.equal(header(pairs(seen?.rawHeaders ?? []), 'x-mixed-case'), '1');
    checkSeen(t, seen?.rawHeaders, 'h2 GET');
    t.equal(header(r.headers, 'x-resp-mixed'), 'yes');
    checkReturned(t, r.headers, 'h2 GET');

    const data = randomBytes(300_000);
    const file = path.join(s.dir, `post-${++seq}`);
    writeFileSync(file, data, { mode: 0o644 });
    const p = await curl(s.client, s.dir, ['--http2-prior-knowledge', '--data-binary', `@${file}`, `${base}/post`]);
    t.equal(p.status, 200, p.stderr);
    t.equal(report(p)?.bodyBytes, data.length, 'POST body: every byte (more than the 64 KiB initial window)');
    t.equal(report(p)?.bodySha256, sha256(data), 'unchanged');
  });

  await t.test('h2 trailers and a body larger than the flow-control window', async (t) => {
    const r = await curl(s.client, s.dir, ['--http2-prior-knowledge', `${base}/trailers?bytes=500000`]);
    t.equal(r.status, 200, r.stderr);
    t.equal(r.body.length, 500_000);
    t.equal(header(r.trailers, 'x-body-sha256'), sha256(r.body), `trailer matches the body: ${JSON.stringify(r.trailers)}`);
    checkReturned(t, [...r.headers, ...r.trailers], 'h2 trailers');
  });

  await t.test('no Date header is added when the app sends none (h2)', async (t) => {
    const r = await curl(s.client, s.dir, ['--http2-prior-knowledge', `${base}/nodate`]);
    t.equal(r.status, 200, r.stderr);
    t.equal(header(r.headers, 'date'), undefined, `no date: ${JSON.stringify(r.headers)}`);
  });

  await t.test('nghttp', async (t) => {
    const r = await s.client.run(['nghttp', '-t', '15', '-H', 'x-from: nghttp', `${base}/nghttp`], { uid: APP_UID, timeoutMs: 30_000 });
    t.equal(r.code, 0, `nghttp exit 0 ${r.stderr}`);
    let seen: Report | undefined;
    try {
      seen = JSON.parse(r.stdout) as Report;
    } catch {
      t.fail(`nghttp printed no report: ${r.stdout.slice(0, 500)}`);
    }
    t.equal(seen?.proto, 'h2c');
    t.equal(header(pairs(seen?.rawHeaders ?? []), 'x-from'), 'nghttp');
    checkSeen(t, seen?.rawHeaders, 'nghttp');
  });

  await t.test('h2load: 60 requests, 3 connections, 10 concurrent streams each', async (t) => {
    const r = await s.client.run(['h2load', '-n', '60', '-c', '3', '-m', '10', '-T', '15', `${base}/h2load`], { uid: APP_UID, timeoutMs: 30_000 });
    t.equal(r.code, 0, r.stderr);
    t.match(r.stdout, /requests: 60 total, 60 started, 60 done, 60 succeeded, 0 failed, 0 errored/, r.stdout.split('\n').filter((l) => /requests:|status codes:/.test(l)).join(' | '));
    t.match(r.stdout, /status codes: 60 2xx/);
  });
}

async function checkGrpc(t: Test, s: Setup): Promise<void> {
  const calls = await grpcClient(s.client, s.server.ipv4, PORT.grpc, ['unary', 'server-stream', 'client-stream', 'fail', 'deadline', 'cancel']);
  const noMesh = (call: GrpcCall | undefined, what: string) => {
    t.same(meshHeaders(Object.keys(call?.headers ?? {})), [], `${what}: no meshlet-* response header`);
    t.same(meshHeaders(Object.keys(call?.trailers ?? {})), [], `${what}: no meshlet-* trailer`);
  };

  const unary = calls.unary;
  t.equal(unary?.codeName, 'OK', `unary: ${unary?.details}`);
  t.equal(unary?.message, 'hello unary');
  t.equal(unary?.payloadIntact, true, 'unary: a 100 kB payload both ways intact');
  t.same(unary?.headers['x-echo-header'], ['unary'], 'unary: response headers arrive');
  t.same(unary?.trailers['x-echo-trailer'], ['unary-done'], 'unary: trailers arrive');
  const saw = (unary?.serverSawMetadata ?? {}) as Record<string, string[]>;
  t.same(saw['x-client-meta'], ['from-the-client'], 'unary: the server got the client metadata');
  t.same(meshHeaders(Object.keys(saw)), [], 'unary: the server got no meshlet-* metadata');
  t.equal(saw['x-request-id']?.length, 1, 'unary: the server got an x-request-id');
  noMesh(unary, 'unary');

  const ss = calls['server-stream'];
  t.equal(ss?.codeName, 'OK', `server streaming: ${ss?.details}`);
  t.equal(ss?.received, 64, 'server streaming: all 64 messages (1 MiB: flow control end to end)');
  t.equal(ss?.inOrder, true, 'in order');
  t.same(ss?.trailers['x-sha256'], [ss?.sha256], 'server streaming: the trailer carries the hash of what arrived');
  noMesh(ss, 'server streaming');

  const cs = calls['client-stream'];
  t.equal(cs?.codeName, 'OK', `client streaming: ${cs?.details}`);
  t.equal(cs?.count, 20, 'client streaming: the server counted 20 messages');
  t.equal(cs?.payloadIntact, true, 'client streaming: payloads intact');
  t.same(cs?.trailers['x-echo-trailer'], ['client-stream-done']);
  noMesh(cs, 'client streaming');

  const fail = calls.fail;
  t.equal(fail?.code, 5, `error status: NOT_FOUND arrives (got ${fail?.codeName}: ${fail?.details}; headers ${JSON.stringify(fail?.headers)}, trailers ${JSON.stringify(fail?.trailers)})`);
  t.equal(fail?.details, fail?.requestedDetails, 'grpc-message arrives unchanged (percent-encoded non-ASCII)');
  t.same(fail?.trailers['x-fail-detail'], ['from-the-app'], 'with the trailers of the error');
  noMesh(fail, 'error status');

  const deadline = calls.deadline;
  t.equal(deadline?.code, 4, `deadline: DEADLINE_EXCEEDED at the client (got ${deadline?.codeName}: ${deadline?.details})`);
  t.same(deadline?.headers['x-echo-header'], ['slow'], 'deadline: the call had reached the server');

  const cancel = calls.cancel;
  t.equal(cancel?.code, 1, `cancel: CANCELLED at the client (got ${cancel?.codeName})`);
  const cancelled = (id: unknown) => s.apps.grpc.output().stdout.includes(`"cancelled":"Slow","id":"${String(id)}"`);
  t.ok(await eventually(() => cancelled(cancel?.id), 'cancellation'), "cancel: the client's RST_STREAM reached the server (it saw the call cancelled)");
  t.ok(await eventually(() => cancelled(deadline?.id), 'deadline cancellation'), 'deadline: the server saw the call end too');
}

async function checkWebSocket(t: Test, s: Setup): Promise<void> {
  const r = await wsClient(s.client, s.server.ipv4, PORT.ws, 12);
  t.ok(r.ok, `WebSocket session: ${r.error ?? 'ok'}`);
  t.equal(r.status, 101, 'upgraded');
  t.equal(r.echoed, 12, 'all 12 messages echoed (text and binary, up to 256 KiB)');
  t.equal(r.closeCode, 1000, 'closed cleanly');
  t.equal(r.hello?.url, '/chat');
  const seen = pairs(r.hello?.rawHeaders ?? []);
  t.ok(seen.some(([n, v]) => n === 'X-WS-MiXeD' && v === 'ws-case'), `the app saw X-WS-MiXeD in that case: ${JSON.stringify(r.hello?.rawHeaders)}`);
  t.equal(header(seen, 'upgrade')?.toLowerCase(), 'websocket', 'the app saw Upgrade: websocket');
  t.same(meshHeaders(seen.map(([n]) => n)), [], 'the app got no meshlet-* header');
  t.same(meshHeaders(pairs(r.responseRawHeaders ?? []).map(([n]) => n)), [], 'the client got no meshlet-* header in the 101');
}

/** Requests to a port of the server pod where nothing listens: the proxy answers itself. */
async function checkConnectFailure(t: Test, s: Setup): Promise<void> {
  const url = `http://${s.server.ipv4}:${PORT.closed}/nothing-here`;
  const h1 = await curl(s.client, s.dir, [url]);
  t.equal(h1.status, 503, `HTTP/1.1: 503 (curl exit ${h1.exit}: ${h1.stderr.trim()})`);
  t.equal(header(h1.headers, 'meshlet-error'), 'upstream_connect_failure', `HTTP/1.1: meshlet-error: ${JSON.stringify(h1.headers)}`);

  const h2 = await curl(s.client, s.dir, ['--http2-prior-knowledge', url]);
  t.equal(h2.status, 503, `HTTP/2: 503 (curl exit ${h2.exit}: ${h2.stderr.trim()})`);
  t.equal(header(h2.headers, 'meshlet-error'), 'upstream_connect_failure', `HTTP/2: meshlet-error: ${JSON.stringify(h2.headers)}`);

  const { unary } = await grpcClient(s.client, s.server.ipv4, PORT.closed, ['unary']);
  t.equal(unary?.code, 14, `gRPC: UNAVAILABLE (got ${unary?.codeName}: ${unary?.details})`);
  t.same(unary?.trailers['meshlet-error'], ['upstream_connect_failure'], `gRPC: made by the proxy (meshlet-error): ${JSON.stringify(unary?.trailers)}`);
}

async function checkServerFirst(t: Test, s: Setup): Promise<void> {
  for (const port of [PORT.mysql, PORT.serverFirst]) {
    const r = await greeterClient(s.client, s.server.ipv4, port);
    t.ok(r.ok, `port ${port}: greeting, answer and welcome went through (${r.error ?? r.welcome})`);
    t.match(r.greeting ?? '', new RegExp(`^GREETING [0-9a-f]+ from ${port}$`), `port ${port}: the server's greeting came first`);
  }
}

/** After the bad cases, the proxies still serve. */
async function checkStillUp(t: Test, s: Setup, proxies: SpawnedProcess[]): Promise<void> {
  for (const p of proxies) t.equal(p.child.exitCode ?? p.child.signalCode, null, 'the proxy is still running');
  const h1 = await curl(s.client, s.dir, [`http://${s.server.ipv4}:${PORT.h1}/after`]);
  t.equal(h1.status, 200, `HTTP/1.1 still served ${h1.stderr}`);
  const h2 = await curl(s.client, s.dir, ['--http2-prior-knowledge', `http://${s.server.ipv4}:${PORT.h2c}/after`]);
  t.equal(h2.status, 200, `HTTP/2 still served ${h2.stderr}`);
  const { unary } = await grpcClient(s.client, s.server.ipv4, PORT.grpc, ['unary']);
  t.equal(unary?.codeName, 'OK', `gRPC still served ${unary?.details}`);
}

/** The last lines a proxy logged, for a failure's diagnostics. */
export function tail(proc: SpawnedProcess, lines = 30): string {
  const { stdout, stderr } = proc.output();
  return [...stdout.trim().split('\n').slice(-lines), ...(stderr.trim() ? ['stderr:', ...stderr.trim().split('\n').slice(-10)] : [])].join('\n');
}

/** The whole client set, in order, through whatever sidecars `proxies` are: the same in every set-up. */
export async function checkClients(t: Test, s: Setup, proxies: SpawnedProcess[]): Promise<void> {
  await t.test('HTTP/1.1 (curl)', (t) => checkHttp1(t, s));
  await t.test('HTTP/2 prior knowledge (curl, nghttp, h2load)', (t) => checkHttp2(t, s));
  await t.test('gRPC: unary, server and client streaming, error status, deadline, cancel', (t) => checkGrpc(t, s));
  await t.test('WebSocket echo', (t) => checkWebSocket(t, s));
  await t.test('nothing listening: 503 upstream_connect_failure from a sidecar; gRPC UNAVAILABLE', (t) => checkConnectFailure(t, s));
  await t.test('server-first protocol, opaque port 3306 and detected port 3307', (t) => checkServerFirst(t, s));
  await t.test('the proxies still serve after the bad cases', (t) => checkStillUp(t, s, proxies));
}
