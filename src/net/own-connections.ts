import type net from 'node:net';
import { unmapIPv4 } from './addresses.ts';

// The local address and port of every connection this process opens. When the proxy
// runs under a UID or GID that the interception rules do not exempt, each connection it
// opens is redirected back to its own outbound listener, which would forward it again,
// forever. Knowing its own connections by their local address and port, the listener
// recognises one arriving back (its peer address and port are that pair) and refuses it
// as a loop at the first hop, whatever the rules say.
//
// Every place that opens a connection calls trackOwnConnection on its socket. The cost
// is one string and one Set entry per connection, removed when the socket closes.

/** Local address|port of each open connection → where it goes ('' while unknown). */
const open = new Map<string, string>();
const tracked = new WeakSet<net.Socket>();

const keyOf = (address: string, port: number) => `${unmapIPv4(address)}|${port}`;

/**
 * Remembers `socket`, a connection this process is opening (or has opened), until it
 * closes; returns it. Call it as soon as the socket exists: at the latest before the
 * event loop runs again after the connect was issued, since the connection may be
 * accepted by our own listener on the loop's next turn. Calling it twice is harmless.
 */
export function trackOwnConnection<S extends net.Socket>(socket: S, dst?: { address: string; port: number }): S {
  if (tracked.has(socket)) return socket;
  // The kernel may give an app's connection the same local port as one of ours to another
  // destination: with the destination in the key, only our own connection matches.
  const to = dst ? keyOf(dst.address, dst.port) : '';
  tracked.add(socket);
  let key: string | undefined;
  let closed = false;
  const register = () => {
    if (key !== undefined || closed) return;
    const local = boundAddress(socket);
    if (local === undefined) return;
    key = keyOf(local.address, local.port);
    open.set(key, to);
  };
  register(); // connected already, or connect() issued already (the kernel picked the port)
  if (key === undefined) {
    // Node issues connect() on a later tick and says 'connectionAttempt' just before it:
    // the port is known right after, before any accept on this loop's next turn.
    socket.once('connectionAttempt', () => process.nextTick(register));
    socket.once('connect', register);
  }
  socket.once('close', () => {
    closed = true;
    if (key !== undefined) open.delete(key);
  });
  return socket;
}

/**
 * Whether a peer at `address`:`port` is one of this process's own open connections; with
 * `dst` (the accepted connection's original destination), only if that connection was
 * made to `dst`.
 */
export function isOwnConnection(address: string, port: number, dst?: { address: string; port: number }): boolean {
  if (open.size === 0) return false;
  const to = open.get(keyOf(address, port));
  if (to === undefined) return false;
  return to === '' || dst === undefined || to === keyOf(dst.address, dst.port);
}

/** How many connections are tracked now (for tests and diagnostics). */
export function ownConnectionCount(): number {
  return open.size;
}

interface SocknameHandle {
  getsockname?(out: { address?: string; port?: number }): number;
}

/**
 * The local address the kernel bound, asked of the handle directly: net.Socket caches
 * its first answer, so asking `socket.localPort` before connect() would fix it empty.
 */
function boundAddress(socket: net.Socket): { address: string; port: number } | undefined {
  const handle = (socket as unknown as { _handle?: SocknameHandle | null })._handle;
  const out: { address?: string; port?: number } = {};
  if (!handle?.getsockname || handle.getsockname(out) !== 0 || !out.port || !out.address) return undefined;
  return { address: out.address, port: out.port };
}
