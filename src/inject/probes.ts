import { MeshletError } from '../errors.ts';
import { HEALTH_PORT } from './containers.ts';
import { PROBE_KINDS, type Container, type Probe, type ProbeKind } from './kube.ts';

// Under strict mTLS the inbound listener refuses plaintext, and kubelet's probes are
// plaintext from the node: an app's HTTP probe to its own port would fail and the pod
// be killed (Istio users hit exactly this). So, as Istio does, the app's httpGet,
// tcpSocket and grpc probes are pointed at the sidecar's 15020, under a path per
// container and kind, and the original probe goes to the sidecar in
// MESHLET_HEALTH_APP_PROBES for it to run against the app over localhost (which is not
// intercepted; src/admin/app-probes.ts). exec probes run inside the app's container and
// are left alone.

const SHORT: Record<ProbeKind, string> = { livenessProbe: 'livez', readinessProbe: 'readyz', startupProbe: 'startupz' };

export function appProbePath(container: string, kind: ProbeKind): string {
  return `/app-health/${container}/${SHORT[kind]}`;
}

export interface Rewrite {
  readonly kind: ProbeKind;
  readonly original: Probe;
  readonly rewritten: Probe;
  /** Path on 15020 → what the sidecar runs for it (named ports resolved to numbers). */
  readonly path: string;
  readonly check: Record<string, unknown>;
}

/** The rewrites for one container's probes; throws naming the container for a port name it does not declare. */
export function rewriteProbes(container: Container, where: string): Rewrite[] {
  const rewrites: Rewrite[] = [];
  for (const kind of PROBE_KINDS) {
    const probe = container[kind];
    if (probe === undefined || probe.exec !== undefined) continue;
    const { httpGet, tcpSocket, grpc } = probe;
    const handler = httpGet ? 'httpGet' : tcpSocket ? 'tcpSocket' : grpc ? 'grpc' : undefined;
    if (handler === undefined) continue;
    const original = (httpGet ?? tcpSocket ?? grpc)!;
    // A probe of another host does not reach this pod's inbound listener.
    if ('host' in original && original.host) continue;
    const port = resolvePort(container, original.port, `${where}: container ${container.name}: ${kind}`);
    const path = appProbePath(container.name, kind);
    const check = { [handler]: { ...original, port }, ...(probe.timeoutSeconds !== undefined ? { timeoutSeconds: probe.timeoutSeconds } : {}) };
    // The handler replaced where it was, the other fields kept in their order.
    const handlerValue = { path, port: HEALTH_PORT, scheme: 'HTTP' };
    const rewritten = Object.fromEntries(Object.entries(probe).map(([k, v]) => (k === handler ? ['httpGet', handlerValue] : [k, v]))) as Probe;
    rewrites.push({ kind, original: probe, rewritten, path, check });
  }
  return rewrites;
}

function resolvePort(container: Container, port: number | string, where: string): number {
  if (typeof port === 'number') return port;
  if (/^\d+$/.test(port)) return Number(port);
  const named = container.ports?.find((p) => p.name === port);
  if (named === undefined) throw new MeshletError('MESHLET_ERR_INJECT', `${where}: port '${port}' is not a named port of the container`);
  return named.containerPort;
}
