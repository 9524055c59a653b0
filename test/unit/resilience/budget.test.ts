import fc from 'fast-check';
import t from 'tap';
import { RetryBudget } from '../../../src/resilience/budget.ts';
import { FakeClock } from '../../helpers/fake-clock.ts';

t.test('retries are at most the ratio of requests plus the floor, over the window', async (t) => {
  const clock = new FakeClock();
  const budget = new RetryBudget({ ratio: 0.2, minPerSecond: 1, windowMs: 10_000 }, clock);
  for (let i = 0; i < 100; i++) budget.deposit();
  let granted = 0;
  while (budget.withdraw()) granted++;
  t.equal(granted, 30, '20 % of 100, plus 1/s over 10 s');
  t.match(budget.snapshot(), { requests: 100, retries: 30, available: 0, exhausted: 1 });
  await clock.advance(5000);
  t.notOk(budget.withdraw(), 'half a window later the same requests and retries still count');
  await clock.advance(5000);
  t.ok(budget.withdraw(), 'a window later they have left it: the floor is there again');
  t.match(budget.snapshot(), { requests: 0, retries: 1 });
});

t.test('under any mix of requests, retries and time, granted retries stay within the budget of the window', async (t) => {
  fc.assert(
    fc.property(fc.array(fc.oneof(fc.constant('r' as const), fc.constant('x' as const), fc.integer({ min: 1, max: 4000 })), { maxLength: 300 }), (steps) => {
      let now = 0;
      const clock = { now: () => now, after: () => ({ cancel() {} }), random: () => 0 };
      const budget = new RetryBudget({ ratio: 0.2, minPerSecond: 2, windowMs: 10_000 }, clock);
      const events: Array<{ at: number; kind: 'r' | 'x' }> = [];
      for (const step of steps) {
        if (step === 'r') {
          budget.deposit();
          events.push({ at: now, kind: 'r' });
        } else if (step === 'x') {
          if (budget.withdraw()) events.push({ at: now, kind: 'x' });
        } else {
          now += step;
        }
        // Within the last full window (which the slots may round to one slot more), never more than allowed.
        const recent = events.filter((e) => e.at > now - 10_000);
        const requests = events.filter((e) => e.kind === 'r' && e.at > now - 11_000).length;
        if (recent.filter((e) => e.kind === 'x').length > 0.2 * requests + 20) return false;
      }
      return true;
    }),
  );
});
