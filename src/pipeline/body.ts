import type { RawHeaders } from './headers.ts';

// A message body as the request pipeline passes it on: a light push source with
// backpressure, not a stream object. The codec that received the bytes drives it; the
// codec that sends them on is its sink. A request without a body has none of this, and a
// body already in hand (a proxy-made response, a small replayable request) is one array.

/** Where a body's bytes go. */
export interface BodySink {
  /** One chunk (never empty). False: the sink is full; the body stops until its resume() is called. */
  data(chunk: Buffer): boolean;
  /** The body ended whole; `trailers` as received ([] when none). */
  end(trailers: RawHeaders): void;
  /** The body was cut short (client or upstream gone, reset, invalid framing): it must not be taken for whole. */
  abort(err: BodyAbort): void;
}

/** Why a body ended early; `rstCode` is the HTTP/2 RST_STREAM code when a stream was reset. */
export interface BodyAbort extends Error {
  rstCode?: number;
}

export function bodyAbort(message: string, rstCode?: number): BodyAbort {
  const err: BodyAbort = new Error(message);
  if (rstCode !== undefined) err.rstCode = rstCode;
  return err;
}

export interface Body {
  /** The exact length when the sender declared it (Content-Length); undefined otherwise. */
  readonly length: number | undefined;
  /** Starts delivery to `sink`; at most once. Bytes already in hand may be delivered before this returns. */
  pipe(sink: BodySink): void;
  /** The sink has room again after data() returned false. */
  resume(): void;
  /** The reader gives up: stop reading and release what the body holds. */
  cancel(reason: BodyAbort): void;
}

/** A body whose bytes are all in hand: responses the proxy makes, replayed requests. */
export class BufferedBody implements Body {
  readonly length: number;
  readonly #chunks: readonly Buffer[];
  readonly #trailers: RawHeaders;
  #next = 0;
  #sink: BodySink | undefined;
  #done = false;

  constructor(chunks: readonly Buffer[], trailers: RawHeaders = []) {
    this.#chunks = chunks.filter((c) => c.length > 0);
    this.#trailers = trailers;
    this.length = this.#chunks.reduce((n, c) => n + c.length, 0);
  }

  pipe(sink: BodySink): void {
    this.#sink = sink;
    this.resume();
  }

  resume(): void {
    const sink = this.#sink;
    if (!sink || this.#done) return;
    while (this.#next < this.#chunks.length) {
      if (!sink.data(this.#chunks[this.#next++]!)) return;
    }
    this.#done = true;
    sink.end(this.#trailers);
  }

  cancel(): void {
    this.#done = true;
  }
}

/** Flow control of whatever feeds a PushBody (a socket, a stream). */
export interface BodyProducer {
  pause(): void;
  resume(): void;
  /** The reader gave up: stop and release (e.g. close the connection, reset the stream). */
  cancel(reason: BodyAbort): void;
}

const HIGH_WATER = 64 * 1024;

/**
 * A body a codec fills as bytes arrive. Until a sink is attached (or while it is full)
 * chunks wait here, at most about 64 KiB before the producer is paused: that, plus the
 * socket buffers, is the memory a slow reader can hold per body.
 */
export class PushBody implements Body {
  readonly length: number | undefined;
  readonly #producer: BodyProducer;
  // The chunks waiting, in order: most bodies through a proxy wait as one chunk, which
  // needs no array (an array's shift() is a builtin call, and a fresh array grows its
  // store on the first push).
  #first: Buffer | undefined;
  #more: Buffer[] | undefined;
  #queued = 0;
  #sink: BodySink | undefined;
  #flowing = false;
  #paused = false;
  /** Set once the producer finished: trailers when whole, the abort otherwise. */
  #ended: RawHeaders | BodyAbort | undefined;
  #delivered = false;
  #cancelled = false;

  constructor(producer: BodyProducer, length?: number) {
    this.#producer = producer;
    this.length = length;
  }

  /** From the producer: body bytes. */
  push(chunk: Buffer): void {
    if (this.#cancelled || this.#ended) return;
    const empty = this.#first === undefined && (this.#more === undefined || this.#more.length === 0);
    if (this.#flowing && empty) {
      if (!this.#sink!.data(chunk)) this.#stop();
      return;
    }
    if (empty) this.#first = chunk;
    else (this.#more ??= []).push(chunk);
    this.#queued += chunk.length;
    if (this.#queued >= HIGH_WATER && !this.#paused) {
      this.#paused = true;
      this.#producer.pause();
    }
  }

  /** From the producer: the body is complete. */
  finish(trailers: RawHeaders): void {
    if (this.#cancelled || this.#ended) return;
    this.#ended = trailers;
    this.#handBack();
    this.#drain();
  }

  /** From the producer: the body was cut short. */
  fail(err: BodyAbort): void {
    if (this.#cancelled || this.#ended) return;
    this.#ended = err;
    this.#first = undefined;
    this.#more = undefined;
    this.#queued = 0;
    this.#handBack();
    this.#drain();
  }

  pipe(sink: BodySink): void {
    this.#sink = sink;
    this.#flowing = true;
    this.#drain();
  }

  resume(): void {
    if (!this.#sink || this.#flowing) return;
    this.#flowing = true;
    this.#drain();
  }

  cancel(reason: BodyAbort): void {
    if (this.#cancelled || this.#delivered) return;
    this.#cancelled = true;
    this.#first = undefined;
    this.#more = undefined;
    if (!this.#ended) this.#producer.cancel(reason);
  }

  /**
   * The producer is done with this body and goes on to its next message (a keep-alive
   * connection back in its pool, the next pipelined request): it must not stay paused on
   * this body's account, and the body never pauses it again. What is still queued is
   * delivered from here as the sink makes room.
   */
  #handBack(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.#producer.resume();
  }

  #stop(): void {
    this.#flowing = false;
    if (!this.#paused && this.#ended === undefined) {
      this.#paused = true;
      this.#producer.pause();
    }
  }

  #take(): Buffer | undefined {
    const first = this.#first;
    if (first !== undefined) {
      this.#first = undefined;
      return first;
    }
    return this.#more !== undefined && this.#more.length > 0 ? this.#more.shift() : undefined;
  }

  #drain(): void {
    const sink = this.#sink;
    if (!sink || !this.#flowing) return;
    for (let chunk = this.#take(); chunk !== undefined; chunk = this.#take()) {
      this.#queued -= chunk.length;
      if (!sink.data(chunk)) {
        this.#stop();
        return;
      }
    }
    const ended = this.#ended;
    if (ended !== undefined) {
      if (this.#delivered) return;
      this.#delivered = true;
      if (Array.isArray(ended)) sink.end(ended);
      else sink.abort(ended);
      return;
    }
    if (this.#paused) {
      this.#paused = false;
      this.#producer.resume();
    }
  }
}
