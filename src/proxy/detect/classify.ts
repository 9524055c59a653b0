import http from 'node:http';
import { TLS_HANDSHAKE_RECORD } from './first-bytes.ts';

/** What the first bytes of a connection say it carries. */
export type Sniffed = 'tls' | 'h2' | 'http1' | 'tcp';

/** The HTTP/2 connection preface a prior-knowledge client sends first (RFC 9113 3.4). */
export const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

// Only the methods Node's parser (llhttp) accepts: anything else would be refused by the
// HTTP server, so it is better carried as opaque bytes.
const METHODS = http.METHODS.filter((m) => m !== 'PRI');
const LONGEST_METHOD = Math.max(...METHODS.map((m) => m.length));

// After "METHOD SP": the target, SP, HTTP/1.x and the line's end (RFC 9112 3). The
// target is bounded so nothing binary is read for long.
const AFTER_METHOD = /^[^\s]{1,8192} HTTP\/1\.[01]\r?\n/;
const AFTER_METHOD_PREFIX = /^[^\s]{0,8192}( (H(T(T(P(\/(1(\.([01]\r?)?)?)?)?)?)?)?)?)?$/;
// A target longer than that bound is still HTTP (binary has whitespace bytes long
// before): the HTTP server answers it, 431 when the head is over the limit. Carried as
// opaque bytes instead, it would skip every check of the HTTP path.
const LONG_TARGET = /^[^\s]{8193}/;

/** Decides from `bytes`, or undefined when they are a prefix of something that needs more. */
export function classify(bytes: Buffer): Sniffed | undefined {
  if (bytes[0] === TLS_HANDSHAKE_RECORD) return 'tls';
  const n = Math.min(bytes.length, H2_PREFACE.length);
  const preface = bytes.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
  if (preface && n === H2_PREFACE.length) return 'h2';
  const head = bytes.subarray(0, LONGEST_METHOD + 8300).toString('latin1');
  const space = head.indexOf(' ');
  if (space === -1) {
    // Still inside the method name (or the preface): wait while it can become one.
    return preface || METHODS.some((m) => m.startsWith(head)) ? undefined : 'tcp';
  }
  if (!METHODS.includes(head.slice(0, space))) return preface ? undefined : 'tcp';
  const rest = head.slice(space + 1);
  if (AFTER_METHOD.test(rest) || LONG_TARGET.test(rest)) return 'http1';
  return AFTER_METHOD_PREFIX.test(rest) ? undefined : 'tcp';
}

/** For peekFirstBytes: whether the bytes so far decide. */
export const decided = (bytes: Buffer): boolean => classify(bytes) !== undefined;

/**
 * The verdict once no more bytes will come (the client stopped or the timeout passed): a
 * request line cut short after "METHOD /" is still HTTP (the HTTP server then answers
 * 400 or 408), so is most of the HTTP/2 preface; anything shorter is opaque.
 */
export function classifyFinal(bytes: Buffer): Sniffed {
  const sniffed = classify(bytes);
  if (sniffed !== undefined) return sniffed;
  const head = bytes.toString('latin1');
  if (head.startsWith('PRI * ')) return 'h2';
  return /^[A-Z-]+ \S/.test(head) ? 'http1' : 'tcp';
}
