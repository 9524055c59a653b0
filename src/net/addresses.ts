import net from 'node:net';

// Distinct wrapper types so that the proxy's own listener address can never be passed
// where the original destination is expected (and vice versa).

/** Where the application meant to connect, recovered from the kernel's NAT state. */
export interface OrigDst {
  readonly kind: 'orig-dst';
  readonly address: string;
  readonly port: number;
  readonly family: 4 | 6;
  /** `address|port`: the destination as a map key, made once per connection rather than per request. */
  readonly key: string;
}

/** The remote end of an accepted connection, as the proxy sees it. */
export interface PeerAddr {
  readonly kind: 'peer';
  readonly address: string;
  readonly port: number;
}

export function origDst(address: string, port: number): OrigDst {
  const family = net.isIPv6(address) ? 6 : 4;
  return { kind: 'orig-dst', address, port, family, key: `${address}|${port}` };
}

export function peerOf(socket: net.Socket): PeerAddr {
  return { kind: 'peer', address: unmapIPv4(socket.remoteAddress ?? ''), port: socket.remotePort ?? 0 };
}

/** `::ffff:10.0.0.1` (an IPv4 client on a dual-stack listener) → `10.0.0.1`. */
export function unmapIPv4(address: string): string {
  return address.startsWith('::ffff:') && net.isIPv4(address.slice(7)) ? address.slice(7) : address;
}

export function formatHostPort(address: string, port: number): string {
  return net.isIPv6(address) ? `[${address}]:${port}` : `${address}:${port}`;
}
