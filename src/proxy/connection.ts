import type net from 'node:net';
import type { OrigDst, PeerAddr } from './addresses.ts';

export type Direction = 'outbound' | 'inbound';

/** One accepted, redirected connection as it enters the connection pipeline. */
export interface AcceptedConnection {
  readonly id: number;
  readonly direction: Direction;
  readonly socket: net.Socket;
  readonly peer: PeerAddr;
  readonly origDst: OrigDst;
}

/**
 * Envoy-style response flags (design.md): UF upstream connect failure, UC upstream
 * closed (reset), DC downstream closed (reset), NR no route (loop), '-' none.
 */
export type ResponseFlag = '-' | 'UF' | 'UC' | 'DC' | 'NR';

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
