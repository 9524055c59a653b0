import type net from 'node:net';
import type { Body, BodyAbort } from '../../../pipeline/body.ts';
import type { RawHeaders } from '../../../pipeline/headers.ts';
import { chunkHeader, CRLF, trailerBlock } from './serialize.ts';

/** How a body is delimited on an HTTP/1.1 connection this side writes. */
export type OutgoingFraming = 'length' | 'chunked' | 'close';

/**
 * Writes `body` to `socket` in `framing`, with backpressure (the body waits for the
 * socket's 'drain', which the connection forwards to `drained()`), and reports its end.
 * One per body; nothing is buffered here beyond the socket's own buffer.
 */
export class BodyWriter {
  readonly #socket: net.Socket;
  readonly #body: Body;
  readonly #chunked: boolean;
  readonly #done: (err: BodyAbort | undefined) => void;
  #finished = false;

  constructor(socket: net.Socket, body: Body, framing: OutgoingFraming, done: (err: BodyAbort | undefined) => void) {
    this.#socket = socket;
    this.#body = body;
    this.#chunked = framing === 'chunked';
    this.#done = done;
  }

  get finished(): boolean {
    return this.#finished;
  }

  start(): void {
    const socket = this.#socket;
    this.#body.pipe({
      data: (chunk) => {
        if (socket.destroyed) return false;
        if (!this.#chunked) return socket.write(chunk);
        socket.cork();
        socket.write(chunkHeader(chunk.length));
        socket.write(chunk);
        const ok = socket.write(CRLF);
        socket.uncork();
        return ok;
      },
      end: (trailers: RawHeaders) => {
        this.#finished = true;
        if (this.#chunked && !socket.destroyed) socket.write(trailerBlock(trailers));
        this.#done(undefined);
      },
      abort: (err) => {
        this.#finished = true;
        this.#done(err);
      },
    });
  }

  /** The socket has room again. */
  drained(): void {
    if (!this.#finished) this.#body.resume();
  }

  /** The connection is gone before the body was written. */
  cancel(reason: BodyAbort): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#body.cancel(reason);
  }
}
