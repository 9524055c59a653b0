import type net from 'node:net';

export type FirstBytes =
  /** The first chunk the client sent; it has been put back, the next reader sees it again. */
  | { readonly kind: 'data'; readonly chunk: Buffer }
  /** Nothing within the timeout: a server-first protocol, or an idle client. */
  | { readonly kind: 'silent' }
  /** The client closed its side without sending anything. */
  | { readonly kind: 'ended' };

/**
 * Looks at what the client sends first without consuming it. Leaves no listener behind,
 * so the socket can be handed on whatever the outcome.
 */
export function peekFirstBytes(socket: net.Socket, timeoutMs: number): Promise<FirstBytes> {
  return new Promise((resolve) => {
    const finish = (result: FirstBytes) => {
      clearTimeout(timer);
      socket.off('readable', onReadable);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      resolve(result);
    };
    const onReadable = () => {
      const chunk = socket.read() as Buffer | null;
      if (chunk === null) return; // 'end' follows
      socket.unshift(chunk);
      finish({ kind: 'data', chunk });
    };
    const onEnd = () => finish({ kind: 'ended' });
    const timer = setTimeout(() => finish({ kind: 'silent' }), timeoutMs);
    socket.on('readable', onReadable);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
  });
}

/** The first byte of a TLS handshake record (RFC 8446 5.1). */
export const TLS_HANDSHAKE_RECORD = 0x16;
