import net from 'node:net';
import path from 'node:path';
import type { Test } from 'tap';
import { listen, makeIdentity, sidecar, type Sidecar } from '../unit/proxy/mtls-harness.ts';
import { caOk, tempDir } from '../unit/tls/ca-helpers.ts';

// The two ways an app's HTTP crosses meshlet in the HTTP tests, both on loopback:
//   one     client → outbound sidecar → app (a destination outside the mesh);
//   mesh    client → outbound sidecar → meshlet/h2 over mTLS → inbound sidecar → app.
// A test written against `through(t, topology, appPort)` runs unchanged in both.

export type Topology = 'one' | 'mesh';
export const TOPOLOGIES: readonly Topology[] = ['one', 'mesh'];

export interface Through {
  /** Where the client connects (the outbound sidecar). */
  readonly port: number;
  readonly outbound: Sidecar;
  readonly inbound?: Sidecar;
}

const TD = 'cluster.local';
let identities: Promise<{ client: string; server: string }> | undefined;

/** One CA and a client and a server identity, made once per test file. */
function meshIdentities(): Promise<{ client: string; server: string }> {
  identities ??= (async () => {
    const root = tempDir();
    const caDir = path.join(root, 'ca');
    await caOk(['init', '--out', caDir]);
    return {
      client: await makeIdentity(root, caDir, 'client', `spiffe://${TD}/ns/a/sa/client`),
      server: await makeIdentity(root, caDir, 'server', `spiffe://${TD}/ns/b/sa/server`),
    };
  })();
  return identities;
}

/** The sidecars of `topology` in front of the app on `appPort`, closed when `t` ends. `env` goes to each. */
export async function through(
  t: Pick<Test, 'teardown'>,
  topology: Topology,
  appPort: () => number,
  env: NodeJS.ProcessEnv = {},
  /** What the outbound side expects of the inbound one (mesh only); by default any identity of the trust domain. */
  expect: { spiffeId?: string } = {},
): Promise<Through> {
  if (topology === 'one') {
    const outbound = await sidecar('outbound', appPort, { env });
    t.teardown(() => outbound.close());
    return { port: outbound.port, outbound };
  }
  const ids = await meshIdentities();
  const inbound = await sidecar('inbound', appPort, { identityDir: ids.server, env });
  t.teardown(() => inbound.close());
  const wire = await relay(inbound.port);
  t.teardown(() => wire.close());
  const outbound = await sidecar('outbound', () => wire.port, { identityDir: ids.client, peer: { trustDomain: TD, ...expect }, env });
  t.teardown(() => outbound.close());
  return { port: outbound.port, outbound, inbound };
}

/**
 * The "network" between the sidecars: a TCP relay to `port`. Closing it cuts the pooled
 * meshlet/h2 connection, which would otherwise keep the test process alive until the
 * pool's idle timeout.
 */
async function relay(port: number): Promise<{ port: number; close(): void }> {
  const sockets = new Set<net.Socket>();
  const track = (s: net.Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  };
  const server = net.createServer({ noDelay: true }, (down) => {
    const up = net.connect({ port, host: '127.0.0.1', noDelay: true });
    track(down);
    track(up);
    down.pipe(up).pipe(down);
    down.on('error', () => up.destroy());
    up.on('error', () => down.destroy());
    down.once('close', () => up.destroy());
    up.once('close', () => down.destroy());
  });
  const relayPort = await listen(server);
  return {
    port: relayPort,
    close: () => {
      server.close();
      for (const s of sockets) s.destroy();
    },
  };
}
