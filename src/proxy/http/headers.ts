import type { RawHeaders } from '../../pipeline/headers.ts';

import { isName } from '../../pipeline/headers.ts';
import { codeAt, lengthOf } from '../../strings.ts';

export { get, isName } from '../../pipeline/headers.ts';
export type { RawHeaders } from '../../pipeline/headers.ts';

/**
 * Connection-specific headers (RFC 9110 7.6.1, RFC 9113 8.2.2): never forwarded. Trailer
 * is end to end (RFC 9110 6.6.2) and passes.
 */
export const HOP_BY_HOP: ReadonlySet<string> = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'transfer-encoding', 'upgrade', 'http2-settings']);

/** Headers only HTTP/2 carries as pseudo-headers; HTTP/1.1 names them Host. */
export const HOST = 'host';

/** Between sidecars only (docs/proxy.md): removed before anything reaches an app or a client, and never taken from one. */
export const MESH_PROTOCOL_HEADER = 'meshlet-protocol';
export const MESH_CASE_HEADER = 'meshlet-header-case';
export const MESH_METADATA_HEADER = 'meshlet-peer-metadata';
export const MESH_HEADERS = [MESH_PROTOCOL_HEADER, MESH_CASE_HEADER, MESH_METADATA_HEADER] as const;
const MESH_HOP: ReadonlySet<string> = new Set(MESH_HEADERS);
export const isMeshHop = (lowerName: string): boolean => MESH_HOP.has(lowerName);

/** An HTTP/2 list (names in lower case) without the mesh's own headers: the list itself when it has none, as nearly every one does. */
export function withoutMeshHeaders(headers: RawHeaders): RawHeaders {
  for (let i = 0; i < headers.length; i += 2) if (isMeshHop(headers[i]!)) return without(headers, isMeshHop);
  return headers;
}

export function without(headers: RawHeaders, drop: (lowerName: string) => boolean): RawHeaders {
  const out: RawHeaders = [];
  for (let i = 0; i < headers.length; i += 2) {
    if (!drop(headers[i]!.toLowerCase())) out.push(headers[i]!, headers[i + 1]!);
  }
  return out;
}

/** The names (lower case) to drop: the hop-by-hop ones and these, found by length first. */
export class DropNames {
  /** byLength[n]: the names to drop that have n characters. */
  readonly #byLength: Array<string[] | undefined> = [];

  constructor(names: Iterable<string> = []) {
    for (const name of new Set([...HOP_BY_HOP, ...names])) (this.#byLength[name.length] ??= []).push(name);
  }

  /** Whether `name`, in any case, is one to drop; no string is made. */
  matches(name: string): boolean {
    const candidates = this.#byLength[lengthOf(name)];
    if (candidates === undefined) return false;
    for (let i = 0; i < candidates.length; i++) if (isName(name, candidates[i]!)) return true;
    return false;
  }
}

/** The hop-by-hop names alone. */
export const HOP_BY_HOP_ONLY = new DropNames();

/**
 * The end-to-end headers: hop-by-hop ones go, and so does every header that the
 * Connection header names, and any pseudo-header. `te: trailers` is the one TE value
 * that means something end to end (gRPC needs it) and is kept. `drop` removes more in the
 * same pass. This runs once per request and response, so no name is lower-cased unless a
 * Connection header names others, and the list is walked once unless one does (most
 * Connection headers say only `keep-alive` or `close`). `out` may be `headers` itself,
 * filtered in place, when the caller owns the list (a head its parser just made).
 */
export function endToEnd(headers: RawHeaders, drop: DropNames = HOP_BY_HOP_ONLY, out: RawHeaders = []): RawHeaders {
  const n = headers.length;
  let named: Set<string> | undefined;
  let j = 0;
  for (let i = 0; i < n; i += 2) {
    const name = headers[i]!;
    let value = headers[i + 1]!;
    if (codeAt(name, 0) === 58 /* : */) continue;
    if (drop.matches(name)) {
      if (isName(name, 'connection')) named = connectionNamed(value, named);
      if (!isName(name, 'te') || !listsTrailers(value)) continue;
      value = 'trailers';
    }
    out[j++] = name;
    out[j++] = value;
  }
  // A header that Connection names may have come before it: removed from what was kept.
  if (named !== undefined) j = withoutNamed(out, j, named, drop);
  // pop(), not `out.length = j`: the length store showed in callgrind as a call into V8's runtime (Accessors::ArrayLengthSetter).
  while (out.length > j) out.pop();
  return out;
}

/** A reader's marks (endToEndMarked) that do not cover every field to drop: one past the 30th, or one a Connection header names. */
export const MARKS_INCOMPLETE = 1 << 30;

/**
 * endToEnd for a list whose connection-level fields its reader marked as it read them
 * (bit i: headers[2i]; see the HTTP/1.1 parser's Head.marks): the marked ones go, but a
 * `te` that lists `trailers`, and nothing else is looked at. When the marks say they are
 * incomplete (MARKS_INCOMPLETE), `drop` decides by name, and must name what the marks
 * would have. Filters `headers` in place.
 */
export function endToEndMarked(headers: RawHeaders, marks: number, drop: DropNames): RawHeaders {
  if (marks === 0) return headers;
  if ((marks & MARKS_INCOMPLETE) !== 0) return endToEnd(headers, drop, headers);
  const n = headers.length;
  let j = 0;
  for (let i = 0; i < n; i += 2) {
    if (((marks >>> (i >>> 1)) & 1) !== 0) {
      // Of the marked names only `te` has two characters.
      if (lengthOf(headers[i]!) !== 2 || !listsTrailers(headers[i + 1]!)) continue;
      headers[j] = headers[i]!;
      headers[j + 1] = 'trailers';
    } else if (j !== i) {
      headers[j] = headers[i]!;
      headers[j + 1] = headers[i + 1]!;
    }
    j += 2;
  }
  while (headers.length > j) headers.pop();
  return headers;
}

function listsTrailers(te: string): boolean {
  return te.split(',').some((t) => t.trim().toLowerCase() === 'trailers');
}

/** The header names (lower case) a Connection value lists, added to `named`; `keep-alive` and `close` name no header but a hop-by-hop one. */
function connectionNamed(value: string, named: Set<string> | undefined): Set<string> | undefined {
  if (value.length <= 10) {
    const lower = value.toLowerCase();
    if (lower === 'keep-alive' || lower === 'close') return named;
  }
  for (const token of value.split(',')) {
    const name = token.trim().toLowerCase();
    if (name) (named ??= new Set()).add(name);
  }
  return named;
}

/** Removes from out[0, j) the headers whose names are in `named` (but not `te: trailers`, which `drop` kept); returns the new end. */
function withoutNamed(out: RawHeaders, j: number, named: Set<string>, drop: DropNames): number {
  let k = 0;
  for (let i = 0; i < j; i += 2) {
    const name = out[i]!;
    if (!drop.matches(name) && named.has(name.toLowerCase())) continue;
    out[k++] = name;
    out[k++] = out[i + 1]!;
  }
  return k;
}

/** HTTP/2 header object (lower-case names; repeated names as arrays) from a raw list. */
export function toH2(headers: RawHeaders, pseudo: Record<string, string>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = { ...pseudo };
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!.toLowerCase();
    if (name === HOST) continue; // carried as :authority
    const value = headers[i + 1]!;
    const prev = out[name];
    out[name] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev, value];
  }
  return out;
}

/** A raw list without pseudo-headers from what node:http2 hands over (its rawHeaders). */
export function fromH2Raw(raw: RawHeaders): RawHeaders {
  return without(raw, (name) => name.startsWith(':'));
}

/**
 * The names whose case differs from lower case, so a sidecar that carries the request
 * over HTTP/2 (which lower-cases every name) can tell the other side how to write them.
 * `first` is one more name to consider ahead of the list (an HTTP/1.1 request's Host).
 */
export function caseOf(headers: RawHeaders, first?: string): string | undefined {
  let names: Set<string> | undefined;
  const consider = (name: string) => {
    if (name !== name.toLowerCase() && !isMeshHop(name.toLowerCase())) (names ??= new Set()).add(name);
  };
  if (first !== undefined) consider(first);
  for (let i = 0; i < headers.length; i += 2) consider(headers[i]!);
  return names ? [...names].join(',') : undefined;
}

/** Writes the names of `headers` in the case `caseList` (from caseOf) gives, leaving out those `drop` names (lower case). */
export function restoreCase(headers: RawHeaders, caseList: string | undefined, drop?: (lowerName: string) => boolean): RawHeaders {
  if (!caseList && !drop) return headers;
  const byLower = caseList ? new Map(caseList.split(',').map((n) => [n.trim().toLowerCase(), n.trim()] as const)) : undefined;
  const out: RawHeaders = [];
  for (let i = 0; i < headers.length; i += 2) {
    const lower = headers[i]!.toLowerCase();
    if (drop?.(lower)) continue;
    out.push(byLower?.get(lower) ?? headers[i]!, headers[i + 1]!);
  }
  return out;
}
