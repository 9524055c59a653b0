// /healthz/ready is the conjunction of named conditions, each read when the probe asks,
// so a condition that changes on its own (a certificate expiring) needs nobody to
// update a flag; the probe's body names the conditions that fail.

export interface ReadinessCondition {
  /** What must hold, as the probe reports it when it does not: `inbound listener bound`. */
  readonly name: string;
  readonly holds: () => boolean;
}

export class Readiness {
  readonly #conditions: ReadinessCondition[] = [];

  /** Adds a condition; the proxy is ready only while every condition holds. */
  require(name: string, holds: () => boolean): this {
    this.#conditions.push({ name, holds });
    return this;
  }

  /** The names of the conditions that do not hold now; empty when ready. */
  failing(): string[] {
    return this.#conditions.filter((c) => !c.holds()).map((c) => c.name);
  }
}
