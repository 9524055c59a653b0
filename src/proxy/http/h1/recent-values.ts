// One string per recent field value, found by the value's bytes. A parsed head's values
// are new strings every request (slices of the head's text), and a value the proxy
// compares across requests (the Host, which telemetry and the resilience policy key on)
// then costs V8 a comparison in its runtime, character by character through the slices'
// representation: callgrind counted about 500 instructions a request for one such
// comparison of an authority. Handing out the same string for the same bytes makes those
// comparisons an identity check, and its hash is computed once for every map it keys.
// Values are found by comparing bytes in the read buffer, never strings.

/** Values longer than this are left as they came: comparing them would cost more than it saves. */
const MAX_VALUE_BYTES = 128;

export class RecentValues {
  readonly #bytes: Uint8Array[] = [];
  readonly #strings: string[] = [];
  readonly #capacity: number;
  /** Where the next new value goes: slots fill in order, then are reused round robin (no bookkeeping per hit). */
  #next = 0;

  constructor(capacity: number) {
    this.#capacity = capacity;
  }

  /**
   * The string kept for the bytes `b[start, start + length)`; `value` (those bytes as a
   * string) is kept for them the first time they are seen.
   */
  intern(b: Uint8Array, start: number, length: number, value: string): string {
    if (length > MAX_VALUE_BYTES) return value;
    const bytes = this.#bytes;
    for (let e = 0; e < bytes.length; e++) {
      const kept = bytes[e]!;
      if (kept.length !== length) continue;
      let i = 0;
      while (i < length && kept[i] === b[start + i]) i++;
      if (i === length) return this.#strings[e]!;
    }
    const at = this.#next;
    this.#next = (at + 1) % this.#capacity;
    // A copy: the read buffer is reused. The string is kept as it is, a slice of its head's
    // text (which it keeps alive: at most `capacity` heads), so a miss costs no second copy.
    bytes[at] = Uint8Array.prototype.slice.call(b, start, start + length);
    this.#strings[at] = value;
    return value;
  }
}
