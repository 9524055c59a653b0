import type { Registry } from 'prom-client';
import eventLoopLag from 'prom-client/lib/metrics/eventLoopLag.js';
import heapSizeAndUsed from 'prom-client/lib/metrics/heapSizeAndUsed.js';
import heapSpacesSizeAndUsed from 'prom-client/lib/metrics/heapSpacesSizeAndUsed.js';
import osMemoryHeap from 'prom-client/lib/metrics/osMemoryHeap.js';
import processCpuTotal from 'prom-client/lib/metrics/processCpuTotal.js';
import processHandles from 'prom-client/lib/metrics/processHandles.js';
import processMaxFileDescriptors from 'prom-client/lib/metrics/processMaxFileDescriptors.js';
import processOpenFileDescriptors from 'prom-client/lib/metrics/processOpenFileDescriptors.js';
import processRequests from 'prom-client/lib/metrics/processRequests.js';
import processResources from 'prom-client/lib/metrics/processResources.js';
import processStartTime from 'prom-client/lib/metrics/processStartTime.js';
import version from 'prom-client/lib/metrics/version.js';

// The process and event-loop metrics of prom-client's collectDefaultMetrics, all of them
// but its GC histogram (nodejs_gc_duration_seconds). That one observes every collection
// through a PerformanceObserver, and Node makes each GC entry with deprecated accessors
// (a wrapper function, a prototype change and a property definition per field): callgrind
// put it at about 450 instructions per request in each sidecar of an HTTP/1.1 pair, where
// the young generation is small and scavenged every few dozen requests (about 1 % of the
// pair's work, more the more a request allocates). A pause the collector makes is still
// seen where it matters to requests, in the event-loop lag (nodejs_eventloop_lag_*).

/** How often the event-loop delay metric samples (nodejs_eventloop_lag_*). */
const EVENT_LOOP_SAMPLE_MS = 100;

export function collectProcessMetrics(registry: Registry): void {
  // The event-loop delay histogram samples on a timer: at prom-client's default 10 ms an
  // idle sidecar woke 100 times a second (measured: ~100 context switches/s, 0.5 % of a
  // core, idle), in every pod; a node with dozens of sidecars, or the benchmark's twenty,
  // pays that as CPU and as jitter for the proxies doing work. 100 ms keeps the metric.
  const config = { eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS };
  const collectors = [processCpuTotal, processStartTime, osMemoryHeap, processOpenFileDescriptors, processMaxFileDescriptors, eventLoopLag, processResources, processHandles, processRequests, heapSizeAndUsed, heapSpacesSizeAndUsed, version];
  for (const collect of collectors) collect(registry, config);
}
