import type { Clock } from './clock.ts';
import type { BudgetPolicy } from './policy.ts';
import type { TargetStateView } from './targets.ts';

const SLOTS = 10;

/**
 * Linkerd's retry budget: over a sliding window, retries may be at most `ratio` of the
 * requests plus `minPerSecond` for each second of the window. So a destination that
 * fails every request sees at most (1 + ratio) times the load plus a small floor, never
 * attempts × the load (a retry storm). Counted in ten slots; a slot is cleared as the
 * window moves past it.
 */
export class RetryBudget implements TargetStateView {
  readonly #policy: BudgetPolicy;
  readonly #clock: Clock;
  readonly #slotMs: number;
  readonly #requests = new Float64Array(SLOTS);
  readonly #retries = new Float64Array(SLOTS);
  #slot = -1;
  #exhausted = 0;

  constructor(policy: BudgetPolicy, clock: Clock) {
    this.#policy = policy;
    this.#clock = clock;
    this.#slotMs = policy.windowMs / SLOTS;
  }

  /** One request (not a retry) was made. */
  deposit(): void {
    this.#requests[this.#advance()]!++;
  }

  /** Takes one retry from the budget; false when it has run out. */
  withdraw(): boolean {
    const slot = this.#advance();
    if (sum(this.#retries) + 1 > this.#allowed()) {
      this.#exhausted++;
      return false;
    }
    this.#retries[slot]!++;
    return true;
  }

  snapshot(): Record<string, number> {
    this.#advance();
    const retries = sum(this.#retries);
    return { requests: sum(this.#requests), retries, available: Math.max(0, Math.floor(this.#allowed() - retries)), exhausted: this.#exhausted };
  }

  #allowed(): number {
    return this.#policy.ratio * sum(this.#requests) + (this.#policy.minPerSecond * this.#policy.windowMs) / 1000;
  }

  /** The index of the current slot, clearing those the window has left. */
  #advance(): number {
    const slot = Math.floor(this.#clock.now() / this.#slotMs);
    if (slot !== this.#slot) {
      const stale = this.#slot < 0 ? SLOTS : Math.min(SLOTS, slot - this.#slot);
      for (let i = 1; i <= stale; i++) {
        const index = (((slot - stale + i) % SLOTS) + SLOTS) % SLOTS;
        this.#requests[index] = 0;
        this.#retries[index] = 0;
      }
      this.#slot = slot;
    }
    return ((slot % SLOTS) + SLOTS) % SLOTS;
  }
}

function sum(values: Float64Array): number {
  let total = 0;
  for (const v of values) total += v;
  return total;
}
