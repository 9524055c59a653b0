import net from 'node:net';
import { errnoError } from './errno.ts';
import { streamBinding } from './stream-binding.ts';

// Writing a whole message to a plain TCP socket's handle, past node:net's Writable. A
// `socket.write()` of a small message goes through the stream's state machine, makes a
// write request object through V8's API (an object template, a global handle) and defers
// its callback by a process.nextTick; callgrind counted about 3 000 user-space
// instructions a write, two writes per request and sidecar. Node's own stream code
// writes with its handle's writeLatin1String / writeBuffer and one request object; when
// the kernel takes every byte at once (uv_try_write), nothing holds that object, so it is
// kept for the next write. When it does not, libuv queues the rest and the object is the
// queued request's until it completes, as in node:net.
//
// A socket is written this way only when that keeps the order of its bytes: connected,
// not ending, nothing buffered in its Writable and nothing queued in libuv. Otherwise, and
// for TLS sockets (whose handle encrypts), and where the binding is not as expected, the
// message goes by socket.write().

interface WriteReq {
  oncomplete?: (this: WriteReq, status: number) => void;
  /** A queued Buffer stays alive until written (libuv points into it). */
  buffer?: Uint8Array | null;
  socket?: net.Socket;
}

interface StreamHandle {
  writeLatin1String(req: WriteReq, data: string): number;
  writeBuffer(req: WriteReq, data: Uint8Array): number;
  readonly writeQueueSize: number;
}

/** A request object no write holds (the last write completed at once). */
let spare: WriteReq | undefined;

/**
 * Writes `data` (a latin1 string or bytes) to `socket` as `socket.write` would, and returns
 * what it would: false when the caller should wait for 'drain'. A message that libuv had
 * to queue counts as written (one message beyond the stream's high-water mark at most):
 * the next write sees the queue and goes through the stream, which then applies
 * backpressure.
 */
export function writeMessage(socket: net.Socket, data: string | Uint8Array): boolean {
  const handle = directHandle(socket);
  if (handle === undefined) return typeof data === 'string' ? socket.write(data, 'latin1') : socket.write(data);
  const req = spare ?? (new streamBinding!.WriteWrap() as WriteReq);
  spare = undefined;
  const err = typeof data === 'string' ? handle.writeLatin1String(req, data) : handle.writeBuffer(req, data);
  if (err !== 0) {
    // Not kept: a write that failed may have bound the object before giving it back.
    socket.destroy(errnoError(err, 'write'));
    return false;
  }
  if (streamBinding!.state[streamBinding!.lastWriteWasAsync] === 0) {
    spare = req;
    return true;
  }
  req.socket = socket;
  if (typeof data !== 'string') req.buffer = data;
  req.oncomplete = onQueuedWriteDone;
  return true;
}

function onQueuedWriteDone(this: WriteReq, status: number): void {
  const socket = this.socket!;
  this.buffer = null;
  this.socket = undefined;
  // A socket closed under a queued write cancels it: nothing to report then.
  if (status < 0 && !socket.destroyed) socket.destroy(errnoError(status, 'write'));
}

/** The socket's handle when a message can go to it directly, keeping the socket's byte order. */
function directHandle(socket: net.Socket): StreamHandle | undefined {
  if (streamBinding === undefined || socket.connecting || socket.destroyed || !socket.writable) return undefined;
  if (socket.writableLength !== 0 || socket.writableCorked !== 0) return undefined;
  const handle = (socket as unknown as { _handle?: unknown })._handle;
  if (!(handle instanceof streamBinding.TCP)) return undefined;
  const stream = handle as StreamHandle;
  return stream.writeQueueSize === 0 ? stream : undefined;
}

/** Whether writes go to handles directly in this runtime (for tests). */
export const directWrites: boolean = streamBinding !== undefined;
