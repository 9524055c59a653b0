import { get, type RawHeaders } from '../pipeline/headers.ts';

/**
 * How long before retry number `retry` (1 for the first): exponential with full jitter,
 * a random wait in [0, min(max, base × 2^(retry-1))), as Envoy does (base 25 ms, max
 * 250 ms by default): retries of many clients spread out instead of arriving together.
 */
export function backoffMs(retry: number, baseMs: number, maxMs: number, random: number): number {
  return Math.floor(random * Math.min(maxMs, baseMs * 2 ** (retry - 1)));
}

/** Retry-After (RFC 9110 10.2.3) in milliseconds: delay-seconds or an HTTP-date; undefined when absent or unreadable. */
export function retryAfterMs(headers: RawHeaders, nowMs: number): number | undefined {
  const value = get(headers, 'retry-after')?.trim();
  if (value === undefined || value === '') return undefined;
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - nowMs);
}
