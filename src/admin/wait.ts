import http from 'node:http';

// The start gate's loop: ask /healthz/ready until it answers 200 or the time is up. Each
// probe has its own short limit, so a proxy that accepts but never answers costs one
// probe, not the whole wait.

export interface WaitOptions {
  host: string;
  port: number;
  timeoutMs: number;
  /** Pause between probes. */
  intervalMs?: number;
}

export type WaitResult = { ready: true; afterMs: number } | { ready: false; last: string };

const PROBE_LIMIT_MS = 1000;

/** Polls http://host:port/healthz/ready; never rejects. */
export async function waitUntilReady(options: WaitOptions): Promise<WaitResult> {
  const started = performance.now();
  const deadline = started + options.timeoutMs;
  let last = 'no answer yet';
  for (;;) {
    last = await probe(options.host, options.port, Math.max(1, Math.min(PROBE_LIMIT_MS, deadline - performance.now())));
    if (last === 'ready') return { ready: true, afterMs: Math.round(performance.now() - started) };
    const left = deadline - performance.now();
    if (left <= 0) return { ready: false, last };
    await new Promise((resolve) => setTimeout(resolve, Math.min(options.intervalMs ?? 200, left)));
  }
}

/** 'ready', or what the answer was instead: the status and body, or the connection error. */
function probe(host: string, port: number, limitMs: number): Promise<string> {
  return new Promise((resolve) => {
    const req = http.get({ host, port, path: '/healthz/ready', timeout: limitMs, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d.slice(0, 200)));
      res.on('end', () => resolve(res.statusCode === 200 ? 'ready' : `${res.statusCode} ${body.trim()}`));
      res.on('error', (err) => resolve(err.message));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${limitMs} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED' ? `nothing listens on ${host}:${port} (ECONNREFUSED)` : err.message));
  });
}
