// prom-client's default metrics, one module each (the package has no exports map; the
// modules are what its collectDefaultMetrics calls, with the same arguments).
declare module 'prom-client/lib/metrics/*.js' {
  import type { Registry } from 'prom-client';
  const collect: (registry: Registry, config: { eventLoopMonitoringPrecision?: number }) => void;
  export default collect;
}
