import { collectDefaultMetrics, Registry } from 'prom-client';
import { startHealthServer, type HealthServer } from '../admin/health.ts';
import type { Config } from '../config/schema.ts';
import type { Logger } from '../log.ts';
import { createTcpMetrics } from '../telemetry/tcp-metrics.ts';
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
  const health = await startHealthServer(config.health.port, registry);
  const deps: StackDeps = {
    config,
    log,
    tcpMetrics,
    localAddresses: new LocalAddresses(),
    proxyPorts: new Set([config.outbound.port, config.inbound.port, config.health.port, 15000]),
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
      await new Promise((r) => health.server.close(r));
    },
  };
}
