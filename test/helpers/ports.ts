import net from 'node:net';

// Ports for tests that start a proxy. Its configuration refuses port 0 (a port the
// kernel picks is one the interception rules and kubelet cannot know), so a test asks
// the kernel here, releases the ports and hands the numbers over. Another process may
// take one in between; on a test machine that is rare enough.

/** `count` different ports free on `host` right now: all bound at once (so no two are alike), then released. */
export async function freePorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const servers = Array.from({ length: count }, () => net.createServer());
  try {
    return await Promise.all(
      servers.map(
        (server) =>
          new Promise<number>((resolve, reject) => {
            server.once('error', reject);
            server.listen({ host, port: 0 }, () => resolve((server.address() as net.AddressInfo).port));
          }),
      ),
    );
  } finally {
    await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
  }
}

/** One port free on `host` right now. */
export async function freePort(host?: string): Promise<number> {
  const [port] = await freePorts(1, host);
  return port!;
}

/** The variables of the proxy's four listener ports (a type alias, so it passes as an environment). */
export type ProxyPorts = Record<'MESHLET_OUTBOUND_PORT' | 'MESHLET_INBOUND_PORT' | 'MESHLET_HEALTH_PORT' | 'MESHLET_ADMIN_PORT', string>;

/** The variables giving each of the proxy's four listeners its own free port. */
export async function proxyPorts(): Promise<ProxyPorts> {
  const [outbound, inbound, health, admin] = (await freePorts(4)).map(String) as [string, string, string, string];
  return { MESHLET_OUTBOUND_PORT: outbound, MESHLET_INBOUND_PORT: inbound, MESHLET_HEALTH_PORT: health, MESHLET_ADMIN_PORT: admin };
}
