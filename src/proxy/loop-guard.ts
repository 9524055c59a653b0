import type net from 'node:net';
import os from 'node:os';
import { unmapIPv4, type OrigDst } from '../net/addresses.ts';

/**
 * True when a connection's original destination is this proxy itself: either it was not
 * redirected at all (the kernel reports the listener's own address), or something
 * connected to one of the proxy's ports on a local address. Forwarding either would
 * connect the proxy to itself, forever.
 */
export function isSelfDestination(dst: OrigDst, socket: net.Socket, proxyPorts: ReadonlySet<number>, local: LocalAddresses): boolean {
  if (dst.address === unmapIPv4(socket.localAddress ?? '') && dst.port === socket.localPort) return true;
  return proxyPorts.has(dst.port) && local.has(dst.address);
}

/** The addresses of this network namespace, refreshed now and then (pod IPs rarely change). */
export class LocalAddresses {
  #addresses = new Set<string>();
  #readAt = 0;
  readonly #maxAgeMs: number;

  constructor(maxAgeMs = 30_000) {
    this.#maxAgeMs = maxAgeMs;
  }

  has(address: string): boolean {
    if (address.startsWith('127.') || address === '::1' || address === '0.0.0.0' || address === '::') return true;
    const now = Date.now();
    if (now - this.#readAt > this.#maxAgeMs) {
      this.#addresses = new Set(Object.values(os.networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address.split('%')[0]!)));
      this.#readAt = now;
    }
    return this.#addresses.has(address);
  }
}
