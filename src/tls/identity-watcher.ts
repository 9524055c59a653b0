import { watch, type FSWatcher } from 'node:fs';
import { describeError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { loadIdentity, remainingLifetime, type Identity } from './identity.ts';

export interface IdentityWatcherOptions {
  log: Logger;
  /** Called with each new identity that passed every check (not for the first load). */
  onRotate?: (identity: Identity, previous: Identity) => void;
  /** A safety net for volumes where file events are lost; changes are also caught by fs.watch. */
  pollIntervalMs?: number;
  /** Warn when less than this share of the certificate's lifetime is left. */
  warnBelow?: number;
  now?: () => Date;
}

/**
 * Holds the current identity and replaces it when the files change — written in place,
 * or swapped by an atomic symlink rename as Kubernetes does for secret volumes. A change
 * that fails a check is logged with the file and the reason, and the last good identity
 * stays in use. Connections hold the identity they started with, so rotation never
 * touches an open connection.
 */
export class IdentityWatcher {
  readonly dir: string;
  #current: Identity;
  #watcher: FSWatcher | undefined;
  #poll: NodeJS.Timeout | undefined;
  #debounce: NodeJS.Timeout | undefined;
  #expiryWarning: NodeJS.Timeout | undefined;
  #lastError = '';
  readonly #options: Required<Omit<IdentityWatcherOptions, 'onRotate'>> & Pick<IdentityWatcherOptions, 'onRotate'>;

  /** Loads the identity now; throws (naming the file and the reason) if it is not usable. */
  constructor(dir: string, options: IdentityWatcherOptions) {
    this.dir = dir;
    this.#options = { pollIntervalMs: 10_000, warnBelow: 0.2, now: () => new Date(), ...options };
    this.#current = loadIdentity(dir, this.#options.now());
    this.#announce(this.#current);
  }

  get current(): Identity {
    return this.#current;
  }

  start(): this {
    this.#watcher = watch(this.dir, { persistent: false }, () => this.#scheduleReload());
    this.#watcher.on('error', (err) => this.#options.log.warn({ dir: this.dir, err: describeError(err) }, 'identity directory watch failed; polling only'));
    this.#poll = setInterval(() => this.reload(), this.#options.pollIntervalMs).unref();
    return this;
  }

  close(): void {
    this.#watcher?.close();
    clearInterval(this.#poll);
    clearTimeout(this.#debounce);
    clearTimeout(this.#expiryWarning);
  }

  /** Re-reads the files; returns true when a new identity was taken into use. */
  reload(): boolean {
    let next: Identity;
    try {
      next = loadIdentity(this.dir, this.#options.now());
    } catch (err) {
      const message = describeError(err);
      // A secret being rewritten fails the same way on every event until it is complete; log each problem once.
      if (message !== this.#lastError) this.#options.log.error({ err: message, keeping: this.#current.serial }, 'identity reload refused; keeping the last good identity');
      this.#lastError = message;
      return false;
    }
    this.#lastError = '';
    if (next.fingerprint === this.#current.fingerprint) return false;
    const previous = this.#current;
    this.#current = next;
    this.#announce(next, previous);
    this.#options.onRotate?.(next, previous);
    return true;
  }

  #scheduleReload(): void {
    // Writers produce bursts of events (three files, or a symlink swap); read once they settle.
    clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => this.reload(), 100).unref();
  }

  #announce(identity: Identity, previous?: Identity): void {
    this.#options.log.info(
      { spiffeId: identity.spiffeId, serial: identity.serial, notAfter: identity.notAfter.toISOString(), ...(previous ? { previousSerial: previous.serial } : {}) },
      previous ? 'identity rotated' : 'identity loaded',
    );
    this.#watchExpiry(identity);
  }

  #watchExpiry(identity: Identity): void {
    const { log, warnBelow, now } = this.#options;
    clearTimeout(this.#expiryWarning);
    if (remainingLifetime(identity, now()) < warnBelow) {
      log.warn(
        { spiffeId: identity.spiffeId, serial: identity.serial, notAfter: identity.notAfter.toISOString() },
        `identity certificate has less than ${Math.round(warnBelow * 100)} % of its lifetime left`,
      );
      return;
    }
    const warnAt = identity.notAfter.getTime() - warnBelow * (identity.notAfter.getTime() - identity.notBefore.getTime());
    // setTimeout waits at most ~24.8 days: a long-lived certificate is simply checked again then.
    const delay = Math.min(warnAt - now().getTime() + 1, 2 ** 31 - 1);
    this.#expiryWarning = setTimeout(() => this.#current === identity && this.#watchExpiry(identity), delay).unref();
  }
}
