import { MeshletError } from '../errors.ts';
import { parseInitOptions } from '../iptables/options.ts';
import { formatCidr, parseCidrList } from '../iptables/values.ts';
import { didYouMean } from '../suggest.ts';
import { parseTrustDomain } from '../tls/spiffe.ts';

// What to inject into one pod: the command's flags (or the webhook's), then the pod's
// own `meshlet.io/*` annotations on top. Every value is checked here, once, so a bad
// annotation is refused with the object and the annotation named instead of producing
// a pod whose init container or sidecar fails later.

/** Every annotation meshlet reads or writes starts with this. */
export const ANNOTATION_PREFIX = 'meshlet.io/';

/** What inject wrote into a pod: uninject reads it, and its presence makes inject a no-op. */
export const STATUS_ANNOTATION = `${ANNOTATION_PREFIX}status`;

export type SidecarMode = 'native' | 'classic';
export type IdentitySource = 'secret' | 'cert-manager';
export type MtlsMode = 'permissive' | 'strict' | 'disable';

export interface Resources {
  readonly cpu: string;
  readonly memory: string;
  /** Unset: no limit (docs/performance.md: a throttled sidecar stalls every request it carries). */
  readonly cpuLimit?: string | undefined;
  readonly memoryLimit?: string | undefined;
}

export interface InjectSettings {
  readonly sidecarMode: SidecarMode;
  readonly proxyImage: string;
  readonly initImage: string;
  readonly imagePullPolicy?: string | undefined;
  readonly identity: IdentitySource;
  /** Secret name; `{serviceAccount}` stands for the pod's service account. */
  readonly identitySecret: string;
  readonly issuer: string;
  readonly issuerKind: string;
  readonly trustDomain: string;
  /** Unset: the proxy's own default (permissive). */
  readonly mtls?: MtlsMode | undefined;
  /** Destinations the sidecar reaches over mTLS (mesh.peers), normalised; none: no outbound mTLS. */
  readonly meshCidrs?: readonly string[] | undefined;
  /** Send the app's probes through 15020; default: when mtls is strict. */
  readonly rewriteAppProbes?: boolean | undefined;
  readonly prometheus: boolean;
  readonly resources: Resources;
  /** `meshlet init` variables from the pod's annotations (MESHLET_EXCLUDE_OUTBOUND_PORTS...). */
  readonly initEnv: Readonly<Record<string, string>>;
}

const VERSION = '0.1.0';

/**
 * Sizing from docs/performance.md: 0.2 vCPU serves about 1000 HTTP/1.1 requests/s; the
 * sidecar starts at ~115 MiB and grows to 275–320 MiB under load; no CPU limit.
 */
export const DEFAULT_SETTINGS: InjectSettings = {
  sidecarMode: 'native',
  proxyImage: `meshlet-proxy:${VERSION}`,
  initImage: `meshlet-init:${VERSION}`,
  identity: 'secret',
  identitySecret: 'meshlet-identity-{serviceAccount}',
  issuer: 'meshlet-ca',
  issuerKind: 'ClusterIssuer',
  trustDomain: 'cluster.local',
  prometheus: true,
  // docs/performance.md, "Sizing": 78 MiB RSS idle, up to 110 MiB under HTTP/1.1 load and
  // 146 under HTTP/2, so the request covers an HTTP/1.1 sidecar at full load and the limit
  // (the OOM kill) leaves room above the HTTP/2 peak; 0.2
  // vCPU per 1000 HTTP/1.1 requests/s, and no CPU limit (a throttled sidecar stalls).
  resources: { cpu: '200m', memory: '128Mi', memoryLimit: '256Mi' },
  initEnv: {},
};

/** A Kubernetes resource quantity: 200m, 0.5, 256Mi, 1G, 1e3. */
const QUANTITY = /^(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[EPTGMK]i|[EPTGMkmnu])?$/;
/** A DNS-1123 subdomain (Secret and issuer names); `{serviceAccount}` stands for one. */
const NAME = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

type Setter = (settings: Mutable, value: string, source: string) => void;
type Mutable = { -readonly [K in keyof InjectSettings]: InjectSettings[K] };

function oneOf<T extends string>(allowed: readonly T[]): (value: string, source: string) => T {
  return (value, source) => {
    if ((allowed as readonly string[]).includes(value)) return value as T;
    throw bad(source, value, `one of ${allowed.join(', ')}`);
  };
}

function bool(value: string, source: string): boolean {
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw bad(source, value, '"true" or "false"');
}

function quantity(value: string, source: string): string {
  if (QUANTITY.test(value)) return value;
  throw bad(source, value, 'a Kubernetes quantity such as 200m, 0.5, 256Mi or 1Gi');
}

function name(value: string, source: string): string {
  if (NAME.test(value.replaceAll('{serviceAccount}', 'sa'))) return value;
  throw bad(source, value, 'a Kubernetes object name (lower case letters, digits, - and .)');
}

function cidrs(value: string, source: string): string[] {
  try {
    return parseCidrList(value, source).map(formatCidr);
  } catch (err) {
    throw new MeshletError('MESHLET_ERR_INJECT', (err as Error).message);
  }
}

function trustDomain(value: string, source: string): string {
  try {
    return parseTrustDomain(value);
  } catch (err) {
    throw new MeshletError('MESHLET_ERR_INJECT', `${source}: ${(err as Error).message}`);
  }
}

function image(value: string, source: string): string {
  if (/^\S+$/.test(value)) return value;
  throw bad(source, value, 'an image reference without blanks');
}

function bad(source: string, value: string, expected: string): MeshletError {
  return new MeshletError('MESHLET_ERR_INJECT', `${source}: ${JSON.stringify(value)} is not ${expected}`);
}

const sidecarMode = oneOf<SidecarMode>(['native', 'classic']);
const mtls = oneOf<MtlsMode>(['permissive', 'strict', 'disable']);

const withResources = (patch: (r: Resources, v: string) => Resources): Setter => (s, v, src) => (s.resources = patch(s.resources, quantity(v, src)));

/** `meshlet init` settings a pod may change, by annotation; the value goes to the init container's env. */
const INIT_ANNOTATIONS = ['inbound-ports', 'exclude-inbound-ports', 'exclude-outbound-ports', 'include-outbound-cidrs', 'exclude-outbound-cidrs'] as const;

/** Settings a pod may change by annotation (name after the prefix) and the flags that set the same. */
const SETTERS: Readonly<Record<string, Setter>> = {
  'sidecar-mode': (s, v, src) => (s.sidecarMode = sidecarMode(v, src)),
  'proxy-image': (s, v, src) => (s.proxyImage = image(v, src)),
  'init-image': (s, v, src) => (s.initImage = image(v, src)),
  identity: (s, v, src) => (s.identity = oneOf<IdentitySource>(['secret', 'cert-manager'])(v, src)),
  'identity-secret': (s, v, src) => (s.identitySecret = name(v, src)),
  issuer: (s, v, src) => (s.issuer = name(v, src)),
  'issuer-kind': (s, v, src) => (s.issuerKind = oneOf(['Issuer', 'ClusterIssuer'])(v, src)),
  mtls: (s, v, src) => (s.mtls = mtls(v, src)),
  'mesh-cidrs': (s, v, src) => (s.meshCidrs = cidrs(v, src)),
  'rewrite-app-probes': (s, v, src) => (s.rewriteAppProbes = bool(v, src)),
  prometheus: (s, v, src) => (s.prometheus = bool(v, src)),
  'proxy-cpu': withResources((r, v) => ({ ...r, cpu: v })),
  'proxy-memory': withResources((r, v) => ({ ...r, memory: v })),
  'proxy-cpu-limit': withResources((r, v) => ({ ...r, cpuLimit: v })),
  'proxy-memory-limit': withResources((r, v) => ({ ...r, memoryLimit: v })),
  ...Object.fromEntries(INIT_ANNOTATIONS.map((a) => [a, ((s, v) => (s.initEnv = { ...s.initEnv, [initVariable(a)]: v })) satisfies Setter])),
};

/** Flags only the command line sets (not per pod). */
const FLAG_ONLY: Readonly<Record<string, Setter>> = {
  'image-pull-policy': (s, v, src) => (s.imagePullPolicy = oneOf(['Always', 'IfNotPresent', 'Never'])(v, src)),
  'trust-domain': (s, v, src) => (s.trustDomain = trustDomain(v, src)),
};

/** Annotations with a meaning beyond a setting. */
const SPECIAL_ANNOTATIONS = ['inject', 'status'];

export const ANNOTATION_NAMES: readonly string[] = [...SPECIAL_ANNOTATIONS, ...Object.keys(SETTERS)].map((a) => ANNOTATION_PREFIX + a);

/** The flags `meshlet inject` and `meshlet webhook` take for settings (all strings). */
export const SETTING_FLAGS: readonly string[] = [...Object.keys(SETTERS).filter((k) => !INIT_ANNOTATIONS.includes(k as never)), ...Object.keys(FLAG_ONLY)];

function initVariable(annotation: string): string {
  return `MESHLET_${annotation.toUpperCase().replaceAll('-', '_')}`;
}

/** Settings from flags (`{'sidecar-mode': 'classic'}`), on top of the defaults. */
export function settingsFromFlags(flags: Readonly<Record<string, string | undefined>>): InjectSettings {
  const settings: Mutable = { ...DEFAULT_SETTINGS };
  for (const [flag, value] of Object.entries(flags)) {
    if (value === undefined) continue;
    const setter = SETTERS[flag] ?? FLAG_ONLY[flag];
    if (setter === undefined) throw new MeshletError('MESHLET_ERR_USAGE', `unknown setting --${flag}`);
    try {
      setter(settings, value, `--${flag}`);
    } catch (err) {
      throw new MeshletError('MESHLET_ERR_USAGE', (err as Error).message);
    }
  }
  return settings;
}

export type PodDecision = { readonly inject: false; readonly reason: string } | { readonly inject: true; readonly settings: InjectSettings };

/**
 * The pod's annotations applied to `base`. Throws MESHLET_ERR_INJECT naming the
 * annotation for a bad value or an unknown `meshlet.io/` name (with the closest one).
 */
export function podSettings(base: InjectSettings, annotations: Readonly<Record<string, string>> | undefined): PodDecision {
  const settings: Mutable = { ...base };
  const problems: string[] = [];
  for (const [key, raw] of Object.entries(annotations ?? {})) {
    if (!key.startsWith(ANNOTATION_PREFIX)) continue;
    const short = key.slice(ANNOTATION_PREFIX.length);
    const value = String(raw);
    try {
      if (short === 'inject') {
        if (!bool(value, `annotation ${key}`)) return { inject: false, reason: `${key} is "false"` };
      } else if (short !== 'status') {
        // Own keys only: `meshlet.io/valueOf` must not find Object.prototype's.
        const setter = Object.hasOwn(SETTERS, short) ? SETTERS[short] : undefined;
        if (setter === undefined) throw new MeshletError('MESHLET_ERR_INJECT', `annotation ${key}: unknown${didYouMean(key, ANNOTATION_NAMES)}`);
        setter(settings, value, `annotation ${key}`);
      }
    } catch (err) {
      problems.push((err as Error).message);
    }
  }
  // The init container's variables, checked by meshlet init's own parser: what it
  // would refuse at pod start-up is refused now.
  try {
    parseInitOptions([], settings.initEnv);
  } catch (err) {
    problems.push(initProblem((err as Error).message));
  }
  if (problems.length > 0) throw new MeshletError('MESHLET_ERR_INJECT', problems.join('; '));
  return { inject: true, settings };
}

/** meshlet init names its variable; the pod's author wrote an annotation. */
function initProblem(message: string): string {
  for (const a of INIT_ANNOTATIONS) {
    const variable = initVariable(a);
    if (message.includes(variable)) return `annotation ${ANNOTATION_PREFIX}${a}: ${message.replace(`${variable}: `, '')}`;
  }
  return message;
}
