import type { Logger } from '../log.ts';

// The graceful drain, started by SIGTERM or POST /drain, in three steps:
//
//   t = 0       draining: readiness fails (the endpoint is taken out of Services), HTTP/1.1
//               responses carry Connection: close and HTTP/2 sessions get GOAWAY, so
//               clients move their next requests elsewhere; everything is still served,
//               and new inbound connections are still accepted (callers learn late).
//   t = delay   the inbound listener stops accepting; idle inbound connections close.
//               Outbound keeps accepting: the app may still call out while it stops.
//   then        the drain ends as soon as no connection remains open on either listener,
//               or at t = timeout, whichever comes first; the caller then exits.

/** What the drain acts on; the proxy implements it over its listeners and HTTP servers. */
export interface DrainTargets {
  /** From now on responses carry Connection: close and HTTP/2 sessions get GOAWAY. */
  beginDrain(): void;
  /** The delay is over: stop accepting inbound connections and close the idle ones. */
  stopAccepting(): void;
  /** Connections still open on both listeners. */
  openConnections(): number;
}

export interface DrainOptions {
  delayMs: number;
  timeoutMs: number;
  /** How often the open connections are counted once the delay is over. */
  pollMs?: number;
}

/** How a drain ended: every connection finished, or drain.timeout came first. */
export type DrainEnd = 'drained' | 'timeout';

export interface DrainStatus {
  readonly draining: boolean;
  readonly reason: string | null;
  readonly startedAt: string | null;
  /** Whether the inbound listener still accepts new connections. */
  readonly acceptingInbound: boolean;
  readonly openConnections: number;
  readonly delayMs: number;
  readonly timeoutMs: number;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class Drain {
  readonly #targets: DrainTargets;
  readonly #options: Required<DrainOptions>;
  readonly #log: Logger;
  #started: { reason: string; at: Date; ended: Promise<DrainEnd> } | undefined;
  #acceptingInbound = true;

  constructor(targets: DrainTargets, options: DrainOptions, log: Logger) {
    this.#targets = targets;
    this.#options = { pollMs: 100, ...options };
    this.#log = log;
  }

  get draining(): boolean {
    return this.#started !== undefined;
  }

  /** Starts the drain (once: later calls return the same end). Resolves when it is over. */
  start(reason: string): Promise<DrainEnd> {
    if (this.#started) return this.#started.ended;
    const { delayMs, timeoutMs } = this.#options;
    this.#targets.beginDrain();
    this.#log.info({ reason, delayMs, timeoutMs, open: this.#targets.openConnections() }, 'draining');
    const ended = this.#run(performance.now() + timeoutMs);
    this.#started = { reason, at: new Date(), ended };
    return ended;
  }

  status(): DrainStatus {
    return {
      draining: this.draining,
      reason: this.#started?.reason ?? null,
      startedAt: this.#started?.at.toISOString() ?? null,
      acceptingInbound: this.#acceptingInbound,
      openConnections: this.#targets.openConnections(),
      delayMs: this.#options.delayMs,
      timeoutMs: this.#options.timeoutMs,
    };
  }

  async #run(deadline: number): Promise<DrainEnd> {
    await sleep(this.#options.delayMs);
    this.#acceptingInbound = false;
    this.#targets.stopAccepting();
    this.#log.info({ open: this.#targets.openConnections() }, 'drain: inbound no longer accepts; waiting for open connections');
    for (;;) {
      const open = this.#targets.openConnections();
      if (open === 0) return 'drained';
      const left = deadline - performance.now();
      if (left <= 0) {
        this.#log.warn({ open }, 'drain.timeout reached with connections still open; closing them');
        return 'timeout';
      }
      await sleep(Math.min(this.#options.pollMs, left));
    }
  }
}
