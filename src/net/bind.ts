import type net from 'node:net';

/** Listens with `options`; rejects with the bind error (EADDRINUSE...) instead of emitting it. */
function listenOn(server: net.Server, options: net.ListenOptions): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen(options, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

/** Loopback IPv4 only: reachable from inside the pod's network namespace and nowhere else. */
export async function bindLoopback(server: net.Server, port: number): Promise<number> {
  await listenOn(server, { host: '127.0.0.1', port });
  return (server.address() as net.AddressInfo).port;
}

/** `::` with IPv4-mapped addresses; plain 0.0.0.0 where the namespace has no IPv6. */
export async function bindDualStack(server: net.Server, port: number): Promise<number> {
  const listen = (options: net.ListenOptions) => listenOn(server, options);
  try {
    await listen({ host: '::', port, ipv6Only: false });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EAFNOSUPPORT' && code !== 'EADDRNOTAVAIL') throw err;
    await listen({ host: '0.0.0.0', port });
  }
  return (server.address() as net.AddressInfo).port;
}
