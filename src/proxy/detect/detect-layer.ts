import type { Config } from '../../config/schema.ts';
import type { Logger } from '../../log.ts';
import type { AcceptedConnection, ConnectionOutcome, ConnectionProtocol } from '../../pipeline/connection.ts';
import type { Layer } from '../../pipeline/compose.ts';
import { classifyFinal, decided, type Sniffed } from './classify.ts';
import { peekFirstBytes } from './first-bytes.ts';

export interface DetectionCounter {
  inc(labels: { direction: string; protocol: string; how: string }): void;
}

const CONFIGURED: Record<Config['protocols']['ports'][string], ConnectionProtocol> = { tcp: 'tcp', http: 'http1', http2: 'h2', grpc: 'h2' };
const FROM_SNIFFED: Record<Sniffed, ConnectionProtocol> = { tls: 'tcp', tcp: 'tcp', http1: 'http1', h2: 'h2' };

/**
 * Decides what each connection carries: configured per port, opaque for server-first
 * ports, else from the first bytes the client sends (peeked, not consumed). A client
 * silent for `timeoutMs` is opaque TCP, so a server-first protocol on an unlisted port
 * waits that long once and then works. TLS that is not meshlet's stays opaque: the
 * proxy cannot see into it.
 */
export function detectLayer(
  protocols: Config['protocols'],
  timeoutMs: number,
  counter: DetectionCounter,
  log: Logger,
): Layer<AcceptedConnection, ConnectionOutcome> {
  const opaque = new Set(protocols.opaquePorts);
  return (next) => async (conn) => {
    if (conn.protocol !== undefined) return next(conn); // already known (meshlet's own HTTP/2 between sidecars)
    const port = conn.origDst.port;
    const configured = protocols.ports[String(port)];
    if (configured !== undefined) {
      counter.inc({ direction: conn.direction, protocol: CONFIGURED[configured], how: 'configured' });
      return next({ ...conn, protocol: CONFIGURED[configured] });
    }
    if (opaque.has(port)) {
      counter.inc({ direction: conn.direction, protocol: 'tcp', how: 'opaque_port' });
      return next({ ...conn, protocol: 'tcp' });
    }
    const first = await peekFirstBytes(conn.socket, timeoutMs, decided);
    if (first.kind !== 'data') {
      counter.inc({ direction: conn.direction, protocol: 'tcp', how: first.kind === 'silent' ? 'timeout' : 'closed' });
      if (first.kind === 'silent') log.debug({ direction: conn.direction, conn: conn.id, port, timeoutMs }, 'client silent: served as opaque TCP');
      return next({ ...conn, protocol: 'tcp' });
    }
    const protocol = FROM_SNIFFED[classifyFinal(first.chunk)];
    counter.inc({ direction: conn.direction, protocol, how: 'sniffed' });
    return next({ ...conn, protocol });
  };
}
