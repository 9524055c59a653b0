import t from 'tap';
import { Drain, type DrainTargets } from '../../../src/admin/drain.ts';
import { captureLog } from '../../helpers/capture-log.ts';

// The drain's sequence against fake targets: no real time is asserted, only the order of
// the steps and how the drain ends.

function targets(open: () => number) {
  const events: string[] = [];
  const t: DrainTargets = {
    beginDrain: () => events.push('begin'),
    stopAccepting: () => events.push('stop accepting'),
    openConnections: open,
  };
  return { t, events };
}

t.test('begins at once, stops accepting after the delay, ends when no connection is left', async (t) => {
  let open = 2;
  const { t: fake, events } = targets(() => open);
  const { log, lines } = captureLog();
  const drain = new Drain(fake, { delayMs: 20, timeoutMs: 10_000, pollMs: 5 }, log);
  t.equal(drain.draining, false);
  t.equal(drain.status().draining, false);
  const ended = drain.start('SIGTERM');
  t.equal(drain.draining, true, 'draining from the first moment (readiness fails at once)');
  t.same(events, ['begin'], 'still accepting during the delay');
  t.match(drain.status(), { draining: true, reason: 'SIGTERM', acceptingInbound: true, openConnections: 2 });
  t.equal(drain.start('POST /drain'), ended, 'a second start is the same drain');
  await new Promise((r) => setTimeout(r, 60));
  t.same(events, ['begin', 'stop accepting']);
  t.equal(drain.status().acceptingInbound, false);
  open = 0;
  t.equal(await ended, 'drained');
  t.same(events, ['begin', 'stop accepting'], 'begin and stop run once each');
  t.ok(lines.some((l) => l.msg === 'draining' && l.reason === 'SIGTERM'));
});

t.test('connections that never finish: the drain ends at its timeout', async (t) => {
  const { t: fake, events } = targets(() => 1);
  const { log, lines } = captureLog();
  const drain = new Drain(fake, { delayMs: 0, timeoutMs: 30, pollMs: 5 }, log);
  t.equal(await drain.start('SIGTERM'), 'timeout');
  t.same(events, ['begin', 'stop accepting']);
  t.ok(lines.some((l) => l.level === 40 && l.open === 1), 'a warning says how many were still open');
});
