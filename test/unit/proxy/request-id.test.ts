import t from 'tap';
import { randomUuid } from '../../../src/proxy/http/request-id-layer.ts';

// x-request-id values: version 4 UUIDs as crypto.randomUUID writes them, drawn in batches;
// every id of several batches well-formed and none repeated.
t.test('request ids are distinct version 4 UUIDs in lower case, across batches', async (t) => {
  const seen = new Set<string>();
  let bad = 0;
  const variants = new Set<string>();
  for (let i = 0; i < 1000; i++) {
    const id = randomUuid();
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(id)) bad++;
    variants.add(id[19]!);
    seen.add(id);
  }
  t.equal(bad, 0, 'every id has the version 4 form');
  t.equal(seen.size, 1000, 'no id repeats');
  t.equal(variants.size, 4, 'the variant digit takes its four values (8, 9, a, b)');
});
