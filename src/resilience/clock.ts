// Imported rather than read as globals: Node's global Buffer and performance are accessors, each read a call (about 170 instructions in callgrind's count).
import { performance } from 'node:perf_hooks';
import type { RequestAbort } from '../pipeline/abort.ts';

// Time as the resilience layers read it, so each can be tested alone with a fake clock.
// Milliseconds; `now` only ever compared with itself.

export interface Timer {
  /** Stops the timer before it fires; harmless after. */
  cancel(): void;
}

export interface Clock {
  now(): number;
  /** Calls `fn` after `ms`; the timer never keeps the process alive. */
  after(ms: number, fn: () => void): Timer;
  /** A number in [0, 1), for jitter and percentages. */
  random(): number;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  after: (ms, fn) => {
    const timer = setTimeout(fn, ms);
    timer.unref();
    return { cancel: () => clearTimeout(timer) };
  },
  random: Math.random,
};

/** Resolves after `ms`, or at once (with false) when the request is aborted first. */
export function sleep(clock: Clock, ms: number, abort: RequestAbort): Promise<boolean> {
  if (abort.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = () => {
      timer.cancel();
      resolve(false);
    };
    const timer = clock.after(ms, () => {
      abort.off(onAbort);
      resolve(true);
    });
    abort.on(onAbort);
  });
}
