import type http from 'node:http';
import type net from 'node:net';
import { Gauge, Registry } from 'prom-client';
import { startAdminServer, type AdminServer } from '../admin/admin-server.ts';
import { Drain, type DrainEnd } from '../admin/drain.ts';
import { createAppProbes } from '../admin/app-probes.ts';
import { startHealthServer, type HealthServer } from '../admin/health.ts';
import { Readiness } from '../admin/readiness.ts';
import type { Config } from '../config/schema.ts';
import type { Logger } from '../log.ts';
import { collectProcessMetrics } from '../telemetry/process-metrics.ts';
import { createTelemetry } from '../telemetry/telemetry.ts';
import { createResilienceMetrics } from '../telemetry/resilience-metrics.ts';
import { withBreakerLog } from '../resilience/events.ts';
import { policyTable, ResilienceRuntime } from '../resilience/runtime.ts';
import { IdentityWatcher } from '../tls/identity-watcher.ts';
import { StaticPeers } from '../tls/mesh-peers.ts';
import { describeError, MeshletError } from '../errors.ts';
import type { Handler } from '../pipeline/compose.ts';
import type { AcceptedConnection, ConnectionOutcome, Direction } from '../pipeline/connection.ts';
import { inboundStack } from './inbound/stack.ts';
import { listenRedirected, type RedirectListener } from './listener.ts';
import { LocalAddresses } from './loop-guard.ts';
import { outboundStack } from './outbound/stack.ts';
import { adminControls, drainTargets, isValidNow } from './operations.ts';
import { newStackParts, type StackDeps } from './stack-deps.ts';
import { checkProxyIdentity } from './uid-check.ts';

export interface RunningProxy {
  outbound: RedirectListener;
  inbound: RedirectListener;
  health: HealthServer;
  admin: AdminServer;
  registry: Registry;
  /** The graceful drain: SIGTERM and POST /drain start it. */
  drain: Drain;
  /** Starts the graceful drain; once it is over, everything is closed and `ended` resolves. */
  drainAndStop(reason: string): Promise<ProxyEnd>;
  /** Closes everything now, connections in flight included (POST /quitquitquit, tests). */
  stop(): Promise<void>;
  /** Resolves once the proxy has stopped: drained, drain.timeout reached, or quit. */
  readonly ended: Promise<ProxyEnd>;
  /** The resilience policies in force (update() on reload) and per-destination state (for /clusters). */
  resilience: ResilienceRuntime;
  /**
   * Takes a reloaded configuration: the resilience policies (and the log level) apply to
   * the next requests and connections; open connections are untouched. Returns the other
   * sections that changed, which only a restart applies.
   */
  reload(next: Config): string[];
}

/** How the proxy ended. */
export type ProxyEnd = DrainEnd | 'quit';

/**
 * Starts everything or nothing. First it refuses to run under a UID/GID whose traffic
 * the interception rules would send back to it (uid-check.ts). Then, when a step fails
 * (a port taken, an identity that does not load), what the earlier steps opened is
 * closed again before the error is thrown, so the process can exit at once with the
 * reason instead of lingering half-started.
 */
export async function startProxy(config: Config, log: Logger): Promise<RunningProxy> {
  await checkProxyIdentity(config, log);
  const opened: Array<() => Promise<void> | void> = [];
  try {
    const registry = new Registry();
    collectProcessMetrics(registry);
    // What needs a restart is compared with what the proxy started with, which stays in force.
    const started = config;
    const resilience = ResilienceRuntime.fromConfig(config, withBreakerLog(createResilienceMetrics(registry, config.metrics.prefix), log));
    const watcher = startIdentity(config, log, registry);
    if (watcher) opened.push(() => watcher.close());
    const telemetry = await createTelemetry(registry, config, log, watcher?.current.spiffeId);
    // Closed last: the spans of the last requests, ended as their connections closed, still go out.
    if (telemetry.tracer) opened.push(() => telemetry.tracer!.shutdown());
    const { tcpMetrics } = telemetry;
    const parts = newStackParts();
    const listeners: Partial<Record<Direction, RedirectListener>> = {};
    const drain = new Drain(drainTargets(listeners, parts), { delayMs: config.drain.delay, timeoutMs: config.drain.timeout }, log);
    const readiness = new Readiness()
      .require('outbound listener bound', () => listeners.outbound?.server.listening === true)
      .require('inbound listener bound', () => listeners.inbound?.server.listening === true)
      .require('not draining', () => !drain.draining);
    if (watcher) readiness.require('identity loaded and within its validity', () => isValidNow(watcher.current));

    // Closes what start-up opened, in reverse order; once only.
    let stopping: Promise<void> | undefined;
    const stop = () => (stopping ??= (async () => {
      for (const close of [...opened].reverse()) await close();
    })());
    let end!: (how: ProxyEnd) => void;
    const ended = new Promise<ProxyEnd>((resolve) => (end = resolve));
    const drainAndStop = (reason: string): Promise<ProxyEnd> => {
      if (!drain.draining) void drain.start(reason).then(async (how) => {
        await stop();
        end(how);
      });
      return ended;
    };
    const quit = () => {
      log.info({ open: drain.status().openConnections }, 'quitting at once (POST /quitquitquit)');
      void stop().then(() => end('quit'));
    };

    const appProbes = await createAppProbes(config.health.appProbes);
    const health = await bound('health server', config.health.port, () => startHealthServer(config.health.port, registry, readiness, appProbes));
    opened.push(() => closeServer(health.server));
    const admin = await bound('admin server', config.admin.port, () =>
      startAdminServer(config.admin.port, adminControls({ config, log, parts, watcher, drain, drainAndStop, quit, resilience })),
    );
    opened.push(() => closeServer(admin.server));
    const deps: StackDeps = {
      ...telemetry,
      config,
      log,
      localAddresses: new LocalAddresses(),
      proxyPorts: new Set([config.outbound.port, config.inbound.port, config.health.port, admin.port]),
      identity: () => watcher?.current,
      peers: new StaticPeers(config.mesh.peers, watcher?.current.trustDomain ?? 'cluster.local'),
      parts,
      resilience,
    };
    const listen = async (direction: Direction, port: number, stack: Handler<AcceptedConnection, ConnectionOutcome>) => {
      const listener = await bound(`${direction} listener`, port, () => listenRedirected(direction, port, stack, { log, metrics: tcpMetrics }));
      opened.push(() => closeListener(listener));
      listeners[direction] = listener;
      return listener;
    };
    const outbound = await listen('outbound', config.outbound.port, outboundStack(deps));
    const inbound = await listen('inbound', config.inbound.port, inboundStack(deps));

    return {
      outbound,
      inbound,
      health,
      admin,
      registry,
      drain,
      drainAndStop,
      stop,
      ended,
      resilience,
      reload(next) {
        resilience.update(policyTable(next));
        log.level = next.log.level;
        const changed = (Object.keys(next) as Array<keyof Config>).filter((k) => k !== 'resilience' && k !== 'log' && JSON.stringify(next[k]) !== JSON.stringify(started[k]));
        return changed;
      },
    };
  } catch (err) {
    for (const close of opened.reverse()) await close();
    throw err;
  }
}

/** Binds with `listen`; a port that cannot be had is a MeshletError naming what wanted it. */
async function bound<T>(what: string, port: number, listen: () => Promise<T>): Promise<T> {
  try {
    return await listen();
  } catch (err) {
    const errno = (err as NodeJS.ErrnoException).code;
    const why = errno === 'EADDRINUSE' ? 'is in use by another process' : errno === 'EACCES' ? 'is not allowed to this user' : `cannot be bound: ${describeError(err)}`;
    throw new MeshletError('MESHLET_ERR_LISTEN', `${what}: port ${port} ${why}${errno ? ` (${errno})` : ''}`, { cause: err });
  }
}

/** Stops listening (the port is free at once) and drops connections accepted meanwhile. */
function closeListener(listener: RedirectListener): Promise<void> {
  for (const socket of listener.active) socket.destroy();
  return closeServer(listener.server);
}

function closeServer(server: net.Server | http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    if ('closeAllConnections' in server) server.closeAllConnections();
  });
}

/** Loads and watches the identity when one is configured; refuses configurations that need one. */
function startIdentity(config: Config, log: Logger, registry: Registry): IdentityWatcher | undefined {
  if (!config.identity.dir) {
    const needs = [
      config.mesh.peers.length > 0 ? 'mesh.peers' : '',
      config.inbound.mtls === 'strict' || Object.values(config.inbound.perPort).some((p) => p.mtls === 'strict') ? 'inbound.mtls strict' : '',
    ].filter(Boolean);
    if (needs.length > 0) throw new MeshletError('MESHLET_ERR_CONFIG', `identity.dir: required by ${needs.join(' and ')} (mTLS needs a certificate)`);
    return undefined;
  }
  const expiry = new Gauge({
    name: `${config.metrics.prefix}_identity_cert_expiration_timestamp_seconds`,
    help: 'When the workload certificate in use expires (Unix time)',
    registers: [registry],
  });
  const watcher = new IdentityWatcher(config.identity.dir, { log, onRotate: (next) => expiry.set(next.notAfter.getTime() / 1000) }).start();
  expiry.set(watcher.current.notAfter.getTime() / 1000);
  return watcher;
}
