import v8 from 'node:v8';
import { parseOptions, reportError } from '../args.ts';
import type { Config } from '../config/schema.ts';
import { ConfigWatcher } from '../config/watch.ts';
import { describeError, MeshletError } from '../errors.ts';
import { createLogger } from '../log.ts';
import { restartWithProxyHeap, takeHandedOverConfig } from './runtime-flags.ts';

const USAGE = `usage: meshlet proxy [--config FILE]

Runs the sidecar: outbound listener (15001), inbound listener (15006), health and
metrics (15020), admin (127.0.0.1:15000). SIGTERM drains gracefully (drain.delay,
drain.timeout; docs/observability.md). Configuration: defaults, then the YAML file (--config or
MESHLET_CONFIG), then MESHLET_* environment variables. See docs/proxy.md.`;

/** `meshlet proxy`; resolves with an exit code only when start-up fails. */
export async function proxyCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const handedOver = takeHandedOverConfig(env);
  let config;
  let values;
  try {
    values = parseOptions(argv, { config: { type: 'string' } }, { command: 'proxy' });
    if (values.help) {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    // The schema library is loaded only here: the restarted proxy gets the result.
    config = handedOver ?? (await import('../config/load.ts')).loadConfig({ file: values.config ?? env.MESHLET_CONFIG, env });
  } catch (err) {
    // Usage and configuration errors: exit 2, one line per problem.
    reportError('proxy', err);
    return err instanceof MeshletError ? 2 : 1;
  }
  if (!handedOver) restartWithProxyHeap(config);
  const { startProxy } = await import('./proxy.ts');
  const log = createLogger(config.log.level);
  tuneGarbageCollector();
  let proxy;
  try {
    proxy = await startProxy(config, log);
  } catch (err) {
    // Both the log (what collectors see) and one line on stderr (what `kubectl logs -p` shows first).
    log.fatal({ err: describeError(err) }, 'cannot start');
    process.stderr.write(`meshlet proxy: cannot start: ${describeError(err)}\n`);
    const code = err instanceof MeshletError && err.code === 'MESHLET_ERR_CONFIG' ? 2 : 1;
    // startProxy closed what it had opened, so the process ends now; should anything
    // still hold the event loop, it ends anyway rather than linger not ready.
    setTimeout(() => process.exit(code), 1000).unref();
    return code;
  }
  // Hot reload: the resilience policies (and log.level) of a changed file apply to the
  // next requests; a file that does not load is refused and the one in force stays.
  const file = values.config ?? env.MESHLET_CONFIG;
  const onConfig = (next: Config) => {
    const restart = proxy.reload(next);
    if (restart.length > 0) log.warn({ sections: restart }, 'config reload: these sections changed and apply only after a restart');
  };
  const watcher = file ? new ConfigWatcher(file, { env, log, onConfig }).start() : undefined;
  process.on('SIGHUP', () => {
    if (watcher) void watcher.reload('SIGHUP');
    else log.warn('SIGHUP: no config file (--config, MESHLET_CONFIG) to reload');
  });
  log.info(
    { outbound: proxy.outbound.port, inbound: proxy.inbound.port, health: proxy.health.port, admin: proxy.admin.port, uid: process.getuid?.() },
    'ready',
  );
  // SIGTERM (the kubelet stopping the pod) and SIGINT drain gracefully; a second signal
  // during the drain ends the proxy at once.
  const onSignal = (signal: NodeJS.Signals) => {
    if (proxy.drain.draining) {
      log.warn({ signal }, 'second signal while draining: stopping now');
      void proxy.stop().then(() => process.exit(0));
      return;
    }
    void proxy.drainAndStop(signal);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  void proxy.ended.then((how) => {
    watcher?.close();
    log.info({ how }, 'stopped');
    process.exit(0);
  });
  return new Promise<number>(() => {});
}

/**
 * A proxy's per-request objects live for a millisecond or two, but under load V8's
 * allocation-site pretenuring decides they are long-lived and allocates them in the old
 * generation: every scavenge then walks them (measured: 25–35 ms pauses every ~170 ms at
 * 20 000 req/s, and the old generation refilling until a mark-compact). Without it the
 * same load scavenges in 1–2 ms. The flag is read at each GC, so setting it here applies.
 */
function tuneGarbageCollector(): void {
  v8.setFlagsFromString('--no-allocation-site-pretenuring');
}
