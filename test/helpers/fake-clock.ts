import type { Clock, Timer } from '../../src/resilience/clock.ts';

/** Time that moves only when a test says so; timers fire in order as it does. */
export class FakeClock implements Clock {
  #now = 0;
  #timers: Array<{ at: number; fn: () => void; cancelled: boolean }> = [];
  /** What random() returns next (a fixed value unless a test changes it). */
  randomValue = 0.5;

  now(): number {
    return this.#now;
  }

  after(ms: number, fn: () => void): Timer {
    const timer = { at: this.#now + ms, fn, cancelled: false };
    this.#timers.push(timer);
    return { cancel: () => (timer.cancelled = true) };
  }

  random(): number {
    return this.randomValue;
  }

  /** Timers not yet fired or cancelled. */
  get pending(): number {
    return this.#timers.filter((t) => !t.cancelled).length;
  }

  /** Moves time on by `ms`, firing each timer due on the way and letting promises settle after each. */
  async advance(ms: number): Promise<void> {
    const until = this.#now + ms;
    await settle();
    for (;;) {
      const due = this.#timers.filter((t) => !t.cancelled && t.at <= until).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.#timers.splice(this.#timers.indexOf(due), 1);
      this.#now = due.at;
      due.fn();
      await settle();
    }
    this.#now = until;
    await settle();
  }
}

/** Lets pending promise callbacks run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}
