import type { Body, BodyAbort, BodySink } from '../pipeline/body.ts';
import type { RawHeaders } from '../pipeline/headers.ts';

/**
 * A request body that can be sent again: it streams to the current try as it arrives (no
 * waiting for the whole body) and keeps what passed, up to `max` bytes, so a retry can
 * start over from the first byte. Past `max` it keeps nothing more than what the current
 * try has not taken yet, and is no longer replayable: a larger body is never retried.
 * A try that fails lets go of its body (cancel) without cancelling the client's: the
 * next try, or `abandon()` when there is none, decides.
 */
export class ReplayableBody {
  readonly #source: Body;
  readonly #max: number;
  /** Every chunk from the first while replayable; afterwards only those the current try has not taken. */
  #chunks: Buffer[] = [];
  #size = 0;
  #keep = true;
  #ended: RawHeaders | BodyAbort | undefined;
  #started = false;
  #current: AttemptBody | undefined;
  /** The source was told to stop and waits for resume(). */
  #sourceWaiting = false;

  readonly #recorder: BodySink = {
    data: (chunk) => {
      this.#size += chunk.length;
      if (this.#size > this.#max) this.#keep = false;
      this.#chunks.push(chunk);
      const a = this.#current;
      if (a !== undefined) {
        this.pump(a);
        if (a.flowing && a.index === this.#chunks.length) return true;
      }
      this.#sourceWaiting = true;
      return false;
    },
    end: (trailers) => {
      this.#ended = trailers;
      if (this.#current) this.pump(this.#current);
    },
    abort: (err) => {
      this.#ended = err;
      if (this.#current) this.pump(this.#current);
    },
  };

  constructor(source: Body, max: number) {
    this.#source = source;
    this.#max = max;
  }

  /** Whether a new try could send the whole body from its first byte. */
  get replayable(): boolean {
    return this.#keep && !(this.#ended instanceof Error);
  }

  /** The body for a new try; the previous try's body, if any, is detached from the source. */
  attempt(): Body {
    const a = new AttemptBody(this, this.#source.length);
    this.#current = a;
    return a;
  }

  /** The try in progress is the last: what it has taken need not be kept any more. */
  commit(): void {
    this.#keep = false;
    if (this.#current) this.#trim(this.#current);
  }

  /**
   * No try will read the rest: release the client's body, as a failed upstream exchange
   * would. A body no try ever started reading is left as it is, as it would have been
   * without retries (the listener answers the client and deals with its unread body).
   */
  abandon(reason: BodyAbort): void {
    this.#current = undefined;
    this.#chunks = [];
    if (this.#started && this.#ended === undefined) this.#source.cancel(reason);
  }

  /** @internal Delivers what `a` has not taken yet, as far as its sink allows. */
  pump(a: AttemptBody): void {
    if (a !== this.#current || a.sink === undefined) return;
    if (!this.#started) {
      this.#started = true;
      this.#source.pipe(this.#recorder); // may deliver (and so pump) at once
      return;
    }
    const sink = a.sink;
    while (a.flowing && a.index < this.#chunks.length) {
      if (!sink.data(this.#chunks[a.index++]!)) a.flowing = false;
    }
    this.#trim(a);
    if (!a.flowing || a.index < this.#chunks.length || a !== this.#current) return;
    const ended = this.#ended;
    if (ended !== undefined) {
      if (a.done) return;
      a.done = true;
      if (Array.isArray(ended)) sink.end(ended);
      else sink.abort(ended);
    } else if (this.#sourceWaiting) {
      this.#sourceWaiting = false;
      this.#source.resume();
    }
  }

  /** @internal */
  detach(a: AttemptBody): void {
    if (a === this.#current) this.#current = undefined;
  }

  #trim(a: AttemptBody): void {
    if (this.#keep || a.index === 0) return;
    this.#chunks.splice(0, a.index);
    a.index = 0;
  }
}

/** One try's view of a ReplayableBody. */
class AttemptBody implements Body {
  readonly length: number | undefined;
  readonly #owner: ReplayableBody;
  sink: BodySink | undefined;
  index = 0;
  flowing = false;
  done = false;

  constructor(owner: ReplayableBody, length: number | undefined) {
    this.#owner = owner;
    this.length = length;
  }

  pipe(sink: BodySink): void {
    this.sink = sink;
    this.flowing = true;
    this.#owner.pump(this);
  }

  resume(): void {
    if (this.sink === undefined) return;
    this.flowing = true;
    this.#owner.pump(this);
  }

  cancel(): void {
    this.#owner.detach(this);
  }
}
