import type net from 'node:net';
import type { MeshPeer } from '../tls/mesh-peers.ts';
import type { OrigDst, PeerAddr } from '../net/addresses.ts';

export type Direction = 'outbound' | 'inbound';

/** One accepted, redirected connection as it enters the connection pipeline. */
export interface AcceptedConnection {
  readonly id: number;
  readonly direction: Direction;
  readonly socket: net.Socket;
  readonly peer: PeerAddr;
  readonly origDst: OrigDst;
  /** `mutual_tls` once the inbound side terminated the peer's mTLS; Istio's label values. */
  readonly security: 'none' | 'mutual_tls';
  /** The peer's verified SPIFFE ID (inbound mTLS only). */
  readonly peerPrincipal?: string;
  /** Outbound only: the destination is meshed and is reached over mTLS as this peer. */
  readonly upstreamPeer?: MeshPeer;
  /** What the connection carries, once detected or configured; undefined until then. */
  readonly protocol?: ConnectionProtocol;
}

/**
 * `tcp`: opaque bytes (also TLS that is not meshlet's); `http1` and `h2` (h2c with prior
 * knowledge): the app's HTTP; `mesh-h2`: meshlet's HTTP/2 between sidecars, carrying
 * requests of either protocol; `mesh-http1`: meshlet's HTTP/1.1 between sidecars,
 * carrying an app's HTTP/1.1 requests.
 */
export type ConnectionProtocol = 'tcp' | 'http1' | 'h2' | 'mesh-h2' | 'mesh-http1';

/**
 * Envoy-style response flags (design.md): UF upstream connect failure (including a
 * failed mTLS handshake), UC upstream closed (reset), UT upstream timeout, UPE upstream
 * protocol error (an invalid response), DPE downstream protocol error (an invalid
 * request), DC downstream closed (reset), NR no route (loop), RBAC denied by
 * authorization or by the mTLS mode, UO overflow (a limit, or later an open breaker),
 * RL rate limited, FI fault injected (abort), DI delay injected, URX retries exhausted,
 * '-' none. URX joins the flag of the last attempt's failure: `UT,URX`, `UF,URX`.
 */
export type SingleFlag = 'UF' | 'UC' | 'UT' | 'UPE' | 'DPE' | 'DC' | 'NR' | 'RBAC' | 'UO' | 'RL' | 'FI' | 'DI';
export type ResponseFlag = '-' | SingleFlag | 'URX' | `${SingleFlag},URX`;

/** What happened to a connection once both sides are closed. */
export interface ConnectionOutcome {
  /** Bytes read from the downstream client. */
  readonly receivedBytes: number;
  /** Bytes written to the downstream client. */
  readonly sentBytes: number;
  readonly flag: ResponseFlag;
  /** Short machine-readable reason when the proxy ended the connection itself. */
  readonly reason?: string;
}
