import { randomFillSync } from 'node:crypto';

// Trace and span ids for the proxy: random bytes drawn from a pool refilled 4 KiB at a
// time, written as hex in one call. The SDK's RandomIdGenerator calls Math.random per
// byte and took about 0.7 µs for a trace and a span id; this about a tenth of it, which
// matters because every new trace that is not sampled still needs both (tracing.ts).

const POOL = Buffer.allocUnsafe(4096);
let at = POOL.length;

/** `bytes` random bytes as lower-case hex, never all zeros (an invalid id). */
function randomHex(bytes: number): string {
  for (;;) {
    if (at + bytes > POOL.length) {
      randomFillSync(POOL);
      at = 0;
    }
    const start = at;
    at += bytes;
    for (let i = start; i < at; i++) if (POOL[i] !== 0) return POOL.toString('hex', start, at);
  }
}

/** An IdGenerator for the OpenTelemetry SDK, and the proxy's own. */
export const traceIds = {
  generateTraceId: (): string => randomHex(16),
  generateSpanId: (): string => randomHex(8),
};
