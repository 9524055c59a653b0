import type { WorkloadMetadata } from '../../pipeline/exchange.ts';

// The workload metadata travels in `meshlet-peer-metadata`; it never reaches an app: the
// receiving sidecar removes it.

/** base64url(JSON): one header value of visible ASCII whatever the labels hold. */
export function encodeMetadata(meta: WorkloadMetadata): string {
  return Buffer.from(JSON.stringify(meta)).toString('base64url');
}

// A sidecar talks to few peers, each sending the same value on every request: decoded
// once each. Bounded, so a peer that varies its value cannot grow the cache.
const decoded = new Map<string, WorkloadMetadata | undefined>();
const DECODED_MAX = 256;

/** Undefined for anything malformed: a peer's bad metadata costs its labels, not the request. */
export function decodeMetadata(value: string | undefined): WorkloadMetadata | undefined {
  if (!value || value.length > 4096) return undefined;
  if (decoded.has(value)) return decoded.get(value);
  const meta = parse(value);
  if (decoded.size >= DECODED_MAX) decoded.clear();
  decoded.set(value, meta);
  return meta;
}

function parse(value: string): WorkloadMetadata | undefined {
  try {
    const parsed = JSON.parse(Buffer.from(value, 'base64url').toString('utf8')) as Record<string, unknown>;
    const field = (k: string) => (typeof parsed[k] === 'string' ? (parsed[k] as string).slice(0, 253) : '');
    return Object.freeze({ name: field('name'), namespace: field('namespace'), app: field('app'), version: field('version') });
  } catch {
    return undefined;
  }
}
