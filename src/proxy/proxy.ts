import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { startHealthServer, type HealthServer } from '../admin/health.ts';
import type { Config } from '../config/schema.ts';
import type { Logger } from '../log.ts';
import { createTcpMetrics } from '../telemetry/tcp-metrics.ts';
import { IdentityWatcher } from '../tls/identity-watcher.ts';
import { StaticPeers } from '../tls/mesh-peers.ts';
import { MeshletError } from '../errors.ts';
import { inboundStack } from './inbound/stack.ts';
import { listenRedirected, type RedirectListener } from './listener.ts';
import { LocalAddresses } from './loop-guard.ts';
import { outboundStack } from './outbound/stack.ts';
import type { StackDeps } from './stack-deps.ts';

export interface RunningProxy {
  outbound: RedirectListener;
  inbound: RedirectListener;
  health: HealthServer;
  registry: Registry;
  /** Stop accepting, wait up to `graceMs` for open connections, then close the rest. */
  shutdown(graceMs: number): Promise<void>;
}

const METRIC_PREFIX = 'meshlet';

export async function startProxy(config: Config, log: Logger): Promise<RunningProxy> {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const tcpMetrics = createTcpMetrics(registry, METRIC_PREFIX);
  const watcher = startIdentity(config, log, registry);
  const health = await startHealthServer(config.health.port, registry);
  const deps: StackDeps = {
    config,
    log,
    tcpMetrics,
    localAddresses: new LocalAddresses(),
    proxyPorts: new Set([config.outbound.port, config.inbound.port, config.health.port, 15000]),
    identity: () => watcher?.current,
    peers: new StaticPeers(config.mesh.peers, watcher?.current.trustDomain ?? 'cluster.local'),
  };
  const outbound = await listenRedirected('outbound', config.outbound.port, outboundStack(deps), { log, metrics: tcpMetrics });
  const inbound = await listenRedirected('inbound', config.inbound.port, inboundStack(deps), { log, metrics: tcpMetrics });
  health.setReady(true);

  return {
    outbound,
    inbound,
    health,
    registry,
    async shutdown(graceMs) {
      health.setReady(false);
      const listeners = [outbound, inbound];
      for (const l of listeners) l.server.close();
      const open = () => listeners.reduce((n, l) => n + l.active.size, 0);
      const deadline = Date.now() + graceMs;
      while (open() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      for (const l of listeners) for (const s of l.active) s.destroy();
      watcher?.close();
      await new Promise((r) => health.server.close(r));
    },
  };
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
    name: `${METRIC_PREFIX}_identity_cert_expiration_timestamp_seconds`,
    help: 'When the workload certificate in use expires (Unix time)',
    registers: [registry],
  });
  const watcher = new IdentityWatcher(config.identity.dir, { log, onRotate: (next) => expiry.set(next.notAfter.getTime() / 1000) }).start();
  expiry.set(watcher.current.notAfter.getTime() / 1000);
  return watcher;
}
