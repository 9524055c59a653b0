import t from 'tap';
import { RequestAbort } from '../../../src/pipeline/abort.ts';

t.test('every listener runs once, in the order added, when the request is aborted', async (t) => {
  const abort = new RequestAbort();
  const calls: string[] = [];
  abort.on(() => calls.push('a'));
  abort.on(() => calls.push('b'));
  abort.on(() => calls.push('c'));
  t.equal(abort.aborted, false);
  abort.abort();
  abort.abort();
  t.same(calls, ['a', 'b', 'c']);
  t.equal(abort.aborted, true);
});

t.test('a listener removed before the abort is not called, whichever slot it had', async (t) => {
  const abort = new RequestAbort();
  const calls: string[] = [];
  const a = () => calls.push('a');
  const b = () => calls.push('b');
  const c = () => calls.push('c');
  abort.on(a);
  abort.on(b);
  abort.on(c);
  abort.off(a);
  abort.off(c);
  abort.off(() => calls.push('never added'));
  abort.abort();
  t.same(calls, ['b']);
});

t.test('a listener added after the abort runs at once', async (t) => {
  const abort = new RequestAbort();
  abort.abort();
  let called = 0;
  abort.on(() => called++);
  t.equal(called, 1);
});

t.test('the AbortSignal follows the abort, whether asked for before or after it', async (t) => {
  const before = new RequestAbort();
  const signal = before.signal;
  t.equal(signal.aborted, false);
  t.equal(before.signal, signal, 'one signal per request');
  let events = 0;
  signal.addEventListener('abort', () => events++);
  before.abort();
  t.equal(signal.aborted, true);
  t.equal(events, 1);

  const after = new RequestAbort();
  after.abort();
  t.equal(after.signal.aborted, true);
});
