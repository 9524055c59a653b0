// Header lists as Node's rawHeaders: a flat [name, value, name, value, ...] array that
// keeps the order, duplicates and the case of names as they arrived. Case is kept end to
// end (a known complaint about both anchors): HTTP/1.1 apps that match header names
// case-sensitively keep working through the mesh.
import { codeAt, lengthOf } from '../strings.ts';

export type RawHeaders = string[];

/** The first value of `name` (lower case). */
export function get(headers: RawHeaders, name: string): string | undefined {
  for (let i = 0; i < headers.length; i += 2) {
    if (isName(headers[i]!, name)) return headers[i + 1];
  }
  return undefined;
}

/**
 * Whether `name` is `lower` (a lower-case field name) in any case. Compared in place:
 * the request path looks names up several times per message, and lower-casing each one
 * made a string every time. Names come in every string representation (src/strings.ts).
 */
export function isName(name: string, lower: string): boolean {
  const n = lower.length;
  if (lengthOf(name) !== n) return false;
  // A name written in lower case (most clients and HTTP/2) is equal as a whole: V8 compares
  // the two strings' bytes in one builtin, where the loop below reads each character
  // through a dispatch on the string's representation (about 30 instructions each).
  if (name === lower) return true;
  for (let i = 0; i < n; i++) {
    const c = codeAt(name, i);
    if ((c >= 65 && c <= 90 ? c + 32 : c) !== lower.charCodeAt(i)) return false;
  }
  return true;
}
