import fc from 'fast-check';
import t from 'tap';
import { bodyAbort, PushBody, type Body } from '../../../src/pipeline/body.ts';
import { ReplayableBody } from '../../../src/resilience/replay-body.ts';

/** A reader that takes `budget` chunks, then says it is full until resumed. */
function reader(body: Body, budget = Infinity) {
  const got: Buffer[] = [];
  const state = { ended: false, aborted: false, budget };
  body.pipe({
    data: (c) => (got.push(c), --state.budget > 0),
    end: () => (state.ended = true),
    abort: () => (state.aborted = true),
  });
  return { got, state, text: () => Buffer.concat(got).toString() };
}

function source() {
  const flow = { paused: 0, resumed: 0, cancelled: 0 };
  const body = new PushBody({ pause: () => flow.paused++, resume: () => flow.resumed++, cancel: () => flow.cancelled++ });
  return { body, flow };
}

t.test('a try that fails part way: the next one gets the body from its first byte, then the rest as it arrives', async (t) => {
  const { body, flow } = source();
  const replay = new ReplayableBody(body, 1024);
  body.push(Buffer.from('ab'));
  const first = replay.attempt();
  const one = reader(first, 1);
  body.push(Buffer.from('cd'));
  t.equal(one.text(), 'ab', 'the first try took one chunk, then was full');
  first.cancel(bodyAbort('upstream reset'));
  t.equal(flow.cancelled, 0, "a failed try does not cancel the client's body");
  t.ok(replay.replayable);
  const two = reader(replay.attempt());
  t.equal(two.text(), 'abcd', 'the second try starts over');
  body.push(Buffer.from('ef'));
  body.finish([]);
  t.equal(two.text(), 'abcdef');
  t.ok(two.state.ended);
  t.ok(flow.resumed >= 1 || flow.paused === 0, 'the source was resumed after the pause');
});

t.test('past the limit it keeps nothing more and is no longer replayable; abandon() cancels the source', async (t) => {
  const { body, flow } = source();
  const replay = new ReplayableBody(body, 4);
  const one = reader(replay.attempt());
  body.push(Buffer.from('abc'));
  t.ok(replay.replayable);
  body.push(Buffer.from('def'));
  t.notOk(replay.replayable, 'over 4 bytes');
  t.equal(one.text(), 'abcdef', 'the try in progress still gets everything');
  replay.abandon(bodyAbort('gave up'));
  t.equal(flow.cancelled, 1);
});

t.test('an aborted client body is not replayable and the try sees the abort', async (t) => {
  const { body } = source();
  const replay = new ReplayableBody(body, 1024);
  const one = reader(replay.attempt());
  body.push(Buffer.from('x'));
  body.fail(bodyAbort('client gone'));
  t.ok(one.state.aborted);
  t.notOk(replay.replayable);
});

t.test("whatever the chunking and the tries' backpressure, every try reads the body from its first byte", async (t) => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ minLength: 1, maxLength: 20 }), { maxLength: 20 }), fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 4 }), (chunks, budgets) => {
      const { body } = source();
      const replay = new ReplayableBody(body, 1024);
      const expected = Buffer.concat(chunks.map((c) => Buffer.from(c)));
      let fed = 0;
      for (const budget of budgets) {
        const attempt = replay.attempt();
        const r = reader(attempt, budget);
        // Feed half of what is left while the try may be full, let it resume once, then fail it.
        const until = fed + Math.ceil((chunks.length - fed) / 2);
        for (; fed < until; fed++) body.push(Buffer.from(chunks[fed]!));
        r.state.budget = budget;
        attempt.resume();
        const sent = Buffer.concat(r.got);
        if (!expected.subarray(0, sent.length).equals(sent)) return false; // every try starts at byte 0
        attempt.cancel(bodyAbort('try failed'));
      }
      const last = reader(replay.attempt());
      for (; fed < chunks.length; fed++) body.push(Buffer.from(chunks[fed]!));
      body.finish([]);
      return last.state.ended && Buffer.concat(last.got).equals(expected);
    }),
  );
});

t.test('abandon() leaves a body no try started reading as it is (the listener answers and deals with it)', async (t) => {
  const { body, flow } = source();
  const replay = new ReplayableBody(body, 1024);
  replay.attempt(); // a try that failed before piping (no connection)
  replay.attempt();
  replay.abandon(bodyAbort('gave up'));
  t.equal(flow.cancelled, 0);
  const r = reader(body);
  body.push(Buffer.from('still here'));
  t.equal(r.text(), 'still here', 'the body can still be read');
});
