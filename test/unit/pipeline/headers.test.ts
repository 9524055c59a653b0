import fc from 'fast-check';
import t from 'tap';
import { get, isName } from '../../../src/pipeline/headers.ts';

// Field names are tokens (RFC 9110 5.6.2); any string is tried too, so that no other
// character can pass for a letter of another case.
const tchar = fc.constantFrom(...'!#$%&\'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ');
const token = fc.string({ unit: tchar, minLength: 1, maxLength: 20 });

t.test('isName agrees with lower-casing, for tokens and for any text', async (t) => {
  fc.assert(
    fc.property(token, token, (name, other) => {
      const lower = other.toLowerCase();
      return isName(name, lower) === (name.toLowerCase() === lower) && isName(name, name.toLowerCase());
    }),
  );
  fc.assert(fc.property(fc.string(), fc.string(), (name, other) => isName(name, other.toLowerCase()) === (asciiLower(name) === other.toLowerCase())));
  t.equal(isName('Content-Length', 'content-length'), true);
  t.equal(isName('Content-Lengti', 'content-length'), false);
  t.equal(isName('A^B', 'a~b'), false, 'only letters fold: ^ is not ~');
  t.equal(isName('HOST\r', 'host-'), false, 'CR is not a dash');
});

t.test('get finds the first value of a name in any case', async (t) => {
  t.equal(get(['Accept', '*/*', 'X-Id', '1', 'x-id', '2'], 'x-id'), '1');
  t.equal(get(['Accept', '*/*'], 'x-id'), undefined);
});

/** Lower-cases ASCII letters only, as isName compares. */
function asciiLower(s: string): string {
  return s.replace(/[A-Z]/g, (c) => c.toLowerCase());
}
