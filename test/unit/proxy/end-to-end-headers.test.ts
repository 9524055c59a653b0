import fc from 'fast-check';
import t from 'tap';
import { DropNames, endToEnd } from '../../../src/proxy/http/headers.ts';
import { agrees } from '../../helpers/property.ts';

// endToEnd walks a list once and goes back only when a Connection header names other
// headers; whatever the order, it must keep exactly what RFC 9110 7.6.1 keeps. The
// reference below reads the rule as written: first every name Connection lists, then one
// filter.

const HOP = ['connection', 'keep-alive', 'proxy-connection', 'te', 'transfer-encoding', 'upgrade', 'http2-settings'];

function reference(headers: string[], extraDrop: string[]): string[] {
  const drop = new Set([...HOP, ...extraDrop]);
  const named = new Set<string>();
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i]!.toLowerCase() !== 'connection') continue;
    const value = headers[i + 1]!.toLowerCase();
    if (value === 'keep-alive' || value === 'close') continue;
    for (const token of value.split(',')) if (token.trim()) named.add(token.trim());
  }
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    const lower = name.toLowerCase();
    const value = headers[i + 1]!;
    if (name.startsWith(':')) continue;
    if (drop.has(lower)) {
      if (lower === 'te' && value.split(',').some((v) => v.trim().toLowerCase() === 'trailers')) out.push(name, 'trailers');
      continue;
    }
    if (!named.has(lower)) out.push(name, value);
  }
  return out;
}

const name = fc.constantFrom('Connection', 'connection', 'Keep-Alive', 'TE', 'te', 'Upgrade', 'X-A', 'x-a', 'X-B', 'Host', 'host', ':path', 'Accept', 'Transfer-Encoding');
const value = fc.constantFrom('keep-alive', 'close', 'Close', 'x-a', 'X-A, x-b', 'keep-alive, X-B', 'trailers', 'gzip, trailers', 'host', 'te', 'upgrade', '1', ' , ');
const list = fc.array(fc.tuple(name, value), { maxLength: 10 }).map((pairs) => pairs.flat());

t.test('endToEnd keeps what the rule keeps, in order, whatever comes first, into a new list or in place', async (t) => {
  fc.assert(
    fc.property(list, fc.boolean(), (headers, dropHost) => {
      const extra = dropHost ? ['host'] : [];
      const drop = new DropNames(extra);
      const want = reference(headers, extra);
      const fresh = endToEnd(headers, drop);
      const inPlace = [...headers];
      const same = endToEnd(inPlace, drop, inPlace);
      return agrees(t, { fresh, same, inPlace: same === inPlace }, { fresh: want, same: want, inPlace: true }, JSON.stringify(headers));
    }),
    { numRuns: 2000 },
  );
  t.pass('2 000 lists agree with the reference');
});

t.test('a header Connection names is removed also when it comes before the Connection header', async (t) => {
  t.same(endToEnd(['X-Hop', '1', 'X-Keep', '2', 'Connection', 'x-hop']), ['X-Keep', '2']);
  const own = ['X-Hop', '1', 'Connection', 'X-Hop, keep-alive', 'TE', 'trailers', 'x-hop', '3'];
  t.equal(endToEnd(own, undefined, own), own, 'in place');
  t.same(own, ['TE', 'trailers']);
});
