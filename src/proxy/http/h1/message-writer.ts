// Imported rather than read as globals: Node's global Buffer and performance are accessors, each read a call (about 170 instructions in callgrind's count).
import { Buffer } from 'node:buffer';
import type net from 'node:net';
import { writeMessage } from '../../../net/direct-write.ts';
import type { Body, BodyAbort } from '../../../pipeline/body.ts';
import type { RawHeaders } from '../../../pipeline/headers.ts';
import { chunkHeader, CRLF, trailerBlock } from './serialize.ts';

/** How a body is delimited on an HTTP/1.1 connection this side writes. */
export type OutgoingFraming = 'length' | 'chunked' | 'close';

/**
 * Writes a message to `socket`: its head, then its body in `framing`, with backpressure
 * (the body waits for the socket's 'drain', which the connection forwards to
 * `drained()`), and reports the end. The head goes out in the same write as the bytes of
 * the body already in hand, as one buffer: a small message is one write, one segment.
 */
export class MessageWriter {
  readonly #socket: net.Socket;
  readonly #body: Body | undefined;
  readonly #chunked: boolean;
  readonly #done: (err: BodyAbort | undefined) => void;
  /** The head, until it is written. */
  #head: string | undefined;
  #finished = false;

  constructor(socket: net.Socket, head: string, body: Body | undefined, framing: OutgoingFraming, done: (err: BodyAbort | undefined) => void) {
    this.#socket = socket;
    this.#head = head;
    this.#body = body;
    this.#chunked = framing === 'chunked';
    this.#done = done;
  }

  start(): void {
    const socket = this.#socket;
    const body = this.#body;
    if (!body) {
      this.#flushHead();
      this.#finished = true;
      this.#done(undefined);
      return;
    }
    body.pipe({
      data: (chunk) => (socket.destroyed ? false : writeMessage(socket, this.#frame(chunk))),
      end: (trailers: RawHeaders) => {
        this.#finished = true;
        if (!socket.destroyed) {
          if (this.#chunked) writeMessage(socket, this.#withHead(trailerBlock(trailers)));
          else this.#flushHead();
        }
        this.#done(undefined);
      },
      abort: (err) => {
        this.#finished = true;
        this.#done(err);
      },
    });
    // Nothing of the body in hand yet: the head goes now, so the peer is not kept waiting for it.
    this.#flushHead();
  }

  /** The socket has room again. */
  drained(): void {
    if (!this.#finished) this.#body?.resume();
  }

  /** The connection is gone before the body was written. */
  cancel(reason: BodyAbort): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#body?.cancel(reason);
  }

  #flushHead(): void {
    const head = this.#head;
    if (head === undefined || this.#socket.destroyed) return;
    this.#head = undefined;
    // A string, not a Buffer made from it: the handle copies a small string straight into
    // its write, with no Buffer object or allocation of ours per message.
    writeMessage(this.#socket, head);
  }

  #withHead(text: string): string {
    const head = this.#head;
    if (head === undefined) return text;
    this.#head = undefined;
    return head + text;
  }

  /** One buffer: the head if it is still to go, the chunk's framing and the chunk. */
  #frame(chunk: Buffer): Buffer {
    const head = this.#head;
    if (head === undefined && !this.#chunked) return chunk;
    this.#head = undefined;
    const before = (head ?? '') + (this.#chunked ? chunkHeader(chunk.length) : '');
    const after = this.#chunked ? 2 : 0;
    const out = Buffer.allocUnsafe(before.length + chunk.length + after);
    out.write(before, 0, 'latin1');
    chunk.copy(out, before.length);
    if (after) out.write(CRLF, before.length + chunk.length, 'latin1');
    return out;
  }
}
