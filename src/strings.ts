// Reading a string's characters on the request path. Header names and values reach the
// same functions in several of V8's string representations: sequential, sliced (a
// substring of 13 characters or more, as the HTTP/1.1 parser makes), cons (concatenated),
// thin, internalized (literals), external. A property load such as `s.length` or
// `s.charCodeAt` keeps one entry per representation it has seen; after four it turns
// megamorphic for good, and every load is a hash-table probe (callgrind counted 4 000 to
// 13 000 instructions per request and sidecar in megamorphic loads, header names and
// values among them: bench/instructions.ts). Through these helpers V8 checks "a string",
// not a map, and reads every representation inline.

const charCodeAtOfString = String.prototype.charCodeAt;

/** `s.charCodeAt(i)`, whatever the string's representation (NaN past the end). */
export function codeAt(s: string, i: number): number {
  return charCodeAtOfString.call(s, i);
}

/** `s.length`, whatever the string's representation. */
export function lengthOf(s: string): number {
  // A concatenation's type feedback is "string" for every representation; the result is known to be a string, whose length is then read inline.
  return ('' + s).length;
}
