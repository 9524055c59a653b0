import { parseOptions, reportError, usage } from '../args.ts';
import { formatDuration, parseDuration } from '../config/duration.ts';
import { MeshletError } from '../errors.ts';
import { waitUntilReady } from './wait.ts';

const USAGE = `usage: meshlet wait [--timeout DURATION] [--port PORT]

Waits until the proxy in this pod is ready (GET 127.0.0.1:PORT/healthz/ready answers
200), then exits 0; exits 1 with the last answer if it is not ready within the
timeout. A start gate for apps that must not start before the proxy: run it as the
sidecar container's postStart hook. See docs/observability.md.

  --timeout DURATION  how long to wait (default 60s; Go syntax: 500ms, 30s, 2m)
  --port PORT         the proxy's health port (default MESHLET_HEALTH_PORT, else 15020)`;

const DEFAULT_TIMEOUT = '60s';

/** `meshlet wait`: 0 ready, 1 not ready in time, 2 usage error. */
export async function waitCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let options;
  try {
    const values = parseOptions(argv, { timeout: { type: 'string' }, port: { type: 'string' } }, { command: 'wait' });
    if (values.help) {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    options = {
      timeoutMs: parseTimeout(values.timeout ?? DEFAULT_TIMEOUT),
      port: parsePort(values.port ?? (env.MESHLET_HEALTH_PORT || undefined), values.port === undefined),
    };
  } catch (err) {
    reportError('wait', err);
    return 2;
  }
  const result = await waitUntilReady({ host: '127.0.0.1', port: options.port, timeoutMs: options.timeoutMs });
  if (result.ready) {
    process.stdout.write(`meshlet wait: the proxy is ready (after ${formatDuration(result.afterMs)})\n`);
    return 0;
  }
  const err = new MeshletError(
    'MESHLET_ERR_NOT_READY',
    `the proxy on 127.0.0.1:${options.port} was not ready within ${formatDuration(options.timeoutMs)}; last answer: ${result.last}`,
  );
  reportError('wait', err);
  return 1;
}

function parseTimeout(text: string): number {
  const ms = parseDuration(text.trim());
  if (ms === undefined) throw usage(`--timeout ${text} is not a duration (Go syntax: 500ms, 30s, 2m)`);
  if (ms <= 0) throw usage(`--timeout ${text}: the timeout must be positive`);
  return ms;
}

function parsePort(text: string | undefined, fromEnv: boolean): number {
  if (text === undefined) return 15020;
  const port = /^\d+$/.test(text.trim()) ? Number(text.trim()) : NaN;
  if (!(port >= 1 && port <= 65535)) {
    throw usage(`${fromEnv ? 'MESHLET_HEALTH_PORT' : '--port'}: '${text}' is not a port number (1–65535)`);
  }
  return port;
}
