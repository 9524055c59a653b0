import { isName, type RawHeaders } from '../pipeline/headers.ts';
import { codeAt, lengthOf } from '../strings.ts';
import { ZERO_SPAN_ID, ZERO_TRACE_ID } from './trace-ids.ts';

// Reading a request's trace context without allocating: every request passes here when
// tracing is on, and most are not sampled, so the decision is taken from the header
// characters in place (charCodeAt, no slice, no regex, no object). Only a sampled request
// goes on to the OpenTelemetry propagators, which build a context. The rules are the
// propagators' own (W3C Trace Context level 1, B3 as @opentelemetry/propagator-b3 reads
// it: lower-case hex ids, 64-bit trace ids padded), so both agree on what is valid.

/** The trace header formats, as bits. */
export const W3C = 1;
export const B3_SINGLE = 2;
export const B3_MULTI = 4;

/** The sampling decision a parent carries. */
export const NOT_SAMPLED = 0;
export const SAMPLED = 1;
/** B3 without a sampling state (or `b3: 1`/`d` without ids): the receiver decides. */
export const DEFERRED = 2;

/** What a request's trace headers say; one object per layer, overwritten by each scan. */
export class TraceScan {
  /** The formats the request carries valid context in (bits: W3C, B3_SINGLE, B3_MULTI). */
  formats = 0;
  /** The format the parent is taken from (W3C first), 0 when there is none. */
  parent = 0;
  decision: number = DEFERRED;
  // Values are kept as their positions in the scanned list, never as strings: this object
  // lives as long as its layer, and storing a request's (young) strings in it took V8's
  // write barrier down its slow path, into the remembered set, every request.
  /** Where the parent's trace id is: in which value of the list, from which character, how long (16 or 32). */
  idAt = -1;
  idStart = 0;
  idLength = 0;
  /** Where the request's x-request-id value is (-1: none): what a new trace's sampling decision is keyed on (requestIdFraction). */
  requestIdAt = -1;

  /** Reads `headers`; returns whether a parent was found. */
  scan(headers: RawHeaders): boolean {
    this.formats = 0;
    this.parent = 0;
    this.decision = DEFERRED;
    this.requestIdAt = -1;
    // Positions of the values in `headers`, -1 when absent.
    let traceparentAt = -1;
    let b3At = -1;
    let b3TraceIdAt = -1;
    let b3SpanIdAt = -1;
    let b3Sampled: string | undefined;
    let b3Flags: string | undefined;
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!;
      // Most names are not trace headers: their length rules them out before any compare,
      // and where names of one length differ (user-agent and tracestate, x-request-id and
      // x-b3-traceid), one character does before a whole name is compared. tracestate and
      // x-b3-parentspanid carry no parent by themselves: they are not looked for.
      switch (lengthOf(name)) {
        case 2:
          if (b3At === -1 && isName(name, 'b3')) b3At = i + 1;
          break;
        case 10:
          if ((codeAt(name, 0) | 0x20) === 120 /* x */ && b3Flags === undefined && isName(name, 'x-b3-flags')) b3Flags = headers[i + 1];
          break;
        case 11: {
          const c = codeAt(name, 0) | 0x20;
          if (c === 116 /* t */) {
            if (traceparentAt === -1 && isName(name, 'traceparent')) traceparentAt = i + 1;
          } else if (c === 120 /* x */ && b3SpanIdAt === -1 && isName(name, 'x-b3-spanid')) b3SpanIdAt = i + 1;
          break;
        }
        case 12: {
          const c = codeAt(name, 2) | 0x20;
          if (c === 114 /* x-r… */) {
            // The mesh writes it so (HTTP/1.1): one comparison of the whole name, not one per character.
            if (this.requestIdAt === -1 && (name === 'X-Request-Id' || isName(name, 'x-request-id'))) this.requestIdAt = i + 1;
          } else if (c === 98 /* x-b… */) {
            if (b3TraceIdAt === -1 && isName(name, 'x-b3-traceid')) b3TraceIdAt = i + 1;
            else if (b3Sampled === undefined && isName(name, 'x-b3-sampled')) b3Sampled = headers[i + 1];
          }
          break;
        }
      }
    }
    if (traceparentAt !== -1) {
      const traceparent = headers[traceparentAt]!;
      if (validTraceparent(traceparent)) {
        this.formats |= W3C;
        this.#take(W3C, traceparentAt, 3, 32, (hexDigit(traceparent, 54) & 1) === 1 ? SAMPLED : NOT_SAMPLED);
      }
    }
    if (b3At !== -1) this.#single(headers[b3At]!, b3At);
    if (b3TraceIdAt !== -1 && b3SpanIdAt !== -1) {
      const b3TraceId = headers[b3TraceIdAt]!;
      const b3SpanId = headers[b3SpanIdAt]!;
      if (validB3Id(b3TraceId, 0, b3TraceId.length) && validB3Id(b3SpanId, 0, b3SpanId.length) && b3SpanId.length === 16) {
        this.formats |= B3_MULTI;
        const decision = b3Flags === '1' || b3Sampled === '1' || b3Sampled === 'true' ? SAMPLED : b3Sampled === '0' || b3Sampled === 'false' ? NOT_SAMPLED : DEFERRED;
        this.#take(B3_MULTI, b3TraceIdAt, 0, b3TraceId.length, decision);
      }
    }
    return this.parent !== 0;
  }

  /** `b3: {traceid}-{spanid}[-{sampling}[-{parentspanid}]]`, or a bare sampling state; `value` is the list's at `at`. */
  #single(value: string, at: number): void {
    if (value.length === 1) {
      // A decision without ids: `0` denies, `1` and `d` ask for a trace, which starts here.
      const c = value.charCodeAt(0);
      if (c === 48 /* 0 */ && this.parent === 0) {
        this.formats |= B3_SINGLE;
        this.parent = B3_SINGLE;
        this.decision = NOT_SAMPLED;
        this.idLength = 0;
      }
      return;
    }
    const idLength = value.length >= 49 && value.charCodeAt(32) === 45 ? 32 : 16;
    if (value.length < idLength + 17 || value.charCodeAt(idLength) !== 45 /* - */) return;
    if (!validB3Id(value, 0, idLength) || !validB3Id(value, idLength + 1, 16)) return;
    const rest = idLength + 17;
    let decision = DEFERRED;
    if (value.length > rest) {
      if (value.charCodeAt(rest) !== 45 || value.length < rest + 2) return;
      const state = value.charCodeAt(rest + 1);
      if (state === 49 /* 1 */ || state === 100 /* d */) decision = SAMPLED;
      else if (state === 48 /* 0 */) decision = NOT_SAMPLED;
      else return;
    }
    this.formats |= B3_SINGLE;
    this.#take(B3_SINGLE, at, 0, idLength, decision);
  }

  #take(format: number, at: number, start: number, length: number, decision: number): void {
    if (this.parent !== 0) return;
    this.parent = format;
    this.decision = decision;
    this.idAt = at;
    this.idStart = start;
    this.idLength = length;
  }
}

/**
 * A number in [0, 1) that a request id stands for, the same in every process: for a UUID
 * (meshlet's and Envoy's request ids) its last eight hex digits, which are random; for any
 * other id, or a UUID-shaped one that is not hex there, a 32-bit FNV-1a hash of the whole
 * id (an id's own digits need not be uniform: a counter's are not).
 */
export function requestIdFraction(id: string): number {
  const n = lengthOf(id);
  if (n === 36 && codeAt(id, 23) === 45 /* - */) {
    // In 32-bit integers (the last digit's shift wraps; >>> 0 reads it unsigned), a table
    // look-up a digit: every request of a sidecar tracing at a ratio between 0 and 1 comes
    // here. Compared in three ranges and summed as doubles, the digits cost about 80
    // instructions more a request and sidecar (callgrind, tracing at 1 %).
    let x = 0;
    let i = n - 8;
    for (; i < n; i++) {
      const c = codeAt(id, i);
      const d = c < 128 ? HEX_VALUE[c]! : -1;
      if (d < 0) break;
      x = (x << 4) | d;
    }
    if (i === n) return (x >>> 0) / 0x100000000;
  }
  let h = 0x811c9dc5;
  for (let i = 0; i < n; i++) h = Math.imul(h ^ codeAt(id, i), 0x01000193);
  return (h >>> 0) / 0x100000000;
}

/** Each hex digit's value by character code, either case; -1 for every other character. */
const HEX_VALUE = ((): Int8Array => {
  const table = new Int8Array(128).fill(-1);
  for (let d = 0; d < 16; d++) {
    const digit = d.toString(16);
    table[digit.charCodeAt(0)] = d;
    table[digit.toUpperCase().charCodeAt(0)] = d;
  }
  return table;
})();

/** 0–15 for a lower-case hex digit at `i`, -1 otherwise. */
function hexDigit(s: string, i: number): number {
  const c = codeAt(s, i);
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

/** `length` lower-case hex digits from `start`, not all zero. */
function hexRun(s: string, start: number, length: number): boolean {
  let nonZero = false;
  for (let i = start; i < start + length; i++) {
    const d = hexDigit(s, i);
    if (d < 0) return false;
    if (d !== 0) nonZero = true;
  }
  return nonZero;
}

/** A B3 id: 16 or 32 lower-case hex digits, not all zero. */
function validB3Id(s: string, start: number, length: number): boolean {
  return (length === 16 || length === 32) && s.length >= start + length && hexRun(s, start, length);
}

/**
 * W3C `version-traceid-parentid-flags` in lower-case hex: four runs of hex digits between
 * dashes, the runs' lengths fixed by where the dashes are (validTraceparent). V8's matcher
 * runs `[0-9a-f]+` as one tight loop but a counted `{32}` with a counter per character:
 * callgrind counted the counted form at 1 700 instructions a request in the inbound
 * sidecar and this one at 600 (a charCode loop over the value: 2 800). Every request
 * between sidecars carries a traceparent when tracing is on.
 */
const TRACEPARENT = /^[0-9a-f][0-9a-f]-[0-9a-f]+-[0-9a-f]+-[0-9a-f][0-9a-f](?:-|$)/;
const startsWithOfString = String.prototype.startsWith;

/** A valid traceparent: ids not all zeros, version not ff; version 00 exactly 55 characters, later ones may append `-...`. */
export function validTraceparent(v: string): boolean {
  // Dashes are only where the expression put them: at 35 and 52 they make the ids 32 and 16 digits long.
  if (!TRACEPARENT.test(v) || codeAt(v, 35) !== 45 || codeAt(v, 52) !== 45) return false;
  // An id can only be all zeros if it starts with one (one in sixteen): the comparison, a builtin call, is for those.
  if (codeAt(v, 3) === 48 && startsWithOfString.call(v, ZERO_TRACE_ID, 3)) return false;
  if (codeAt(v, 36) === 48 && startsWithOfString.call(v, ZERO_SPAN_ID, 36)) return false;
  const v0 = codeAt(v, 0);
  const v1 = codeAt(v, 1);
  if (v0 === 102 && v1 === 102) return false;
  return lengthOf(v) === 55 || v0 !== 48 || v1 !== 48;
}

/**
 * The trace id ratio test of @opentelemetry/sdk-trace-base's TraceIdRatioBasedSampler
 * (the id's 32-bit words XORed, compared with ratio × 2³²−1), on the id where it lies in
 * the header, so a hop that samples by ratio without a parent-based rule agrees with the
 * OpenTelemetry SDKs of the same language on the same trace.
 */
export function ratioAccepts(value: string, start: number, length: number, ratio: number): boolean {
  if (ratio >= 1) return true;
  if (ratio <= 0) return false;
  let acc = 0;
  // A 64-bit B3 id is the low half of its 128-bit form, whose high half is zero.
  for (let word = start; word < start + length; word += 8) {
    let n = 0;
    for (let i = word; i < word + 8; i++) n = n * 16 + hexDigit(value, i);
    acc ^= n;
  }
  return acc >>> 0 < Math.floor(ratio * 0xffffffff);
}

/** The header names of every trace format, lower case: removed before a sampled request's own are written. */
export const TRACE_HEADERS: readonly string[] = ['traceparent', 'tracestate', 'b3', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-flags'];

/** Removes every trace header from `headers`, in place. */
export function removeTraceHeaders(headers: RawHeaders): void {
  let w = 0;
  for (let r = 0; r < headers.length; r += 2) {
    const name = headers[r]!;
    if (TRACE_HEADERS.some((h) => isName(name, h))) continue;
    headers[w] = name;
    headers[w + 1] = headers[r + 1]!;
    w += 2;
  }
  if (w !== headers.length) headers.length = w;
}
