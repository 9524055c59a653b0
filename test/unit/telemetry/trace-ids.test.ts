import t from 'tap';
import { traceIds } from '../../../src/telemetry/trace-ids.ts';

// Ids are cut from a pool of random hex that is redrawn when it runs out: across many
// redraws each one has its format, none repeats, and none shares digits with the next
// (which a cut that did not move on, or overlapped, would show).

t.test('trace and span ids: lower-case hex of 32 and 16 digits, all different, across pool redraws', async (t) => {
  const ids: string[] = [];
  for (let i = 0; i < 3000; i++) ids.push(traceIds.generateTraceId(), traceIds.generateSpanId());
  t.ok(ids.every((id, i) => (i % 2 === 0 ? /^[0-9a-f]{32}$/ : /^[0-9a-f]{16}$/).test(id)), 'every id has its length, in lower-case hex');
  t.equal(new Set(ids).size, ids.length, 'no id repeats');
  t.ok(ids.every((id, i) => i === 0 || !ids[i - 1]!.endsWith(id.slice(0, 8))), 'no id starts where the one before ended');
  t.notOk(ids.some((id) => /^0+$/.test(id)), 'none is all zeros');
});
