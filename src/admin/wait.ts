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
/** A probe squeezed into the last moments still gets this long (the wait may overrun by as much). */
const MIN_PROBE_MS = 50;

interface Answer {
  ready: boolean;
  /** The status and body, or the connection error. */
  text: string;
  /** No answer within the probe's limit. */
  timedOut: boolean;
}

/** Polls http://host:port/healthz/ready; never rejects. */
export async function waitUntilReady(options: WaitOptions): Promise<WaitResult> {
  const started = performance.now();
  const deadline = started + options.timeoutMs;
  let last: string | undefined;
  for (;;) {
    const limit = Math.max(MIN_PROBE_MS, Math.min(PROBE_LIMIT_MS, deadline - performance.now()));
    const answer = await probe(options.host, options.port, limit);
    if (answer.ready) return { ready: true, afterMs: Math.round(performance.now() - started) };
    // A probe cut short by the deadline says less than the answer before it.
    if (!(answer.timedOut && limit < PROBE_LIMIT_MS && last !== undefined)) last = answer.text;
    const left = deadline - performance.now();
    if (left <= 0) return { ready: false, last };
    await new Promise((resolve) => setTimeout(resolve, Math.min(options.intervalMs ?? 200, left)));
  }
}

function probe(host: string, port: number, limitMs: number): Promise<Answer> {
  return new Promise((resolve) => {
    const req = http.get({ host, port, path: '/healthz/ready', timeout: limitMs, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d.slice(0, 200)));
      res.on('end', () => resolve({ ready: res.statusCode === 200, text: `${res.statusCode} ${body.trim()}`, timedOut: false }));
      res.on('error', (err) => resolve({ ready: false, text: err.message, timedOut: false }));
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer within ${limitMs} ms`), { code: 'TIMEOUT' })));
    req.on('error', (err: NodeJS.ErrnoException) => {
      const text = err.code === 'ECONNREFUSED' ? `nothing listens on ${host}:${port} (ECONNREFUSED)` : err.message;
      resolve({ ready: false, text, timedOut: err.code === 'TIMEOUT' });
    });
  });
}
