import net from 'node:net';
import { errnoError } from './errno.ts';
import { streamBinding } from './stream-binding.ts';

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
  readDirectly(socket);
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

// Each read of a socket reading into a buffer still went through node:net's handler for
// every stream's reads (onStreamRead): it looks the socket up behind its handle, re-arms
// the socket's timeout and checks that it is not destroyed, through loads that V8 sees at
// the same places for every kind of socket in the process and so resolves in its slowest,
// megamorphic way: callgrind counted 2 400 to 3 600 instructions a request and sidecar
// there (a plaintext pair 101 300 → 95 200). The handle calls whatever function its
// `onread` holds (node:net sets it), so a socket reading into a buffer gets one of its own
// that hands a read straight to the callback. It gives node:net's handler everything
// else: the end of the stream, an error, and every read of a socket that has a timeout to
// re-arm or is destroyed.

interface ReadHandle {
  onread: (this: ReadHandle, arrayBuffer: unknown) => unknown;
  reading: boolean;
  readStop(): number;
}

/** Handles whose reads already go to their socket's callback. */
const direct = new WeakSet<ReadHandle>();

/**
 * Gives a socket that reads into a buffer (made with `onread`, or switched by
 * readAcceptedInto) a read handler of its own: each read goes straight to its callback.
 * Returns false, leaving the socket as it is, where that cannot be done.
 */
export function readDirectly(socket: net.Socket): boolean {
  const handle = (socket as unknown as { _handle?: ReadHandle | null })._handle;
  const readable = (socket as unknown as { _readableState?: { readonly destroyed: boolean } })._readableState;
  if (streamBinding === undefined || FIELDS === undefined || !handle || !readable || typeof handle.onread !== 'function' || socket.destroyed) return false;
  if (direct.has(handle)) return true;
  const fields = socket as unknown as Fields;
  if (!(fields[FIELDS.buffer] instanceof Uint8Array) || typeof fields[FIELDS.callback] !== 'function') return false;
  const general = handle.onread;
  const { state, readBytesOrError } = streamBinding;
  const { buffer: bufferField, callback: callbackField } = FIELDS;
  handle.onread = function onRead(this: ReadHandle, arrayBuffer: unknown) {
    const bytes = state[readBytesOrError]!;
    if (bytes <= 0 || socket.timeout || readable.destroyed) return general.call(this, arrayBuffer);
    const callback = fields[callbackField] as ReadInto['callback'];
    if (callback(bytes, fields[bufferField] as Uint8Array) === false) stopReading(socket, this, readable);
    return undefined;
  };
  direct.add(handle);
  return true;
}

/** What node:net does when an `onread` callback returns false. */
function stopReading(socket: net.Socket, handle: ReadHandle, readable: { readonly destroyed: boolean }): void {
  handle.reading = false;
  if (readable.destroyed) return;
  const err = handle.readStop();
  if (err) socket.destroy(errnoError(err, 'read'));
}
