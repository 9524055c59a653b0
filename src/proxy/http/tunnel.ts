import { MeshletError } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import type { AcceptedConnection } from '../../pipeline/connection.ts';
import type { Connector } from '../tcp/connectors.ts';
import { rawErrorResponse } from './error-response.ts';
import { isMeshHop, without } from './headers.ts';
import type { TunnelHandler, TunnelRequest } from './http1-downstream.ts';

/**
 * `Upgrade` (WebSocket) and CONNECT: the request head is written to a connection of its
 * own to the destination (through the peer sidecar, mTLS meshlet/tcp, when meshed), and
 * from then on bytes flow both ways untouched. The upstream's answer, 101 or not, reaches
 * the client as the upstream wrote it.
 */
export function tunnelHandler(connectorFor: (conn: AcceptedConnection) => Connector, connectTimeoutMs: number, log: Logger): TunnelHandler {
  return (conn, req, client, head) => {
    const { socket: upstream, readyEvent } = connectorFor(conn)(conn.origDst);
    let ready = false;
    const timer = setTimeout(() => upstream.destroy(new MeshletError('MESHLET_ERR_UPSTREAM_CONNECT', `no connection within ${connectTimeoutMs} ms`)), connectTimeoutMs);
    upstream.once(readyEvent, () => {
      if (upstream.destroyed) return;
      ready = true;
      clearTimeout(timer);
      upstream.write(requestHead(req));
      if (head.length > 0) upstream.write(head);
      client.pipe(upstream);
      upstream.pipe(client);
    });
    upstream.on('error', (err) => {
      clearTimeout(timer);
      if (!ready) {
        log.debug({ conn: conn.id, err: err.message }, 'tunnel: cannot connect upstream');
        if (client.writable) client.end(rawErrorResponse(new MeshletError('MESHLET_ERR_UPSTREAM_CONNECT', err.message)));
        return;
      }
      client.destroy();
    });
    client.on('error', () => upstream.destroy());
    client.once('close', () => upstream.destroy());
    upstream.once('close', () => client.end());
  };
}

function requestHead(req: TunnelRequest): string {
  const headers = without(req.headers, isMeshHop);
  let head = `${req.method} ${req.target} HTTP/1.${req.versionMinor}\r\n`;
  for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
  return `${head}\r\n`;
}
