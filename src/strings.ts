// Reading a string's characters on the request path. Header names and values reach the
// same functions in several of V8's string representations: sequential, sliced (a
// substring of 13 characters or more, as the HTTP/1.1 parser makes), cons (concatenated),
// thin, internalized (literals), external. A property load such as `s.length` or
// `s.charCodeAt` keeps one entry per representation it has seen; at the fifth it turns
// megamorphic for good (node --log-ic showed it for isName, endToEnd and the serializer),
// and every load is a hash-table probe: callgrind counted 3 700 to 10 400 instructions per
// request and sidecar in megamorphic named loads (bench/instructions.ts), 2 100 to 2 200
// with these helpers, through which V8 checks "a string" rather than a map.

const charCodeAtOfString = String.prototype.charCodeAt;

/** `s.charCodeAt(i)`, whatever the string's representation (NaN past the end). */
export function codeAt(s: string, i: number): number {
  return charCodeAtOfString.call(s, i);
}

/** `s.length`, whatever the string's representation. */
export function lengthOf(s: string): number {
  // A concatenation's type feedback is "string" for every representation, so its result is typed a string and its length needs no map check.
  return ('' + s).length;
}
