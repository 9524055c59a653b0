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

/**
 * `s` as a sequential string of its own, for code outside meshlet that reads strings a
 * character at a time. A slice of a parsed head (13 characters or more) and a
 * concatenation are other kinds of V8 string than a literal or a copy, and a library
 * loop such as the OTLP protobuf writer's `str.charCodeAt(i)`, once it has seen more
 * than four kinds, looks every character up through V8's megamorphic cache: callgrind
 * counted about 120 000 instructions per exported span in those two loops (the writer
 * and its size estimate) when spans carried header values as the parser made them.
 * Shorter strings are never slices or concatenations, and are returned as they are.
 */
export function flatString(s: string): string {
  // A join of two parts builds a new flat string; a join that has only one non-empty part returns it unchanged.
  return lengthOf(s) < 13 ? s : [s.slice(0, 1), s.slice(1)].join('');
}
