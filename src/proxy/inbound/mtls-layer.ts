import type net from 'node:net';
import tls from 'node:tls';
import { getExtensionData, readTlsClientHello } from 'read-tls-client-hello';
import type { Config } from '../../config/schema.ts';
import { describeError } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import type { Identity } from '../../tls/identity.ts';
import { checkPeerIdentity, MESH_ALPN_H2, MESH_ALPN_HTTP1, MESH_ALPN_TCP } from '../../tls/peer-identity.ts';
import type { TcpMetrics } from '../../telemetry/tcp-metrics.ts';
import { formatHostPort } from '../../net/addresses.ts';
import type { AcceptedConnection, ConnectionOutcome } from '../../pipeline/connection.ts';
import type { Layer } from '../../pipeline/compose.ts';
import { reset } from '../tcp/forward.ts';
import { peekFirstBytes, TLS_HANDSHAKE_RECORD } from '../detect/first-bytes.ts';

type Mode = Config['inbound']['mtls'];

export interface InboundMtlsDeps {
  config: Config['inbound'];
  /** The current identity; undefined when no identity is configured. */
  identity: () => Identity | undefined;
  log: Logger;
  metrics: TcpMetrics;
}

/** What arrived, decided from the first bytes without consuming them. `silent`: nothing yet (plaintext, server-first). */
type Arrival = 'mesh-mtls' | 'other-tls' | 'plaintext' | 'silent';

const MESH_ALPNS = [MESH_ALPN_HTTP1, MESH_ALPN_H2, MESH_ALPN_TCP];

async function classify(conn: AcceptedConnection, timeoutMs: number): Promise<Arrival> {
  const first = await peekFirstBytes(conn.socket, timeoutMs);
  if (first.kind === 'silent') return 'silent';
  if (first.kind !== 'data' || first.chunk[0] !== TLS_HANDSHAKE_RECORD) return 'plaintext';
  let timer: NodeJS.Timeout | undefined;
  try {
    // A TLS client sends its whole ClientHello at once; one that stalls half-way is dropped.
    const hello = await Promise.race([
      readTlsClientHello(conn.socket),
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('ClientHello did not arrive in time')), timeoutMs))),
    ]);
    const protocols = getExtensionData(hello, 'alpn')?.protocols ?? [];
    return protocols.some((p) => MESH_ALPNS.includes(p)) ? 'mesh-mtls' : 'other-tls';
  } catch {
    return 'plaintext'; // not parseable as TLS after all; the bytes were put back
  } finally {
    clearTimeout(timer);
  }
}

type Terminated = { socket: tls.TLSSocket; principal: string };

/**
 * The server side of meshlet's mTLS for one identity. A tls.Server that never listens:
 * accepted sockets are handed to it, it runs the handshake and verifies the client
 * certificate against ca.crt (public API only; a bare TLSSocket would not verify).
 * Whether a verified peer may talk to us is decided here, so that the reason of every
 * rejection can be logged.
 */
class MtlsTerminator {
  readonly identity: Identity;
  readonly #server: tls.Server;
  readonly #pending = new Map<string, (socket: tls.TLSSocket) => void>();

  constructor(identity: Identity) {
    this.identity = identity;
    this.#server = tls.createServer({
      cert: identity.pem.cert,
      key: identity.pem.key,
      ca: identity.pem.ca,
      minVersion: 'TLSv1.3',
      requestCert: true,
      rejectUnauthorized: false,
      ALPNProtocols: MESH_ALPNS,
      allowHalfOpen: true,
    });
    this.#server.on('secureConnection', (socket: tls.TLSSocket) => this.#pending.get(tupleOf(socket))?.(socket));
  }

  terminate(raw: net.Socket, timeoutMs: number): Promise<Terminated> {
    const key = tupleOf(raw);
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        raw.off('close', onClose);
        this.#pending.delete(key);
      };
      const fail = (err: Error, socket?: tls.TLSSocket) => {
        done();
        socket?.destroy();
        raw.destroy();
        reject(err);
      };
      const onClose = () => fail(new Error('handshake failed or the peer closed the connection during it'));
      const timer = setTimeout(() => fail(new Error('mTLS handshake timed out')), timeoutMs);
      raw.once('close', onClose);
      this.#pending.set(key, (socket) => {
        done();
        if (!socket.authorized) {
          // Node reports a missing client certificate as UNABLE_TO_GET_ISSUER_CERT (never
          // undefined), which sends an operator looking at CAs; say what happened instead.
          const why = socket.getPeerX509Certificate() === undefined ? 'none presented' : String(socket.authorizationError);
          fail(new Error(`client certificate rejected: ${why}`), socket);
          return;
        }
        try {
          resolve({ socket, principal: checkPeerIdentity(socket.getPeerX509Certificate(), { trustDomain: this.identity.trustDomain }) });
        } catch (err) {
          fail(err as Error, socket);
        }
      });
      this.#server.emit('connection', raw);
    });
  }
}

/** Identifies a live connection; the TLS socket reports its wrapped socket's addresses. */
function tupleOf(socket: net.Socket): string {
  return `${socket.remoteAddress}|${socket.remotePort}|${socket.localPort}`;
}

/**
 * Per connection: find the mTLS mode for the app port, look at the first bytes, then
 * terminate meshlet mTLS, pass the app's own TLS or plaintext through, or refuse.
 */
export function inboundMtlsLayer(deps: InboundMtlsDeps): Layer<AcceptedConnection, ConnectionOutcome> {
  const { config, log, metrics } = deps;
  const modeFor = (port: number): Mode => config.perPort[String(port)]?.mtls ?? config.mtls;
  const refuse = (conn: AcceptedConnection, reason: string, detail: Record<string, unknown>): ConnectionOutcome => {
    metrics.refused.inc({ reporter: 'destination', reason });
    log.warn({ peer: formatHostPort(conn.peer.address, conn.peer.port), port: conn.origDst.port, reason, ...detail }, 'inbound connection refused');
    reset(conn.socket);
    return { receivedBytes: 0, sentBytes: 0, flag: 'RBAC', reason };
  };

  // One terminator per identity: rebuilt when the certificate rotates, shared otherwise.
  let terminator: MtlsTerminator | undefined;
  const terminatorFor = (identity: Identity) => {
    if (terminator?.identity !== identity) terminator = new MtlsTerminator(identity);
    return terminator;
  };

  return (next) => async (conn) => {
    const mode = modeFor(conn.origDst.port);
    const identity = deps.identity();
    if (mode === 'disable' || !identity) return next(conn);
    const arrival = await classify(conn, config.detectTimeout);
    if (arrival !== 'mesh-mtls') {
      if (mode === 'strict') return refuse(conn, 'mtls_required', { arrived: arrival === 'silent' ? 'plaintext' : arrival });
      // permissive: plaintext, or the app's own TLS, untouched; a silent client was waited for once already
      return next(arrival === 'silent' ? { ...conn, protocol: 'tcp' } : conn);
    }
    let terminated;
    try {
      terminated = await terminatorFor(identity).terminate(conn.socket, config.detectTimeout + 10_000);
    } catch (err) {
      metrics.refused.inc({ reporter: 'destination', reason: 'mtls_handshake' });
      log.warn({ peer: formatHostPort(conn.peer.address, conn.peer.port), port: conn.origDst.port, err: describeError(err) }, 'inbound mTLS handshake failed');
      return { receivedBytes: 0, sentBytes: 0, flag: 'UF', reason: 'mtls_handshake' };
    }
    const alpn = terminated.socket.alpnProtocol;
    const protocol = alpn === MESH_ALPN_H2 ? 'mesh-h2' : alpn === MESH_ALPN_HTTP1 ? 'mesh-http1' : undefined;
    return next({ ...conn, socket: terminated.socket, security: 'mutual_tls', peerPrincipal: terminated.principal, ...(protocol ? { protocol } : {}) });
  };
}
