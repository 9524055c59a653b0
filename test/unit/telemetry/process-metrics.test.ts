import { collectDefaultMetrics, Registry } from 'prom-client';
import t from 'tap';
import { collectProcessMetrics } from '../../../src/telemetry/process-metrics.ts';

// The proxy's process metrics are prom-client's defaults but the GC histogram: a
// prom-client that adds a default metric fails here until the proxy collects it too.

async function familiesOf(fill: (registry: Registry) => void): Promise<string[]> {
  const registry = new Registry();
  fill(registry);
  return (await registry.getMetricsAsJSON()).map((m) => m.name).sort();
}

t.test("every one of prom-client's default metrics but the GC histogram", async (t) => {
  const ours = await familiesOf((r) => collectProcessMetrics(r));
  const defaults = await familiesOf((r) => collectDefaultMetrics({ register: r }));
  t.ok(defaults.includes('nodejs_gc_duration_seconds'), 'prom-client still has it (else this test no longer says anything about it)');
  t.same(ours, defaults.filter((n) => n !== 'nodejs_gc_duration_seconds'));
  t.ok(ours.includes('nodejs_eventloop_lag_p99_seconds'));
  t.ok(ours.includes('process_cpu_seconds_total'));
});

t.test('the event-loop lag metric sees a blocked loop', async (t) => {
  const registry = new Registry();
  collectProcessMetrics(registry);
  // Blocked for longer than the 100 ms sampling period, so a sample must see the delay.
  const until = Date.now() + 250;
  while (Date.now() < until) {
    /* busy */
  }
  await new Promise((resolve) => setTimeout(resolve, 150));
  const text = await registry.metrics();
  const max = Number(/^nodejs_eventloop_lag_max_seconds (\S+)$/m.exec(text)?.[1]);
  t.ok(max > 0.05, `the blocked loop is seen (max lag ${max} s)`);
});
