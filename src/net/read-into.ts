import net from 'node:net';

/**
 * Reading into the caller's own buffer (node:net's `onread`): each read goes to `callback`
 * with the number of bytes, and the socket emits no 'data' (no stream chunk, no buffer
 * allocated per read). The bytes are valid during the call only. The socket's pause() and
 * resume() stop and restart the reads.
 */
export interface ReadInto {
  readonly buffer: Uint8Array;
  /** Returns false to stop reading (as pause() does). */
  readonly callback: (bytes: number, buffer: Uint8Array) => boolean;
}

// A connecting socket takes `onread` as an option; a server's accepted sockets cannot, as
// net.Server has no such option, so each of their reads is a stream chunk pushed through
// Readable, whose push schedules a process.nextTick per read (maybeReadMore): callgrind
// counted 3 000 instructions per request and sidecar for it, and 6 000 once V8 had sent
// that nextTick's object literal to its runtime. An accepted socket is switched to the
// same reads a connecting one gets: its handle's own useUserBuffer(), and the two fields
// in which node:net keeps an `onread` buffer and callback. Those fields are found on a
// socket made with `onread` (by value, not by name); where they cannot be found the
// socket is left as it is, and its caller reads 'data'.

interface OnreadFields {
  readonly buffer: symbol;
  readonly callback: symbol;
}

const FIELDS = findOnreadFields();

function findOnreadFields(): OnreadFields | undefined {
  const buffer = Buffer.alloc(1);
  const callback = () => true;
  const probe = new net.Socket({ onread: { buffer, callback } });
  const fields = probe as unknown as Fields;
  const own = Object.getOwnPropertySymbols(probe);
  const bufferField = own.find((s) => fields[s] === buffer);
  const callbackField = own.find((s) => fields[s] === callback);
  probe.destroy();
  return bufferField && callbackField ? { buffer: bufferField, callback: callbackField } : undefined;
}

type Fields = Record<symbol, unknown>;
type UserBufferHandle = { useUserBuffer?: (buffer: Uint8Array) => void };

/**
 * Switches an accepted socket (plain or TLS) to `into`'s reads. Returns the bytes the
 * socket had already read and holds (put back by a protocol sniffer, or read with the
 * handshake), which the caller handles before anything `into` is given; or undefined
 * when the socket cannot be switched, and is to be read by 'data' as before.
 */
export function readAcceptedInto(socket: net.Socket, into: ReadInto): Buffer[] | undefined {
  const handle = (socket as unknown as { _handle?: UserBufferHandle | null })._handle;
  if (FIELDS === undefined || typeof handle?.useUserBuffer !== 'function' || socket.destroyed) return undefined;
  const held: Buffer[] = [];
  for (let chunk: Buffer | null; (chunk = socket.read() as Buffer | null) !== null; ) held.push(chunk);
  const fields = socket as unknown as Fields;
  fields[FIELDS.buffer] = into.buffer;
  fields[FIELDS.callback] = into.callback;
  handle.useUserBuffer(into.buffer);
  return held;
}

/**
 * A socket switched by readAcceptedInto gives its reads to `callback` from now on
 * (a tunnel taking over the connection from the HTTP/1.1 codec).
 */
export function redirectReads(socket: net.Socket, callback: ReadInto['callback']): void {
  if (FIELDS !== undefined) (socket as unknown as Fields)[FIELDS.callback] = callback;
}

/**
 * A socket switched by readAcceptedInto becomes a stream again: each read is copied and
 * pushed, so 'data', pipe() and their backpressure work as on any socket. For a socket
 * handed on to code that reads it as a stream (a tunnel after `Upgrade`).
 */
export function readAsStream(socket: net.Socket): void {
  redirectReads(socket, (bytes, buffer) => socket.push(Buffer.from(buffer.subarray(0, bytes))));
}
