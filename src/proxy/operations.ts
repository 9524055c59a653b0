import type { AdminControls } from '../admin/admin-server.ts';
import { identityView } from '../admin/certs.ts';
import { clusterEntries } from '../admin/clusters.ts';
import type { ResilienceStateView } from '../resilience/targets.ts';
import type { Drain, DrainTargets } from '../admin/drain.ts';
import { redact } from '../admin/redact.ts';
import type { Config } from '../config/schema.ts';
import { LOG_LEVELS, type Logger } from '../log.ts';
import type { Direction } from '../pipeline/connection.ts';
import type { IdentityWatcher } from '../tls/identity-watcher.ts';
import type { Identity } from '../tls/identity.ts';
import type { RedirectListener } from './listener.ts';
import type { StackParts } from './stack-deps.ts';

// What the admin server, the readiness probe and the drain act on, over the parts of a
// running proxy: src/admin/ defines the controls, this file wires them to the proxy.

/** The drain acts on both listeners and every HTTP server the stacks built. */
export function drainTargets(listeners: Partial<Record<Direction, RedirectListener>>, parts: StackParts): DrainTargets {
  const all = () => [...parts.servers.inbound, ...parts.servers.outbound];
  return {
    beginDrain: () => all().forEach((s) => s.drain()),
    stopAccepting: () => {
      listeners.inbound?.server.close();
      parts.servers.inbound.forEach((s) => s.closeIdle());
    },
    openConnections: () => (listeners.inbound?.active.size ?? 0) + (listeners.outbound?.active.size ?? 0),
  };
}

export interface AdminParts {
  config: Config;
  log: Logger;
  parts: StackParts;
  watcher: IdentityWatcher | undefined;
  drain: Drain;
  drainAndStop: (reason: string) => unknown;
  quit: () => void;
  /** Per-destination resilience state (policy, retry budget, limits, circuit breaker). */
  resilience: ResilienceStateView;
}

export function adminControls(o: AdminParts): AdminControls {
  return {
    configDump: () => redact(o.config),
    clusters: () => clusterEntries(o.parts.pools, o.resilience.breakerStates()),
    resilience: () => o.resilience.targets(),
    certs: () => (o.watcher ? identityView(o.watcher.current, new Date()) : undefined),
    logLevel: () => o.log.level,
    setLogLevel: (level) => {
      o.log.info({ level, previous: o.log.level }, 'log level changed through the admin server');
      o.log.level = level;
    },
    levels: LOG_LEVELS,
    drain: () => {
      o.drainAndStop('POST /drain');
      return o.drain.status();
    },
    quit: o.quit,
  };
}

export function isValidNow(identity: Identity): boolean {
  const now = Date.now();
  return identity.notBefore.getTime() <= now && now < identity.notAfter.getTime();
}
