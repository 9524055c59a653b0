import net from 'node:net';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { loadConfig } from '../../../src/config/load.ts';
import { origDst, peerOf } from '../../../src/proxy/addresses.ts';
import type { AcceptedConnection, ConnectionOutcome, Direction } from '../../../src/proxy/connection.ts';
import { inboundStack } from '../../../src/proxy/inbound/stack.ts';
import { LocalAddresses } from '../../../src/proxy/loop-guard.ts';
import { outboundStack } from '../../../src/proxy/outbound/stack.ts';
import type { Handler } from '../../../src/proxy/pipeline.ts';
import { createTcpMetrics } from '../../../src/telemetry/tcp-metrics.ts';
import { loadIdentity, type Identity } from '../../../src/tls/identity.ts';
import type { MeshPeer } from '../../../src/tls/mesh-peers.ts';
import { caOk } from '../tls/ca-helpers.ts';

// A sidecar pair on loopback with real TLS: "fronts" stand in for the REDIRECT rules by
// handing each accepted socket to a stack with the original destination it would have
// had. Used by the mTLS tests of the proxy layers.

export const listen = (server: net.Server) =>
  new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));

export function captureLog() {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { log: pino({ level: 'debug' }, stream), lines };
}

export async function makeIdentity(root: string, caDir: string, name: string, spiffeId: string, options: { now?: Date; ttl?: string } = {}): Promise<string> {
  const out = path.join(root, name);
  await caOk(['issue', '--ca', caDir, '--spiffe-id', spiffeId, '--out', out, '--ttl', options.ttl ?? '24h'], options.now);
  return out;
}

export interface Sidecar {
  port: number;
  registry: Registry;
  lines: Array<Record<string, unknown>>;
  outcomes: Promise<ConnectionOutcome>[];
  close(): void;
}

/** A front that runs `direction`'s stack for each connection, towards `target` (port on loopback). */
export async function sidecar(
  direction: Direction,
  target: () => number,
  options: { identityDir?: string; env?: NodeJS.ProcessEnv; peer?: MeshPeer; identity?: () => Identity | undefined } = {},
): Promise<Sidecar> {
  const config = loadConfig({ env: { ...options.env } });
  const registry = new Registry();
  const tcpMetrics = createTcpMetrics(registry, 'meshlet');
  const { log, lines } = captureLog();
  const identity = options.identity ?? (options.identityDir ? ((id) => () => id)(loadIdentity(options.identityDir)) : () => undefined);
  const deps = {
    config,
    log,
    tcpMetrics,
    localAddresses: new LocalAddresses(),
    proxyPorts: new Set([15001, 15006]),
    identity,
    peers: { lookup: () => options.peer },
  };
  const stack: Handler<AcceptedConnection, ConnectionOutcome> = direction === 'outbound' ? outboundStack(deps) : inboundStack(deps);
  const outcomes: Promise<ConnectionOutcome>[] = [];
  let id = 1;
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    outcomes.push(stack({ id: id++, direction, socket, peer: peerOf(socket), origDst: origDst('127.0.0.1', target()), security: 'none' }));
  });
  const port = await listen(server);
  return { port, registry, lines, outcomes, close: () => server.close() };
}
