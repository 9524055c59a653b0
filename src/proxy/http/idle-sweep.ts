/**
 * Closes a pool's or server's connections that have been idle longer than `idleTimeoutMs`:
 * one unref'd timer for all of them, at a quarter of the timeout (between 250 ms and 5 s),
 * instead of a socket timeout, which Node re-arms on every read and write of every
 * connection. `sweep` closes what went idle before `oldest` (a performance.now() time) and
 * says whether any connection is left to watch; when none is, the timer stops until the
 * next start().
 */
export class IdleSweep {
  readonly #idleTimeoutMs: number;
  readonly #sweep: (oldest: number) => boolean;
  #timer: NodeJS.Timeout | undefined;

  constructor(idleTimeoutMs: number, sweep: (oldest: number) => boolean) {
    this.#idleTimeoutMs = idleTimeoutMs;
    this.#sweep = sweep;
  }

  /** Runs the sweep from now on, if it is not running. */
  start(): void {
    this.#timer ??= setInterval(() => {
      if (!this.#sweep(performance.now() - this.#idleTimeoutMs)) this.stop();
    }, Math.max(250, Math.min(5000, this.#idleTimeoutMs / 4))).unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
