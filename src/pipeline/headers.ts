// Header lists as Node's rawHeaders: a flat [name, value, name, value, ...] array that
// keeps the order, duplicates and the case of names as they arrived. Case is kept end to
// end (a known complaint about both anchors): HTTP/1.1 apps that match header names
// case-sensitively keep working through the mesh.
export type RawHeaders = string[];

/** The first value of `name` (lower case). */
export function get(headers: RawHeaders, name: string): string | undefined {
  for (let i = 0; i < headers.length; i += 2) {
    const n = headers[i]!;
    if (n.length === name.length && n.toLowerCase() === name) return headers[i + 1];
  }
  return undefined;
}
