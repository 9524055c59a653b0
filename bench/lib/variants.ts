// The plaintext pair's variants that the fresh-start and instruction-count tools compare:
// the l7 scenario's own (bench/l7.ts), and two of their own: telemetry-on at a sampling
// ratio of 0, what the tracing layer costs when no span is made (a scan of each request's
// header names and a read of its request id; nothing is written); and tracing-always,
// every request sampled, so that a count per request is the cost of a span (its making,
// its export and what it leaves to the collector) on top of tracing-ratio-0's.
import type { ProxyUnder, Pod } from '../../src/testbed/netns.ts';
import { SINK, SINK_PORT, startL7App, VARIANT_ENV, type Side } from '../l7.ts';
import { APP_PORTS } from './baselines.ts';
import { createTopology, startAppServer, type Topology } from './topology.ts';

export const VARIANTS = ['plaintext', 'plaintext-off', 'telemetry-on', 'telemetry-off', 'tracing-ratio-0', 'tracing-always'] as const;
export type Variant = (typeof VARIANTS)[number];

export const VARIANT_PROXY_ENV: Partial<Record<Variant, () => NodeJS.ProcessEnv>> = {
  ...VARIANT_ENV,
  'tracing-ratio-0': () => ({ ...VARIANT_ENV['telemetry-on']!(), OTEL_TRACES_SAMPLER_ARG: '0' }),
  'tracing-always': () => ({ ...VARIANT_ENV['telemetry-on']!(), OTEL_TRACES_SAMPLER_ARG: '1' }),
};

/** The variants that export spans: each of their pods runs an OTLP sink. */
export const WITH_SINK: readonly Variant[] = ['telemetry-on', 'tracing-ratio-0', 'tracing-always'];

/** The variants named by a --modes value (at least `least` of them), or an error saying which are not. */
export function parseVariants(text: string, least = 2): Variant[] {
  const modes = text.split(',') as Variant[];
  const bad = modes.filter((m) => !(VARIANTS as readonly string[]).includes(m));
  if (bad.length > 0 || modes.length < least) throw new Error(`--modes: ${least === 1 ? 'one' : 'two'} or more of ${VARIANTS.join(', ')}; got ${text}`);
  return modes;
}

/** A plaintext pair running `mode`: its pods, the l7 scenario's app (and a trace sink in each pod when the mode exports spans). */
export interface VariantPair {
  readonly topology: Topology;
  /** The l7 scenario's side for it (a plaintext pair, whatever the variant): its preflight and h2load runs take it. */
  readonly side: Side;
  /** Every process of the pods that a request crosses or that works beside it: proxies, trace sinks, the app. */
  readonly podPids: readonly number[];
}

/** Builds the pods of `mode` and starts what runs in them; the caller destroys `topology.testbed`. */
export async function startVariantPair(mode: Variant, subnet: number, proxyUnder?: (pod: Pod) => ProxyUnder | undefined): Promise<VariantPair> {
  const topology = await createTopology('plaintext', { subnet, proxyEnv: VARIANT_PROXY_ENV[mode], ...(proxyUnder ? { proxyUnder } : {}) });
  try {
    const podPids = topology.proxies.map((p) => p.pid);
    if (WITH_SINK.includes(mode)) for (const pod of [topology.client, topology.server]) podPids.push((await startAppServer(pod, [SINK, '--port', String(SINK_PORT)])).pid);
    const app = await startL7App(topology.server);
    podPids.push(app.pid);
    const side: Side = { mode: 'plaintext', topology, appPid: app.pid, proxies: topology.proxies.map((p) => ({ pod: p.pod, pid: p.pid })), host: topology.server.ipv4, ports: APP_PORTS };
    return { topology, side, podPids };
  } catch (err) {
    await topology.testbed.destroy();
    throw err;
  }
}
