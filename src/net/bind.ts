import type net from 'node:net';

/** `::` with IPv4-mapped addresses; plain 0.0.0.0 where the namespace has no IPv6. */
export async function bindDualStack(server: net.Server, port: number): Promise<number> {
  const listen = (options: net.ListenOptions) =>
    new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      server.once('error', onError);
      server.listen(options, () => {
        server.off('error', onError);
        resolve();
      });
    });
  try {
    await listen({ host: '::', port, ipv6Only: false });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EAFNOSUPPORT' && code !== 'EADDRNOTAVAIL') throw err;
    await listen({ host: '0.0.0.0', port });
  }
  return (server.address() as net.AddressInfo).port;
}
