import { loadConfig } from '../../../src/config/load.ts';
import { origDst } from '../../../src/net/addresses.ts';
import type { TargetEvents } from '../../../src/resilience/events.ts';
import { policyTable } from '../../../src/resilience/runtime.ts';
import type { Target } from '../../../src/resilience/targets.ts';

/** What a layer reported, one string per event (`retry connect-failure sent`). */
export type Recorded = string[];

export function recorder(): { events: TargetEvents; seen: Recorded } {
  const seen: Recorded = [];
  return {
    seen,
    events: {
      retry: (reason, outcome) => seen.push(`retry ${reason} ${outcome}`),
      overflow: (limit) => seen.push(`overflow ${limit}`),
      timeout: (kind) => seen.push(`timeout ${kind}`),
      fault: (kind) => seen.push(`fault ${kind}`),
      rateLimited: () => seen.push('rate_limited'),
      breaker: (from, to) => seen.push(`breaker ${from ?? 'new'} -> ${to ?? 'gone'}`),
      breakerRejected: () => seen.push('breaker rejected'),
    },
  };
}

/** A target under the default policy, with `env` (MESHLET_RESILIENCE_DEFAULTS_*) changing it. */
export function testTarget(env: NodeJS.ProcessEnv = {}): Target & { seen: Recorded } {
  const { events, seen } = recorder();
  const policy = policyTable(loadConfig({ env })).defaults;
  return { direction: 'outbound', policy, dst: origDst('10.0.0.1', 80), events, state: new Map(), seen };
}
