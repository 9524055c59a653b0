import type net from 'node:net';
import os from 'node:os';
import type { Logger } from '../log.ts';
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

/**
 * Says that connections were refused as loops at most once per `intervalMs`: a proxy whose
 * own traffic is redirected back to it would otherwise write a line per connection, as
 * fast as it can open them. The first refusal is logged at once; later ones in the same
 * interval are counted and reported in one line when the interval ends.
 */
export class LoopRefusalLog {
  readonly #log: Logger;
  readonly #intervalMs: number;
  #lastAt = -Infinity;
  #unreported = 0;
  #last: Record<string, unknown> = {};
  #timer: NodeJS.Timeout | undefined;

  constructor(log: Logger, intervalMs = 10_000) {
    this.#log = log;
    this.#intervalMs = intervalMs;
  }

  /** One more refusal; `fields` describe it (the latest are logged with the count). */
  refused(fields: Record<string, unknown>): void {
    this.#unreported++;
    this.#last = fields;
    const wait = this.#lastAt + this.#intervalMs - Date.now();
    if (wait <= 0) this.#flush();
    else this.#timer ??= setTimeout(() => this.#flush(), wait).unref();
  }

  #flush(): void {
    this.#timer = undefined;
    if (this.#unreported === 0) return;
    this.#log.warn(
      { ...this.#last, refused: this.#unreported, intervalMs: this.#intervalMs },
      "refused the proxy's own connection, redirected back to it (a loop): its traffic is not exempt from interception; does it run under the UID/GID that meshlet init exempted?",
    );
    this.#unreported = 0;
    this.#lastAt = Date.now();
  }
}
