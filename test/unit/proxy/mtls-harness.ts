import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { Registry } from 'prom-client';
import { loadConfig } from '../../../src/config/load.ts';
import { origDst, peerOf } from '../../../src/net/addresses.ts';
import type { AcceptedConnection, ConnectionOutcome, Direction } from '../../../src/pipeline/connection.ts';
import { inboundStack } from '../../../src/proxy/inbound/stack.ts';
import { LocalAddresses } from '../../../src/proxy/loop-guard.ts';
import { newStackParts, type StackParts } from '../../../src/proxy/stack-deps.ts';
import { outboundStack } from '../../../src/proxy/outbound/stack.ts';
import type { Handler } from '../../../src/pipeline/compose.ts';
import { createTelemetry } from '../../../src/telemetry/telemetry.ts';
import { createResilienceMetrics } from '../../../src/telemetry/resilience-metrics.ts';
import { withBreakerLog } from '../../../src/resilience/events.ts';
import { ResilienceRuntime } from '../../../src/resilience/runtime.ts';
import { Scrape } from '../../../src/testbed/metrics.ts';
import { loadIdentity, type Identity } from '../../../src/tls/identity.ts';
import type { MeshPeer } from '../../../src/tls/mesh-peers.ts';
import { caOk } from '../tls/ca-helpers.ts';
import { captureLog } from '../../helpers/capture-log.ts';

// A sidecar pair on loopback with real TLS: "fronts" stand in for the REDIRECT rules by
// handing each accepted socket to a stack with the original destination it would have
// had. Used by the mTLS tests of the proxy layers.

export const listen = (server: net.Server) =>
  new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));

export { captureLog };

export async function makeIdentity(root: string, caDir: string, name: string, spiffeId: string, options: { now?: Date; ttl?: string } = {}): Promise<string> {
  const out = path.join(root, name);
  await caOk(['issue', '--ca', caDir, '--spiffe-id', spiffeId, '--out', out, '--ttl', options.ttl ?? '24h'], options.now);
  return out;
}

export interface Sidecar {
  port: number;
  /** The HTTP servers and pools its stack built (drain, /clusters). */
  parts: StackParts;
  registry: Registry;
  lines: Array<Record<string, unknown>>;
  outcomes: Promise<ConnectionOutcome>[];
  /** The sidecar's resilience policies (update() them to reload) and per-destination state. */
  resilience: ResilienceRuntime;
  close(): void;
}

/** A front that runs `direction`'s stack for each connection, towards `target` (port on loopback). */
export async function sidecar(
  direction: Direction,
  target: () => number,
  options: { identityDir?: string; env?: NodeJS.ProcessEnv; peer?: MeshPeer | (() => MeshPeer | undefined); identity?: () => Identity | undefined } = {},
): Promise<Sidecar> {
  const config = loadConfig({ env: { ...options.env } });
  const registry = new Registry();
  const { log, lines } = captureLog();
  const identity = options.identity ?? (options.identityDir ? ((id) => () => id)(loadIdentity(options.identityDir)) : () => undefined);
  const deps = {
    ...(await createTelemetry(registry, config, log, identity()?.spiffeId)),
    config,
    log,
    localAddresses: new LocalAddresses(),
    proxyPorts: new Set([15001, 15006]),
    identity,
    peers: { lookup: () => (typeof options.peer === 'function' ? options.peer() : options.peer) },
    parts: newStackParts(),
    resilience: ResilienceRuntime.fromConfig(config, withBreakerLog(createResilienceMetrics(registry, config.metrics.prefix), log)),
  };
  const stack: Handler<AcceptedConnection, ConnectionOutcome> = direction === 'outbound' ? outboundStack(deps) : inboundStack(deps);
  const outcomes: Promise<ConnectionOutcome>[] = [];
  let id = 1;
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    outcomes.push(stack({ id: id++, direction, socket, peer: peerOf(socket), origDst: origDst('127.0.0.1', target()), security: 'none' }));
  });
  const port = await listen(server);
  return { port, parts: deps.parts, registry, lines, outcomes, resilience: deps.resilience, close: () => server.close() };
}

// ---- Clients, apps and readers shared by the mtls*.test.ts files ----

export interface Collected {
  /** Everything the socket received. */
  readonly data: Buffer;
  /** The error code the socket ended with (ECONNRESET, ERR_SSL_...), if any. */
  readonly error?: string;
  /** 'secure' when a TLS handshake completed, 'end' when the peer's FIN arrived. */
  readonly events: readonly string[];
}

/** Resolves once the socket is closed, with what it received and how it ended. */
export function collect(socket: net.Socket): Promise<Collected> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const events: string[] = [];
    let error: string | undefined;
    socket.on('secureConnect', () => events.push('secure'));
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('end', () => events.push('end'));
    socket.on('error', (err: NodeJS.ErrnoException) => (error ??= err.code ?? err.message));
    socket.on('close', () => resolve({ data: Buffer.concat(chunks), events, ...(error ? { error } : {}) }));
  });
}

export function connectPlain(port: number): net.Socket {
  return net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
}

/**
 * A client speaking meshlet's mTLS directly (what a peer sidecar does): our ALPN, the
 * certificate in `identityDir` (none when undefined), the server checked against `caFile`
 * by chain only (a sidecar checks the SPIFFE ID, not a host name).
 */
export function mtlsClient(port: number, identityDir: string | undefined, caFile: string, options: { alpn?: string[] } = {}): tls.TLSSocket {
  return tls.connect({
    port,
    host: '127.0.0.1',
    ca: readFileSync(caFile),
    ...(identityDir ? { cert: readFileSync(path.join(identityDir, 'tls.crt')), key: readFileSync(path.join(identityDir, 'tls.key')) } : {}),
    ALPNProtocols: options.alpn ?? ['meshlet/tcp'],
    minVersion: 'TLSv1.3',
    checkServerIdentity: () => undefined,
  });
}

export interface App {
  readonly port: number;
  /** What each connection the app accepted received, in order of acceptance. */
  readonly received: Buffer[];
  readonly connections: number;
  close(): void;
}

/**
 * A plain TCP (or, given a tls.Server, TLS) app. It echoes everything and, once the client
 * half-closes, ends its side too; with `afterEnd` it echoes only then. `greeting` is
 * written first (a server-first protocol).
 */
export async function echoApp(options: { greeting?: string; server?: net.Server; afterEnd?: boolean } = {}): Promise<App> {
  const received: Buffer[] = [];
  const onSocket = (socket: net.Socket) => {
    const index = received.push(Buffer.alloc(0)) - 1;
    socket.on('error', () => {});
    if (options.greeting) socket.write(options.greeting);
    socket.on('data', (d: Buffer) => {
      received[index] = Buffer.concat([received[index]!, d]);
      if (!options.afterEnd) socket.write(d);
    });
    // afterEnd: answer only once the client's FIN arrived (a proxy without half-close loses this).
    socket.on('end', () => (options.afterEnd ? socket.end(received[index]!) : socket.end()));
  };
  const server = options.server ?? net.createServer({ allowHalfOpen: true });
  server.on(server instanceof tls.Server ? 'secureConnection' : 'connection', onSocket);
  const port = await listen(server);
  return {
    port,
    received,
    get connections() {
      return received.length;
    },
    close: () => server.close(),
  };
}

/** Sum of the samples of `name` whose labels include `labels`, read from the text format as Prometheus would. */
export async function metric(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  return new Scrape(await registry.metrics()).value(name, labels);
}

export interface OpenSslRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * `openssl s_client -connect 127.0.0.1:PORT ARGS`, asynchronously (the proxy under test
 * runs in this process). `input` is typed at once; stdin stays open until stdout matches
 * `until` (or the process exits by itself), so an answer from the far end is seen.
 */
export function sClient(port: number, args: string[], options: { input?: string; until?: RegExp; limitMs?: number } = {}): Promise<OpenSslRun> {
  return new Promise((resolve) => {
    const child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const finish = () => child.stdin.end();
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (options.until?.test(stdout)) finish();
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin.on('error', () => {});
    // A safety net only (no assertion depends on it): never leave an openssl behind.
    const limit = setTimeout(() => child.kill(), options.limitMs ?? 15_000);
    child.on('close', (code) => {
      clearTimeout(limit);
      resolve({ code, stdout, stderr });
    });
    if (options.input !== undefined) child.stdin.write(options.input);
    if (!options.until) finish();
  });
}

/** Polls `check` until it holds (for state changes with no event to wait on). */
export async function until(check: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
