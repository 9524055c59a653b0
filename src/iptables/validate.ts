import { spawn, type ChildProcessByStdio } from 'node:child_process';
import net from 'node:net';
import os from 'node:os';
import type { Readable } from 'node:stream';
import { MeshletError, describeError } from '../errors.ts';
import { unmapIPv4 } from '../net/addresses.ts';
import { readOriginalDst } from '../net/original-dst.ts';
import type { InitOptions } from './options.ts';
import type { Family } from './rules.ts';
import { addressInCidrs, canonicalIPv6, portInRanges } from './values.ts';

// `--validate`: prove from inside the namespace, with real connections, that the rules
// in the kernel do what they should — before the pod's app starts and relies on them.
//
// The init container runs before the proxy exists, so we stand in for it: listen on the
// outbound port, connect (as the current, non-proxy user) to a test destination, and
// check that the connection arrives on our listener with SO_ORIGINAL_DST equal to that
// destination. Then a child process running as the proxy's UID/GID connects to the same
// destination, and must NOT arrive on our listener (else the proxy would loop).
//
// Test destination: 192.0.2.2 / 2001:db8::2 (documentation ranges; a redirected SYN
// never leaves the pod). Without a route to them (a namespace with no default route),
// connect() fails before netfilter is consulted, so we fall back to one of the
// namespace's own addresses, on a port where a "decoy" listener of ours waits: then
// every connection ends on exactly one of our two listeners, and which one is the
// answer — no waiting for something not to happen.

const TEST_NET: Record<Family, string> = { 4: '192.0.2.2', 6: '2001:db8::2' };
const UNREACHABLE = new Set(['ENETUNREACH', 'EHOSTUNREACH', 'EADDRNOTAVAIL']);
/** Bounds for failure paths only; a working setup answers in microseconds. */
const CONNECT_TIMEOUT_MS = 3000;
const ACCEPT_TIMEOUT_MS = 3000;
const CHILD_CONNECT_TIMEOUT_MS = 2000;

interface Target {
  readonly address: string;
  readonly port: number;
  /** How it was chosen, for the report. */
  readonly note: string;
  /** Our listener on the target itself, when the target is a local address. */
  readonly decoy?: AcceptLog;
}

export async function validateRedirection(options: InitOptions, families: readonly Family[]): Promise<string[]> {
  if (process.getuid?.() === options.proxyUid) {
    throw fail(`validation must not run as the proxy uid ${options.proxyUid}: its traffic is exempt from redirection by design`);
  }
  const listener = await listenOnOutboundPort(options.outboundPort);
  const report: string[] = [];
  try {
    for (const family of families) report.push(await validateFamily(options, family, listener));
  } finally {
    listener.close();
  }
  return report;
}

async function validateFamily(options: InitOptions, family: Family, listener: AcceptLog): Promise<string> {
  const ip = `IPv${family}`;
  const target = await redirectedConnection(options, family, listener);
  try {
    const proxy = await proxyConnection(options, target, listener);
    return `${ip} validated: a connection to ${hostPort(target.address, target.port)} (${target.note}) was redirected to port ${options.outboundPort} with that original destination; uid ${options.proxyUid}'s connection ${proxy}`;
  } finally {
    target.decoy?.close();
  }
}

/** Connect as ourselves to the first usable target; it must land on our listener. */
async function redirectedConnection(options: InitOptions, family: Family, listener: AcceptLog): Promise<Target> {
  const ip = `IPv${family}`;
  const skipped: string[] = [];
  const testPort = firstRedirectedPort(options);
  const candidates: Array<() => Promise<Target | undefined>> = [];
  if (testPort !== undefined && wouldRedirect(options, TEST_NET[family], testPort)) {
    candidates.push(async () => ({ address: TEST_NET[family], port: testPort, note: 'test address' }));
  } else {
    skipped.push(`${TEST_NET[family]} is not redirected by the configured rules`);
  }
  const own = ownAddresses(family);
  for (const address of own) {
    candidates.push(async () => {
      if (!wouldRedirect(options, address, 1) && !wouldRedirect(options, address, 65535)) {
        skipped.push(`${address} is not redirected by the configured rules`);
        return undefined;
      }
      const target = await decoyTarget(options, address);
      if (!target) skipped.push(`no port the rules redirect could be bound on ${address}`);
      return target;
    });
  }
  if (own.length === 0) skipped.push(`no global ${ip} address in this namespace`);

  for (const candidate of candidates) {
    const target = await candidate();
    if (!target) continue;
    const outcome = await connectAndMatch(target, listener);
    if (outcome.kind === 'unreachable') {
      skipped.push(`${target.address} unreachable (${outcome.code})`);
      target.decoy?.close();
      continue;
    }
    try {
      checkRedirected(options, target, outcome, ip);
    } catch (err) {
      target.decoy?.close();
      throw err;
    }
    const note = skipped.length > 0 && target.decoy ? `this namespace's own address, since ${skipped.join('; ')}` : target.note;
    return { ...target, note };
  }
  const scope = options.includeOutboundCidrs === 'all' ? '' : ' (--include-outbound-cidrs limits what is redirected)';
  throw fail(`${ip}: validation cannot run: no destination that the rules redirect is reachable from here${scope}: ${skipped.join('; ') || 'every candidate port is excluded'}`);
}

function checkRedirected(options: InitOptions, target: Target, outcome: Outcome, ip: string): void {
  const dest = hostPort(target.address, target.port);
  switch (outcome.kind) {
    case 'accepted': {
      if (outcome.by === 'decoy') {
        throw fail(`${ip}: a connection to ${dest} was NOT redirected to port ${options.outboundPort}: it reached the destination directly`);
      }
      const original = outcome.originalDst;
      if (original instanceof Error) {
        throw fail(`${ip}: a connection to ${dest} arrived on port ${options.outboundPort} but its original destination is unreadable: ${describeError(original)}`);
      }
      if (original !== dest) {
        throw fail(`${ip}: a connection to ${dest} arrived on port ${options.outboundPort} with original destination ${original}, expected ${dest}`);
      }
      return;
    }
    case 'connected-elsewhere':
      throw fail(`${ip}: a connection to ${dest} was NOT redirected to port ${options.outboundPort}: it connected to the destination directly`);
    case 'error':
      throw fail(`${ip}: a connection to ${dest} was NOT redirected to port ${options.outboundPort}: ${outcome.code}`);
    case 'timeout':
      throw fail(`${ip}: a connection to ${dest} was NOT redirected to port ${options.outboundPort}: connect timed out`);
    case 'unreachable':
      throw fail(`${ip}: ${dest} is unreachable (${outcome.code})`);
  }
}

type Outcome =
  | { kind: 'accepted'; by: 'listener' | 'decoy'; socket: net.Socket; originalDst?: string | Error }
  | { kind: 'connected-elsewhere' }
  | { kind: 'unreachable'; code: string }
  | { kind: 'error'; code: string }
  | { kind: 'timeout' };

async function connectAndMatch(target: Target, listener: AcceptLog): Promise<Outcome> {
  const client = net.connect({ host: target.address, port: target.port });
  try {
    const connected = await new Promise<{ ok: true } | { ok: false; code: string }>((resolve) => {
      client.setTimeout(CONNECT_TIMEOUT_MS, () => resolve({ ok: false, code: 'ETIMEDOUT' }));
      client.once('connect', () => resolve({ ok: true }));
      client.once('error', (err: NodeJS.ErrnoException) => resolve({ ok: false, code: err.code ?? err.message }));
    });
    if (!connected.ok) {
      if (connected.code === 'ETIMEDOUT') return { kind: 'timeout' };
      return UNREACHABLE.has(connected.code) ? { kind: 'unreachable', code: connected.code } : { kind: 'error', code: connected.code };
    }
    const outcome = await matchAccept({ address: unmapIPv4(client.localAddress ?? ''), port: client.localPort ?? 0 }, listener, target.decoy);
    // Read SO_ORIGINAL_DST while the client still holds the connection open.
    if (outcome.kind === 'accepted' && outcome.by === 'listener') outcome.originalDst = originalDstOf(outcome.socket);
    return outcome;
  } finally {
    client.destroy();
  }
}

function originalDstOf(socket: net.Socket): string | Error {
  try {
    const od = readOriginalDst(socket);
    return hostPort(od.address, od.port);
  } catch (err) {
    return err instanceof Error ? err : new Error(String(err));
  }
}

/** Which of our listeners accepted the connection from `peer`, if any. */
function matchAccept(peer: Peer, listener: AcceptLog, decoy?: AcceptLog): Promise<Outcome> {
  const logs = decoy ? [listener, decoy] : [listener];
  return new Promise((resolve) => {
    const check = () => {
      for (const log of logs) {
        const socket = log.find(peer);
        if (socket) return finish({ kind: 'accepted', by: log === listener ? 'listener' : 'decoy', socket });
      }
    };
    const finish = (outcome: Outcome) => {
      clearTimeout(timer);
      for (const log of logs) log.offAccept(check);
      resolve(outcome);
    };
    const timer = setTimeout(() => finish({ kind: 'connected-elsewhere' }), ACCEPT_TIMEOUT_MS);
    for (const log of logs) log.onAccept(check);
    check();
  });
}

/** Connect as the proxy's UID/GID (a child process); it must not land on our listener. */
async function proxyConnection(options: InitOptions, target: Target, listener: AcceptLog): Promise<string> {
  const dest = hostPort(target.address, target.port);
  const result = await runAsProxy(options, target);
  if (result.outcome !== 'connected') {
    // A redirected connect is accepted by our listener at once, so it cannot fail.
    return `was not redirected (it got ${result.code ?? result.outcome} from ${dest})`;
  }
  const outcome = await matchAccept({ address: unmapIPv4(result.localAddress ?? ''), port: result.localPort ?? 0 }, listener, target.decoy);
  if (outcome.kind === 'accepted' && outcome.by === 'listener') {
    throw fail(`the proxy's own connection (uid ${options.proxyUid}, gid ${options.proxyGid}) to ${dest} WAS redirected to port ${options.outboundPort}: the proxy would loop`);
  }
  return outcome.kind === 'accepted' ? `reached ${dest} directly, not redirected` : `was not redirected`;
}

interface ChildResult {
  outcome: 'connected' | 'error' | 'timeout';
  code?: string;
  localAddress?: string;
  localPort?: number;
}

// Runs in the child (`node -e`), as the proxy's UID/GID: one connect, one JSON line.
const CHILD_SCRIPT = `
const net = process.getBuiltinModule('node:net');
const [host, port, timeout] = process.argv.slice(1);
const s = net.connect({ host, port: Number(port) });
const done = (r) => { process.stdout.write(JSON.stringify(r) + '\\n'); s.destroy(); };
s.setTimeout(Number(timeout), () => done({ outcome: 'timeout' }));
s.once('connect', () => done({ outcome: 'connected', localAddress: s.localAddress, localPort: s.localPort }));
s.once('error', (e) => done({ outcome: 'error', code: e.code || e.message }));
`;

function runAsProxy(options: InitOptions, target: Target): Promise<ChildResult> {
  const who = `uid ${options.proxyUid}/gid ${options.proxyGid}`;
  const cannotStart = (err: NodeJS.ErrnoException) => {
    const why = err.code === 'EPERM' ? 'needs root (CAP_SETUID, CAP_SETGID) to start a process as the proxy' : describeError(err);
    return fail(`cannot check the proxy's traffic: starting a process as ${who} failed: ${why}`);
  };
  return new Promise((resolve, reject) => {
    let child: ChildProcessByStdio<null, Readable, Readable>;
    try {
      // spawn throws (rather than emitting 'error') for EPERM from setuid/setgid.
      child = spawn(process.execPath, ['-e', CHILD_SCRIPT, target.address, String(target.port), String(CHILD_CONNECT_TIMEOUT_MS)], {
        uid: options.proxyUid,
        gid: options.proxyGid,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    } catch (err) {
      reject(cannotStart(err as NodeJS.ErrnoException));
      return;
    }
    // The child bounds its own connect; this only guards against a wedged child.
    const timer = setTimeout(() => child.kill('SIGKILL'), CHILD_CONNECT_TIMEOUT_MS * 5);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(cannotStart(err));
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      try {
        const line = stdout.trim().split('\n').at(-1) ?? '';
        resolve(JSON.parse(line) as ChildResult);
      } catch {
        const detail = stderr.trim().split('\n')[0] || `exit status ${code}`;
        reject(fail(`cannot check the proxy's traffic: the process run as ${who} failed: ${detail}`));
      }
    });
  });
}

interface Peer {
  readonly address: string;
  readonly port: number;
}

/** Records every accepted connection so a client can find its own by source address and port. */
class AcceptLog {
  readonly #server: net.Server;
  // The peer is recorded at accept time: once the client hangs up, the socket forgets it.
  readonly #accepted: Array<{ socket: net.Socket; peer: Peer }> = [];
  readonly #listeners = new Set<() => void>();

  constructor(server: net.Server) {
    this.#server = server;
    server.on('connection', (socket) => {
      socket.on('error', () => {}); // our test clients reset their sockets; that is expected
      this.#accepted.push({ socket, peer: { address: unmapIPv4(socket.remoteAddress ?? ''), port: socket.remotePort ?? 0 } });
      for (const listener of this.#listeners) listener();
    });
  }

  find(peer: Peer): net.Socket | undefined {
    return this.#accepted.find((a) => a.peer.port === peer.port && a.peer.address === peer.address)?.socket;
  }

  onAccept(listener: () => void): void {
    this.#listeners.add(listener);
  }

  offAccept(listener: () => void): void {
    this.#listeners.delete(listener);
  }

  close(): void {
    for (const { socket } of this.#accepted) socket.destroy();
    this.#server.close();
  }
}

function listen(host: string, port: number, ipv6Only = false): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen({ host, port, ipv6Only, exclusive: true }, () => {
      server.removeListener('error', reject);
      resolve(server);
    });
  });
}

async function listenOnOutboundPort(port: number): Promise<AcceptLog> {
  try {
    // Dual-stack: REDIRECT sends IPv4 to 127.0.0.1 and IPv6 to ::1.
    return new AcceptLog(await listen('::', port));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EAFNOSUPPORT' || code === 'EADDRNOTAVAIL') {
      try {
        return new AcceptLog(await listen('0.0.0.0', port));
      } catch (err4) {
        throw listenFailure(port, err4);
      }
    }
    throw listenFailure(port, err);
  }
}

function listenFailure(port: number, err: unknown): MeshletError {
  if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
    return fail(`validation cannot run: port ${port} is already in use — is the proxy already running? Validation listens there itself, so run it before the proxy starts`);
  }
  return fail(`validation cannot run: cannot listen on port ${port}: ${describeError(err)}`);
}

/** A listener on one of our own addresses, on a port the rules redirect. */
async function decoyTarget(options: InitOptions, address: string): Promise<Target | undefined> {
  for (let attempt = 0; attempt < 20; attempt++) {
    let server: net.Server;
    try {
      server = await listen(address, 0, net.isIPv6(address));
    } catch {
      return undefined;
    }
    const port = (server.address() as net.AddressInfo).port;
    if (wouldRedirect(options, address, port)) return { address, port, note: "this namespace's own address", decoy: new AcceptLog(server) };
    server.close(); // an excluded port; draw another
  }
  return undefined;
}

/** Whether the installed rules (per the options) redirect an app's connection to address:port. */
export function wouldRedirect(options: InitOptions, address: string, port: number): boolean {
  const family = net.isIPv6(address) ? 6 : 4;
  const loopback = family === 4 ? address.startsWith('127.') : canonicalIPv6(address) === '::1';
  if (loopback || portInRanges(port, options.excludeOutboundPorts)) return false;
  if (addressInCidrs(address, options.excludeOutboundCidrs)) return false;
  return options.includeOutboundCidrs === 'all' || addressInCidrs(address, options.includeOutboundCidrs);
}

function firstRedirectedPort(options: InitOptions): number | undefined {
  for (const port of [80, 8080]) if (!portInRanges(port, options.excludeOutboundPorts)) return port;
  for (let port = 1024; port <= 65535; port++) if (!portInRanges(port, options.excludeOutboundPorts)) return port;
  return undefined;
}

function ownAddresses(family: Family): string[] {
  const out: string[] = [];
  for (const entries of Object.values(os.networkInterfaces())) {
    for (const e of entries ?? []) {
      if (e.internal || e.family !== `IPv${family}`) continue;
      if (family === 6 && (e.scopeid !== 0 || e.address.toLowerCase().startsWith('fe80'))) continue;
      out.push(family === 6 ? canonicalIPv6(e.address) : e.address);
    }
  }
  return out;
}

function hostPort(address: string, port: number): string {
  return net.isIPv6(address) ? `[${canonicalIPv6(address)}]:${port}` : `${address}:${port}`;
}

function fail(message: string): MeshletError {
  return new MeshletError('MESHLET_ERR_VALIDATION', message);
}
