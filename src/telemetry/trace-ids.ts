import { randomFillSync } from 'node:crypto';

// Trace and span ids for the proxy: random bytes drawn 4 KiB at a time and written as hex
// once per draw; an id is a substring of that hex. The SDK's RandomIdGenerator calls
// Math.random per byte and took about 0.7 µs for a trace and a span id; a Buffer's hex
// per id took 1 700 instructions for the two (callgrind: the call into Node's binding, the
// string it makes); a substring of the pool is a pointer and two numbers. Every new trace
// that is not sampled still needs both (tracing.ts).

const BYTES = Buffer.allocUnsafe(4096);
let pool = '';
let at = 0;
/** The all-zero ids, which W3C Trace Context and B3 call invalid. */
export const ZERO_TRACE_ID = '0'.repeat(32);
export const ZERO_SPAN_ID = '0'.repeat(16);

/** As many random lower-case hex digits as `zeros` has, never `zeros` itself (an invalid id). */
function randomHex(zeros: string): string {
  const chars = zeros.length;
  for (;;) {
    if (at + chars > pool.length) {
      randomFillSync(BYTES);
      pool = BYTES.toString('hex');
      at = 0;
    }
    const start = at;
    at += chars;
    if (!pool.startsWith(zeros, start)) return pool.slice(start, at);
  }
}

/** An IdGenerator for the OpenTelemetry SDK, and the proxy's own. */
export const traceIds = {
  generateTraceId: (): string => randomHex(ZERO_TRACE_ID),
  generateSpanId: (): string => randomHex(ZERO_SPAN_ID),
};
