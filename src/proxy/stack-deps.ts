import type { Config } from '../config/schema.ts';
import type { Logger } from '../log.ts';
import type { TcpMetrics } from '../telemetry/tcp-metrics.ts';
import type { Identity } from '../tls/identity.ts';
import type { PeerLookup } from '../tls/mesh-peers.ts';
import type { LocalAddresses } from './loop-guard.ts';

/** What the inbound and outbound recipes are built from; created once per proxy. */
export interface StackDeps {
  config: Config;
  log: Logger;
  tcpMetrics: TcpMetrics;
  localAddresses: LocalAddresses;
  /** Every port this proxy listens on: a connection to one of them on a local address is a loop. */
  proxyPorts: ReadonlySet<number>;
  /** The current workload identity (it rotates); undefined when none is configured. */
  identity: () => Identity | undefined;
  /** Which destinations are meshed. */
  peers: PeerLookup;
}
