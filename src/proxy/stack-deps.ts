import type { NamedPool } from '../admin/clusters.ts';
import type { Config } from '../config/schema.ts';
import type { Direction } from '../pipeline/connection.ts';
import type { Logger } from '../log.ts';
import type { Telemetry } from '../telemetry/telemetry.ts';
import type { Identity } from '../tls/identity.ts';
import type { PeerLookup } from '../tls/mesh-peers.ts';
import type { ResilienceRuntime } from '../resilience/runtime.ts';
import type { LocalAddresses } from './loop-guard.ts';

/** What the inbound and outbound recipes are built from; created once per proxy. */
export interface StackDeps extends Telemetry {
  config: Config;
  log: Logger;
  localAddresses: LocalAddresses;
  /** Every port this proxy listens on: a connection to one of them on a local address is a loop. */
  proxyPorts: ReadonlySet<number>;
  /** The current workload identity (it rotates); undefined when none is configured. */
  identity: () => Identity | undefined;
  /** Which destinations are meshed. */
  peers: PeerLookup;
  parts: StackParts;
  /** The resilience policies in force (hot-reloaded) and their per-destination state. */
  resilience: ResilienceRuntime;
}

/** An HTTP server side (HTTP/1.1 or HTTP/2) that takes part in the graceful drain. */
export interface DrainableServer {
  /** From now on: HTTP/1.1 responses carry Connection: close, HTTP/2 sessions get GOAWAY. */
  drain(): void;
  /**
   * The drain delay is over: idle HTTP/1.1 connections close now; HTTP/2 sessions (those
   * opened during the delay too) get GOAWAY and close once their streams are done.
   */
  closeIdle(): void;
}

/**
 * What the stacks built that the proxy acts on later: the HTTP servers (for the drain)
 * and the upstream pools (for /clusters). The stacks add to it while they are composed.
 */
export interface StackParts {
  readonly servers: Record<Direction, DrainableServer[]>;
  readonly pools: NamedPool[];
}

export function newStackParts(): StackParts {
  return { servers: { inbound: [], outbound: [] }, pools: [] };
}
