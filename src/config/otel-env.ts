// The standard OpenTelemetry SDK variables that configure the proxy's tracing, read as
// the `tracing` section's fields so they show in /config_dump and a bad value is named
// like any other configuration error. The MESHLET_TRACING_* variables override them.
// Variables for the exporter alone (OTEL_EXPORTER_OTLP_HEADERS, ..._TIMEOUT,
// ..._COMPRESSION, ..._CERTIFICATE) and for the batch processor (OTEL_BSP_*) are read by
// the OpenTelemetry SDK itself.

export interface OtelSetting {
  /** The field in the configuration tree. */
  readonly path: readonly string[];
  readonly value: unknown;
  /** The variable it came from, for error messages. */
  readonly variable: string;
}

const TRUE = /^\s*true\s*$/i;

/** The `tracing` fields the OTEL_* variables in `env` set, and the problems with them. */
export function otelSettings(env: NodeJS.ProcessEnv): { settings: OtelSetting[]; problems: string[] } {
  const settings: OtelSetting[] = [];
  const problems: string[] = [];
  const set = (field: string, value: unknown, variable: string) => settings.push({ path: ['tracing', field], value, variable });
  const read = (name: string): string | undefined => {
    const v = env[name]?.trim();
    return v === undefined || v === '' ? undefined : v;
  };

  // The signal-specific endpoint is used as it is; the general one is a base, to which the signal's path is added.
  const tracesEndpoint = read('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT');
  const endpoint = read('OTEL_EXPORTER_OTLP_ENDPOINT');
  if (tracesEndpoint !== undefined) set('endpoint', tracesEndpoint, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT');
  else if (endpoint !== undefined) set('endpoint', `${endpoint.replace(/\/+$/, '')}/v1/traces`, 'OTEL_EXPORTER_OTLP_ENDPOINT');

  const exporter = read('OTEL_TRACES_EXPORTER');
  if (exporter !== undefined) {
    const names = exporter.split(',').map((s) => s.trim().toLowerCase());
    if (names.includes('none')) set('endpoint', '', 'OTEL_TRACES_EXPORTER');
    else if (names.some((n) => n !== 'otlp')) problems.push(`tracing: OTEL_TRACES_EXPORTER=${exporter}: only otlp (OTLP over HTTP) and none are supported`);
  }
  if (TRUE.test(env.OTEL_SDK_DISABLED ?? '')) set('endpoint', '', 'OTEL_SDK_DISABLED');

  const protocol = read('OTEL_EXPORTER_OTLP_TRACES_PROTOCOL') ?? read('OTEL_EXPORTER_OTLP_PROTOCOL');
  if (protocol !== undefined) set('protocol', protocol, read('OTEL_EXPORTER_OTLP_TRACES_PROTOCOL') !== undefined ? 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL' : 'OTEL_EXPORTER_OTLP_PROTOCOL');
  const service = read('OTEL_SERVICE_NAME');
  if (service !== undefined) set('serviceName', service, 'OTEL_SERVICE_NAME');
  const sampler = read('OTEL_TRACES_SAMPLER');
  if (sampler !== undefined) set('sampler', sampler.toLowerCase(), 'OTEL_TRACES_SAMPLER');
  const arg = read('OTEL_TRACES_SAMPLER_ARG');
  if (arg !== undefined) set('samplerArg', Number.isFinite(Number(arg)) ? Number(arg) : arg, 'OTEL_TRACES_SAMPLER_ARG');
  const propagators = read('OTEL_PROPAGATORS');
  if (propagators !== undefined) set('propagators', [...new Set(propagators.split(',').map((s) => s.trim().toLowerCase()).filter((s) => s !== ''))], 'OTEL_PROPAGATORS');
  return { settings, problems };
}
