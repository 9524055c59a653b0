import t from 'tap';
import { bodyAbort, BufferedBody, PushBody, type BodySink } from '../../../src/pipeline/body.ts';

// The pipeline's bodies on their own, with a fake producer and sink: backpressure both
// ways, the end with its trailers, an abort, and a reader that gives up.

function producer() {
  const calls: string[] = [];
  return { calls, pause: () => calls.push('pause'), resume: () => calls.push('resume'), cancel: () => calls.push('cancel') };
}

function sink(accept: () => boolean = () => true) {
  const got: { data: string[]; end?: string[]; abort?: string } = { data: [] };
  const s: BodySink = {
    data: (chunk) => (got.data.push(chunk.toString()), accept()),
    end: (trailers) => (got.end = trailers),
    abort: (err) => (got.abort = err.message),
  };
  return { got, s };
}

t.test('PushBody: chunks before a sink wait, and more than 64 KiB waiting pauses the producer', async (t) => {
  const p = producer();
  const body = new PushBody(p, 5);
  body.push(Buffer.from('ab'));
  t.same(p.calls, [], 'a little is held without pausing');
  body.push(Buffer.alloc(64 * 1024));
  t.same(p.calls, ['pause'], 'past the high-water mark the producer pauses');
  const { got, s } = sink();
  body.pipe(s);
  t.equal(got.data.length, 2, 'what waited is delivered at once');
  t.same(p.calls, ['pause', 'resume'], 'drained: the producer resumes');
  body.finish(['X-Sum', '1']);
  t.same(got.end, ['X-Sum', '1'], 'the end carries the trailers');
  t.equal(body.length, 5);
});

t.test('PushBody: a full sink stops the flow until it resumes the body', async (t) => {
  const p = producer();
  const body = new PushBody(p);
  let room = false;
  const { got, s } = sink(() => room);
  body.pipe(s);
  body.push(Buffer.from('one'));
  t.same(p.calls, ['pause'], 'the sink said it is full');
  body.push(Buffer.from('two'));
  body.finish([]);
  t.same(got.data, ['one'], 'nothing more until resume()');
  t.equal(got.end, undefined, 'and the end waits behind the data');
  room = true;
  body.resume();
  t.same(got.data, ['one', 'two']);
  t.same(got.end, [], 'ended after the last chunk');
});

t.test('PushBody: chunks keep their order whatever the sink takes at a time', async (t) => {
  // Chunks waiting before the sink, a sink full after each of them, more arriving in
  // between: what is delivered is always what was pushed, in order.
  const body = new PushBody(producer());
  const pushed: string[] = [];
  const push = (text: string) => (pushed.push(text), body.push(Buffer.from(text)));
  push('a');
  push('b');
  push('c');
  let room = 1;
  const { got, s } = sink(() => --room > 0);
  body.pipe(s);
  t.same(got.data, ['a'], 'one chunk, then the sink is full');
  push('d');
  for (let i = 0; got.data.length < pushed.length && i < 10; i++) {
    room = 1;
    body.resume();
    push(`e${i}`);
  }
  room = 100;
  body.resume();
  t.same(got.data, pushed, 'every chunk, in the order pushed');
});

t.test('PushBody: a failed body reaches the sink as an abort, and a cancelled one stops its producer', async (t) => {
  const failed = new PushBody(producer());
  const a = sink();
  failed.pipe(a.s);
  failed.push(Buffer.from('partial'));
  failed.fail(bodyAbort('reset', 8));
  t.equal(a.got.abort, 'reset');
  t.equal(a.got.end, undefined, 'never taken for whole');

  const p = producer();
  const cancelled = new PushBody(p);
  cancelled.cancel(bodyAbort('the reader went away'));
  cancelled.push(Buffer.from('late'));
  t.same(p.calls, ['cancel'], 'the producer is told once, and later bytes are dropped');
});

t.test('BufferedBody: delivers its chunks with backpressure, then its trailers', async (t) => {
  const body = new BufferedBody([Buffer.from('a'), Buffer.alloc(0), Buffer.from('b')], ['T', '1']);
  t.equal(body.length, 2, 'empty chunks do not count');
  let room = false;
  const { got, s } = sink(() => room);
  body.pipe(s);
  t.same(got.data, ['a']);
  room = true;
  body.resume();
  t.same(got.data, ['a', 'b']);
  t.same(got.end, ['T', '1']);
});

t.test('PushBody: a producer that finishes while its reader is full is handed back flowing and never paused again', async (t) => {
  // The producer is a keep-alive connection: once the body is complete it goes on to its
  // next message, so a pause left behind would stall that one (a pooled connection paused forever).
  const p = producer();
  const body = new PushBody(p);
  let room = false;
  const { got, s } = sink(() => room);
  body.pipe(s);
  body.push(Buffer.from('one'));
  body.push(Buffer.from('two'));
  t.same(p.calls, ['pause'], 'the full reader paused the producer');
  body.finish([]);
  t.same(p.calls, ['pause', 'resume'], 'complete: the producer is resumed at once, whatever the reader');
  body.resume();
  t.same(p.calls, ['pause', 'resume'], 'a reader still full after the end does not pause the producer again');
  room = true;
  body.resume();
  t.same(got.data, ['one', 'two'], 'what was queued is still delivered');
  t.same(got.end, []);
  t.same(p.calls, ['pause', 'resume'], 'and the producer is left alone');
});

t.test('PushBody: a body that fails while its reader is full hands its producer back too', async (t) => {
  const p = producer();
  const body = new PushBody(p);
  const { got, s } = sink(() => false);
  body.pipe(s);
  body.push(Buffer.from('one'));
  body.fail(bodyAbort('cut short'));
  t.same(p.calls, ['pause', 'resume']);
  body.resume();
  t.equal(got.abort, 'cut short', 'the reader learns of it when it asks for more');
  t.same(p.calls, ['pause', 'resume']);
});
