import fc from 'fast-check';
import t from 'tap';
import { codeAt, flatString, lengthOf } from '../../src/strings.ts';

// The helpers must read every representation V8 gives a string the same as the string's
// own methods: flat, sliced, concatenated, internalized, and two-byte text.
const representations = (s: string): string[] => {
  const padded = `${'x'.repeat(20)}${s}${'y'.repeat(20)}`;
  const cons = s.slice(0, Math.floor(s.length / 2)) + s.slice(Math.floor(s.length / 2));
  const internalized = Object.keys({ [s]: 1 })[0]!;
  return [s, padded.slice(20, 20 + s.length), cons, internalized, Buffer.from(s, 'utf8').toString('utf8')];
};

t.test('codeAt and lengthOf read every representation of a string as its own methods do', async (t) => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 80 }), fc.nat(100), (s, i) =>
      representations(s).every((r) => lengthOf(r) === s.length && Object.is(codeAt(r, i), s.charCodeAt(i))),
    ),
  );
  t.equal(lengthOf(''), 0);
  t.ok(Number.isNaN(codeAt('ab', 2)), 'past the end is NaN, as charCodeAt');
  t.equal(codeAt('é', 0), 0xe9);
});

t.test('flatString gives back the same text, whatever the representation it is given', async (t) => {
  fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 80 }), (s) => representations(s).every((r) => flatString(r) === s)));
  t.equal(flatString(''), '');
  t.equal(flatString('a'), 'a');
  t.equal(flatString('x'.repeat(13)), 'x'.repeat(13));
});
