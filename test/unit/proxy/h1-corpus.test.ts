import t from 'tap';
import { BAD, GOOD } from '../../fixtures/h1-corpus/corpus.ts';
import { failureOf, record } from '../../fixtures/h1-corpus/record.ts';

// The bad-input corpus (test/fixtures/h1-corpus/corpus.ts): malformed and smuggling
// inputs, each refused with its own failure, whole, split in two anywhere, and one byte at
// a time; and nothing is reported after the error. The valid examples pass.

t.ok(BAD.length >= 40, `${BAD.length} bad inputs`);
t.equal(new Set(BAD.map((e) => e.name)).size, BAD.length, 'names are unique');

for (const entry of BAD) {
  t.test(`${entry.kind}: ${entry.name}`, async (t) => {
    const options = { expect: entry.expect ? [entry.expect] : [] };
    const events = record(entry.kind, entry.input, options);
    t.equal(failureOf(events), entry.failure);
    t.equal(events.at(-1)?.type, 'error', 'the error is the last event');
    t.equal(events.filter((e) => e.type === 'error').length, 1, 'one error');
    t.notOk(events.some((e) => e.type === 'end'), 'no message completes');

    const bytes = Buffer.from(entry.input, 'latin1');
    // Split in two at every position (a sample of them for the large inputs), and byte by byte.
    const step = bytes.length > 600 ? Math.ceil(bytes.length / 200) : 1;
    let agree = 0;
    let tried = 0;
    for (let i = 1; i < bytes.length; i += step) {
      tried++;
      const split = failureOf(record(entry.kind, [bytes.subarray(0, i), bytes.subarray(i)], options));
      if (split === entry.failure) agree++;
      else t.equal(split, entry.failure, `split at ${i}`);
    }
    t.equal(agree, tried, `the same failure for ${tried} splits`);
    if (bytes.length <= 600) {
      const single = [...bytes].map((x) => Buffer.from([x]));
      t.equal(failureOf(record(entry.kind, single, options)), entry.failure, 'one byte at a time');
    }
  });
}

for (const entry of GOOD) {
  t.test(`valid ${entry.kind}: ${entry.name}`, async (t) => {
    const events = record(entry.kind, entry.input, { expect: entry.expect ? [entry.expect] : [], finish: entry.kind === 'response' });
    t.equal(failureOf(events), undefined);
    const heads = events.filter((e) => e.type === 'head');
    const finals = heads.filter((e) => e.type === 'head' && !(e.head.status >= 100 && e.head.status < 200 && e.head.status !== 101));
    t.equal(finals.length, entry.messages);
    const upgrades = heads.filter((e) => e.type === 'head' && e.head.upgrade).length;
    t.equal(events.filter((e) => e.type === 'end').length + upgrades, entry.messages, 'each message ends (or upgrades)');
  });
}
