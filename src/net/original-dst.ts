import type net from 'node:net';
import koffi from 'koffi';
import { MeshletError } from '../errors.ts';
import { origDst, unmapIPv4, type OrigDst } from './addresses.ts';

// The only module that asks the kernel where a redirected connection was headed.
// Node's net has no getsockopt, so libc's is called through koffi on the socket's fd.

const SOL_IP = 0;
const SOL_IPV6 = 41;
const SO_ORIGINAL_DST = 80; // IP6T_SO_ORIGINAL_DST has the same value
const AF_INET = 2;
const AF_INET6 = 10;
const SOCKADDR_BUF = 28; // sizeof(struct sockaddr_in6); sockaddr_in fits too

const libc = koffi.load('libc.so.6');
const getsockopt = libc.func('int getsockopt(int fd, int level, int name, _Out_ void *buf, _Inout_ uint32_t *len)');

function fdOf(socket: net.Socket): number {
  const handle = (socket as unknown as { _handle?: { fd?: number } })._handle;
  const fd = handle?.fd;
  if (typeof fd !== 'number' || fd < 0) {
    throw new MeshletError('MESHLET_ERR_ORIGINAL_DST', 'accepted socket has no file descriptor');
  }
  return fd;
}

/**
 * The destination the client originally connected to, before REDIRECT.
 * A connection that was not redirected reports the listener's own address; callers
 * must treat that as a loop (see isSelfDestination), never as somewhere to forward to.
 */
export function readOriginalDst(socket: net.Socket): OrigDst {
  const fd = fdOf(socket);
  // An IPv4 client on a dual-stack listener is tracked by the IPv4 NAT table.
  const local = socket.localAddress ?? '';
  const level = unmapIPv4(local) !== local || !local.includes(':') ? SOL_IP : SOL_IPV6;
  const buf = Buffer.alloc(SOCKADDR_BUF);
  const len = [SOCKADDR_BUF];
  const rc = getsockopt(fd, level, SO_ORIGINAL_DST, buf, len) as number;
  if (rc !== 0) {
    const errno = koffi.errno();
    throw new MeshletError(
      'MESHLET_ERR_ORIGINAL_DST',
      `getsockopt(SO_ORIGINAL_DST) failed with errno ${errno} (no NAT entry for this connection?)`,
    );
  }
  return decodeSockaddr(buf);
}

export function decodeSockaddr(buf: Buffer): OrigDst {
  const family = buf.readUInt16LE(0);
  const port = buf.readUInt16BE(2);
  if (family === AF_INET) {
    return origDst(`${buf[4]}.${buf[5]}.${buf[6]}.${buf[7]}`, port);
  }
  if (family === AF_INET6) {
    const groups: string[] = [];
    for (let i = 0; i < 8; i++) groups.push(buf.readUInt16BE(8 + i * 2).toString(16));
    return origDst(compressIPv6(groups), port);
  }
  throw new MeshletError('MESHLET_ERR_ORIGINAL_DST', `unexpected address family ${family} in SO_ORIGINAL_DST`);
}

function compressIPv6(groups: string[]): string {
  // Let the URL parser produce the canonical (RFC 5952) text form.
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
}
