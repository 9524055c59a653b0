// The plaintext pair's variants that the fresh-start and instruction-count tools compare:
// the l7 scenario's own (bench/l7.ts), and two of their own: telemetry-on at a sampling
// ratio of 0, what tracing costs when no span is made (every request still gets its
// unsampled traceparent, which the next sidecar reads); and the same writing no trace
// context (OTEL_PROPAGATORS=none), to tell that header's cost from the rest.
import { VARIANT_ENV } from '../l7.ts';

export const VARIANTS = ['plaintext', 'plaintext-off', 'telemetry-on', 'telemetry-off', 'tracing-ratio-0', 'tracing-no-context'] as const;
export type Variant = (typeof VARIANTS)[number];

export const VARIANT_PROXY_ENV: Partial<Record<Variant, () => NodeJS.ProcessEnv>> = {
  ...VARIANT_ENV,
  'tracing-ratio-0': () => ({ ...VARIANT_ENV['telemetry-on']!(), OTEL_TRACES_SAMPLER_ARG: '0' }),
  'tracing-no-context': () => ({ ...VARIANT_ENV['telemetry-on']!(), OTEL_TRACES_SAMPLER_ARG: '0', OTEL_PROPAGATORS: 'none' }),
};

/** The variants that export spans: each of their pods runs an OTLP sink. */
export const WITH_SINK: readonly Variant[] = ['telemetry-on', 'tracing-ratio-0', 'tracing-no-context'];

/** The variants named by a --modes value (at least `least` of them), or an error saying which are not. */
export function parseVariants(text: string, least = 2): Variant[] {
  const modes = text.split(',') as Variant[];
  const bad = modes.filter((m) => !(VARIANTS as readonly string[]).includes(m));
  if (bad.length > 0 || modes.length < least) throw new Error(`--modes: ${least === 1 ? 'one' : 'two'} or more of ${VARIANTS.join(', ')}; got ${text}`);
  return modes;
}
