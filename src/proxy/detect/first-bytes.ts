import type net from 'node:net';

export type FirstBytes =
  /** What the client sent first; it has been put back, the next reader sees it again. */
  | { readonly kind: 'data'; readonly chunk: Buffer }
  /** Nothing within the timeout: a server-first protocol, or an idle client. */
  | { readonly kind: 'silent' }
  /** The client closed its side without sending anything. */
  | { readonly kind: 'ended' };

/**
 * Looks at what the client sends first without consuming it. `enough` says whether the
 * bytes so far decide the question (default: any byte does); more chunks are read until
 * it does, the client stops, or the timeout passes with something in hand. Leaves no
 * listener behind, so the socket can be handed on whatever the outcome.
 */
export function peekFirstBytes(socket: net.Socket, timeoutMs: number, enough: (bytes: Buffer) => boolean = () => true): Promise<FirstBytes> {
  return new Promise((resolve) => {
    let seen: Buffer = Buffer.alloc(0);
    const finish = (result: FirstBytes) => {
      clearTimeout(timer);
      socket.off('readable', onReadable);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      resolve(result);
    };
    const putBack = () => {
      if (seen.length > 0) socket.unshift(seen);
      return seen.length > 0 ? ({ kind: 'data', chunk: seen } as const) : undefined;
    };
    const onReadable = () => {
      let chunk: Buffer | null;
      while ((chunk = socket.read() as Buffer | null) !== null) seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
      if (seen.length > 0 && enough(seen)) finish(putBack()!);
    };
    const onEnd = () => finish(putBack() ?? { kind: 'ended' });
    const timer = setTimeout(() => finish(putBack() ?? { kind: 'silent' }), timeoutMs);
    socket.on('readable', onReadable);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
  });
}

/** The first byte of a TLS handshake record (RFC 8446 5.1). */
export const TLS_HANDSHAKE_RECORD = 0x16;
