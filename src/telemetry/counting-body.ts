import type { Body, BodyAbort, BodySink } from '../pipeline/body.ts';
import type { RawHeaders } from '../pipeline/headers.ts';

/** Told how a counted body ended. */
export interface BodyWatcher {
  /** Whole, with its trailers. */
  ended(trailers: RawHeaders): void;
  /** Cut short by its producer (the upstream reset, the client went away mid-request). */
  aborted(): void;
  /** Given up by its reader (the side it was going to is gone). */
  cancelled(): void;
}

/**
 * A body passed on unchanged, its bytes counted as they flow through: nothing is held
 * here, backpressure and the order of calls are the inner body's and the sink's own. One
 * object is both the body its reader sees and the sink the inner body writes to.
 */
export class CountingBody implements Body, BodySink {
  bytes = 0;
  readonly #inner: Body;
  readonly #watcher: BodyWatcher | undefined;
  #sink: BodySink | undefined;

  constructor(inner: Body, watcher?: BodyWatcher) {
    this.#inner = inner;
    this.#watcher = watcher;
  }

  get length(): number | undefined {
    return this.#inner.length;
  }

  pipe(sink: BodySink): void {
    this.#sink = sink;
    this.#inner.pipe(this);
  }

  resume(): void {
    this.#inner.resume();
  }

  cancel(reason: BodyAbort): void {
    this.#inner.cancel(reason);
    this.#watcher?.cancelled();
  }

  data(chunk: Buffer): boolean {
    this.bytes += chunk.length;
    return this.#sink!.data(chunk);
  }

  end(trailers: RawHeaders): void {
    this.#sink!.end(trailers);
    this.#watcher?.ended(trailers);
  }

  abort(err: BodyAbort): void {
    this.#sink!.abort(err);
    this.#watcher?.aborted();
  }
}
