// Character classes of HTTP/1.1 (RFC 9110, RFC 9112) as tables indexed by char code, for
// the parser and the serializer alike. Both work on latin1 strings, where every char code
// is a byte; a code above 0xff indexes past the end (undefined), which no test accepts.

/** tchar (RFC 9110 5.6.2). */
export const TCHAR = new Uint8Array(256);
/** field-vchar / SP / HTAB: HTAB, 0x20-0x7e, obs-text 0x80-0xff (no other CTL, no DEL). */
export const FIELD = new Uint8Array(256);
/** qdtext (RFC 9110 5.6.4). */
export const QDTEXT = new Uint8Array(256);
/** Characters of an authority (llhttp's set: unreserved, sub-delims, '%', ':', '[', ']'). */
export const AUTHORITY = new Uint8Array(256);
/** Hex digit values, -1 elsewhere. */
export const HEX = new Int8Array(256).fill(-1);
{
  const alnum = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
  for (const c of alnum + "!#$%&'*+-.^_`|~") TCHAR[c.charCodeAt(0)] = 1;
  for (const c of alnum + "-_.!~*'()%;:&=+$,[]") AUTHORITY[c.charCodeAt(0)] = 1;
  FIELD[9] = 1;
  for (let c = 0x20; c <= 0x7e; c++) FIELD[c] = 1;
  for (let c = 0x80; c <= 0xff; c++) FIELD[c] = 1;
  QDTEXT.set(FIELD);
  QDTEXT[0x22] = 0;
  QDTEXT[0x5c] = 0;
  for (let i = 0; i < 16; i++) {
    HEX['0123456789abcdef'.charCodeAt(i)] = i;
    HEX['0123456789ABCDEF'.charCodeAt(i)] = i;
  }
}

/** Whether `s` is a token: one or more tchar. */
export function isToken(s: string): boolean {
  return TOKEN.test(s);
}

// The serializer checks every name and value it writes, most of them short: a regular
// expression runs as V8's compiled matcher, where a loop of char loads re-reads each
// string's representation (sliced, cons, sequential) at every character and cost the
// serializer about twice as much per header.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
