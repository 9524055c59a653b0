import { get, type RawHeaders } from '../pipeline/headers.ts';

// The trace id a request carries, for the access log: from W3C Trace Context
// (`traceparent`), else B3 (`b3` single header, or `x-b3-traceid`). Only read, never
// made or changed here: making spans and propagating them is the tracer's work.

const HEX = /^[0-9a-f]+$/;
const ZEROS = /^0+$/;

/** The trace id of a `traceparent` value (version-traceid-parentid-flags), or undefined when it is not a valid one. */
export function traceparentTraceId(value: string): string | undefined {
  // Version 00 is exactly 55 characters; later versions may append fields after a dash.
  if (value.length < 55 || (value.length > 55 && value[55] !== '-')) return undefined;
  const version = value.slice(0, 2);
  if (value[2] !== '-' || value[35] !== '-' || value[52] !== '-' || !HEX.test(version) || version === 'ff') return undefined;
  if (version === '00' && value.length !== 55) return undefined;
  const traceId = value.slice(3, 35);
  const parentId = value.slice(36, 52);
  if (!HEX.test(traceId) || !HEX.test(parentId) || !HEX.test(value.slice(53, 55))) return undefined;
  if (ZEROS.test(traceId) || ZEROS.test(parentId)) return undefined;
  return traceId;
}

/** A B3 trace id: 16 or 32 lower-case hex digits, not all zero. */
export function b3TraceId(value: string): string | undefined {
  const id = value.toLowerCase();
  return (id.length === 16 || id.length === 32) && HEX.test(id) && !ZEROS.test(id) ? id : undefined;
}

/** The trace id of a request's headers, when it carries a valid one. */
export function traceIdOf(headers: RawHeaders): string | undefined {
  const traceparent = get(headers, 'traceparent');
  if (traceparent !== undefined) return traceparentTraceId(traceparent.trim());
  const single = get(headers, 'b3');
  if (single !== undefined) return b3TraceId(single.trim().split('-', 1)[0]!);
  const multi = get(headers, 'x-b3-traceid');
  return multi === undefined ? undefined : b3TraceId(multi.trim());
}
