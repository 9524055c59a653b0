// V8 sizes its young generation at start-up only: a flag set later (v8.setFlagsFromString)
// changes nothing. Left to grow, each of its two semi-spaces reaches 16 MiB and more under
// load, memory a sidecar holds in every pod. The proxy's per-request objects die young,
// so a small young generation costs only more frequent, short scavenges: measured through
// a sidecar pair in pods after 180 000 requests, RSS 143 MiB by default, 121 MiB with
// 2 MiB semi-spaces (96 MiB from the compiled build), with no CPU cost per HTTP/1.1
// request that could be told from noise; HTTP/2 loses about 15 % of its rate
// (docs/performance.md). `meshlet proxy` therefore starts over, in the same process (execve keeps the
// PID, the environment and the open descriptors), with the flag set, unless the user set
// it already. `proxy.semiSpaceSize` sets the size (default 2 MiB).
//
// The first process has already loaded and validated the configuration, so it hands the
// result over: the proxy that serves then never loads the schema library and the YAML
// parser (about 10 MiB of heap a sidecar would keep for nothing) until a reload needs them.
import type { Config } from '../config/schema.ts';

const FLAG = '--max-semi-space-size';
/** Not MESHLET_*: those name configuration fields, and an unknown one is an error. */
const HANDOVER_VARIABLE = '_MESHLET_PROXY_VALIDATED_CONFIG';

/** Starts over with the proxy's heap flags and `config` handed over; returns only when it does not. */
export function restartWithProxyHeap(config: Config): void {
  const given = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].some((arg) => arg.startsWith(FLAG));
  if (given || typeof process.execve !== 'function') return;
  const env = { ...process.env, [HANDOVER_VARIABLE]: JSON.stringify(config) };
  process.execve(process.execPath, [process.execPath, ...process.execArgv, `${FLAG}=${config.proxy.semiSpaceSize}`, ...process.argv.slice(1)], env);
}

/**
 * The configuration the process before execve validated, if this is the restarted
 * proxy; the variable is removed so that nothing started later inherits it.
 */
export function takeHandedOverConfig(env: NodeJS.ProcessEnv): Config | undefined {
  const json = env[HANDOVER_VARIABLE];
  if (json === undefined) return undefined;
  delete env[HANDOVER_VARIABLE];
  if (env !== process.env) delete process.env[HANDOVER_VARIABLE];
  return JSON.parse(json) as Config;
}
