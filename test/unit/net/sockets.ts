import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import type { Test } from 'tap';
import { makeIdentity } from '../proxy/mtls-harness.ts';
import { caOk } from '../tls/ca-helpers.ts';

// Real loopback connections for the socket tests of src/net/.

/** A key and certificate from a fresh `meshlet ca`, for a TLS server; removed with the test. */
export async function serverIdentity(t: Test, name: string): Promise<{ key: Buffer; cert: Buffer }> {
  const root = mkdtempSync(path.join(tmpdir(), `meshlet-${name}-`));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  await caOk(['init', '--out', path.join(root, 'ca')]);
  const dir = await makeIdentity(root, path.join(root, 'ca'), 'id', 'spiffe://cluster.local/ns/a/sa/b');
  return { key: readFileSync(path.join(dir, 'tls.key')), cert: readFileSync(path.join(dir, 'tls.crt')) };
}

/** A server on 127.0.0.1 (TLS with `secure`) whose accepted sockets go to `onSocket`; returns its port. Server and sockets are destroyed with the test. */
export async function loopbackServer(t: Test, onSocket: (s: net.Socket) => void, secure?: { key: Buffer; cert: Buffer }): Promise<number> {
  const accepted: net.Socket[] = [];
  const accept = (s: net.Socket) => {
    accepted.push(s);
    s.on('error', () => {});
    onSocket(s);
  };
  const server = secure ? tls.createServer(secure, accept) : net.createServer(accept);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const s of accepted) s.destroy();
    server.close();
  });
  return (server.address() as net.AddressInfo).port;
}

/**
 * A server on 127.0.0.1 (TLS with `secure`) and a client connected to it; `onSocket` gets
 * each accepted socket. Everything is destroyed with the test.
 */
export async function loopbackClient(t: Test, onSocket: (s: net.Socket) => void, secure?: { key: Buffer; cert: Buffer }): Promise<net.Socket> {
  const port = await loopbackServer(t, onSocket, secure);
  const client = await new Promise<net.Socket>((resolve, reject) => {
    const c = secure ? tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false }, () => resolve(c)) : net.connect({ port, host: '127.0.0.1' }, () => resolve(c));
    c.on('error', reject);
  });
  t.teardown(() => client.destroy());
  return client;
}
