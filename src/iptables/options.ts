import { parseOptions, usage, type OptionSpec } from '../args.ts';
import {
  parseCidrList,
  parseInteger,
  parsePort,
  parsePortList,
  type Cidr,
  type PortRange,
} from './values.ts';

// `meshlet init` options: flags, each also settable as MESHLET_<FLAG> so an init
// container can be configured from its pod spec alone. A flag wins over the
// environment. Everything is validated here, before anything touches the kernel, so a
// typo fails with exit 2 and no rule is ever half-applied.

export type IPv6Mode = 'auto' | 'on' | 'off';
export type BackendMode = 'auto' | 'nft' | 'legacy';

export interface InitOptions {
  readonly proxyUid: number;
  readonly proxyGid: number;
  readonly outboundPort: number;
  readonly inboundPort: number;
  /** Inbound destination ports to redirect; 'all' for `*`. */
  readonly inboundPorts: 'all' | readonly PortRange[];
  /** As given; the proxy's own ports (ALWAYS_EXCLUDED_INBOUND_PORTS) are added by the rule model. */
  readonly excludeInboundPorts: readonly PortRange[];
  readonly excludeOutboundPorts: readonly PortRange[];
  /** Outbound destinations to redirect; 'all' for `*`. */
  readonly includeOutboundCidrs: 'all' | readonly Cidr[];
  readonly excludeOutboundCidrs: readonly Cidr[];
  readonly ipv6: IPv6Mode;
  readonly backend: BackendMode;
  readonly dryRun: boolean;
  readonly cleanup: boolean;
  readonly validate: boolean;
  readonly help: boolean;
}

export const DEFAULT_PROXY_UID = 1337;
export const DEFAULT_OUTBOUND_PORT = 15001;
export const DEFAULT_INBOUND_PORT = 15006;
/** The proxy's own ports, never intercepted: health and metrics (kubelet probes, Prometheus) and admin (loopback only anyway). */
const PROXY_OWN_PORTS: ReadonlyMap<number, string> = new Map([
  [15020, 'health and metrics'],
  [15000, 'admin'],
]);
/** The proxy's admin (15000) and health/metrics (15020) ports. */
export const ALWAYS_EXCLUDED_INBOUND_PORTS: readonly PortRange[] = [...PROXY_OWN_PORTS.keys()].map((port) => ({ from: port, to: port }));

const STRING_FLAGS = [
  'proxy-uid',
  'proxy-gid',
  'outbound-port',
  'inbound-port',
  'inbound-ports',
  'exclude-inbound-ports',
  'exclude-outbound-ports',
  'include-outbound-cidrs',
  'exclude-outbound-cidrs',
  'ipv6',
  'backend',
] as const;
const BOOLEAN_FLAGS = ['dry-run', 'cleanup', 'validate'] as const;

type StringFlag = (typeof STRING_FLAGS)[number];
type BooleanFlag = (typeof BOOLEAN_FLAGS)[number];

/** `proxy-uid` → `MESHLET_PROXY_UID`. */
export function envName(flag: string): string {
  return `MESHLET_${flag.toUpperCase().replaceAll('-', '_')}`;
}

/** Every variable `meshlet init` reads (the proxy accepts them too, so a pod can share one set). */
export const INIT_ENV_VARIABLES: readonly string[] = [...STRING_FLAGS, ...BOOLEAN_FLAGS].map(envName);

export function parseInitOptions(argv: readonly string[], env: NodeJS.ProcessEnv): InitOptions {
  const flags = parseFlags(argv);

  /** The raw value and where it came from (for error messages), or undefined when unset. */
  const raw = (flag: StringFlag): { text: string; source: string } | undefined => {
    const fromFlag = flags[flag];
    if (typeof fromFlag === 'string') return { text: fromFlag, source: `--${flag}` };
    const fromEnv = env[envName(flag)];
    // An empty variable is how pod specs leave a setting alone; treat it as unset for
    // scalars. Lists read it as an empty list (see the list readers below).
    if (fromEnv !== undefined && (fromEnv.trim() !== '' || isListFlag(flag))) return { text: fromEnv, source: envName(flag) };
    return undefined;
  };

  const integer = (flag: StringFlag, fallback: number, min: number, max: number) => {
    const v = raw(flag);
    return v ? parseInteger(v.text, v.source, min, max) : fallback;
  };
  /** A port the proxy listens on: not one of its own ports that are never intercepted. */
  const listenerPort = (flag: StringFlag, fallback: number) => {
    const v = raw(flag);
    if (!v) return fallback;
    const value = parsePort(v.text, v.source);
    const role = PROXY_OWN_PORTS.get(value);
    if (role !== undefined) throw usage(`${v.source}: ${value} is the proxy's ${role} port, which is never intercepted; choose another port`);
    return value;
  };
  const ports = (flag: StringFlag) => {
    const v = raw(flag);
    return v ? parsePortList(v.text, v.source) : [];
  };
  const cidrs = (flag: StringFlag) => {
    const v = raw(flag);
    return v ? parseCidrList(v.text, v.source) : [];
  };
  const choice = <T extends string>(flag: StringFlag, allowed: readonly T[], fallback: T): T => {
    const v = raw(flag);
    if (!v) return fallback;
    const text = v.text.trim().toLowerCase();
    if (!(allowed as readonly string[]).includes(text)) {
      throw usage(`${v.source}: '${v.text}' is not one of ${allowed.join(', ')}`);
    }
    return text as T;
  };
  const bool = (flag: BooleanFlag): boolean => {
    const fromFlag = flags[flag];
    if (typeof fromFlag === 'boolean') return fromFlag;
    const fromEnv = env[envName(flag)]?.trim().toLowerCase();
    if (fromEnv === undefined || fromEnv === '') return false;
    if (['true', '1', 'yes', 'on'].includes(fromEnv)) return true;
    if (['false', '0', 'no', 'off'].includes(fromEnv)) return false;
    throw usage(`${envName(flag)}: '${env[envName(flag)]}' is not a boolean (true or false)`);
  };

  // 2^32 - 1 is the kernel's "no id" marker, so the largest usable id is one less.
  const proxyUid = integer('proxy-uid', DEFAULT_PROXY_UID, 0, 4294967294);
  const proxyGid = integer('proxy-gid', proxyUid, 0, 4294967294);
  const outboundPort = listenerPort('outbound-port', DEFAULT_OUTBOUND_PORT);
  const inboundPort = listenerPort('inbound-port', DEFAULT_INBOUND_PORT);
  if (outboundPort === inboundPort) {
    throw usage(`--outbound-port and --inbound-port must differ (both are ${outboundPort})`);
  }

  const options: InitOptions = {
    proxyUid,
    proxyGid,
    outboundPort,
    inboundPort,
    inboundPorts: wildcardOr(raw('inbound-ports'), parsePortList),
    excludeInboundPorts: ports('exclude-inbound-ports'),
    excludeOutboundPorts: ports('exclude-outbound-ports'),
    includeOutboundCidrs: wildcardOr(raw('include-outbound-cidrs'), parseCidrList),
    excludeOutboundCidrs: cidrs('exclude-outbound-cidrs'),
    ipv6: choice<IPv6Mode>('ipv6', ['auto', 'on', 'off'], 'auto'),
    backend: choice<BackendMode>('backend', ['auto', 'nft', 'legacy'], 'auto'),
    dryRun: bool('dry-run'),
    cleanup: bool('cleanup'),
    validate: bool('validate'),
    help: flags.help === true,
  };
  if (options.cleanup && options.validate) {
    throw usage('--cleanup and --validate cannot be combined (validation checks installed rules)');
  }
  return options;
}

function isListFlag(flag: StringFlag): boolean {
  return flag.endsWith('-ports') || flag.endsWith('-cidrs');
}

/** `*` (alone) means everything; unset means everything too; otherwise a list. */
function wildcardOr<T>(
  value: { text: string; source: string } | undefined,
  parse: (text: string, source: string) => T[],
): 'all' | T[] {
  if (value === undefined || value.text.trim() === '*') return 'all';
  if (value.text.split(',').some((entry) => entry.trim() === '*')) {
    throw usage(`${value.source}: '${value.text}' mixes '*' with other entries; use '*' alone or a list`);
  }
  return parse(value.text, value.source);
}

type ParsedFlags = Partial<Record<StringFlag, string> & Record<BooleanFlag | 'help', boolean>>;

function parseFlags(argv: readonly string[]): ParsedFlags {
  const options: Record<string, OptionSpec> = {};
  for (const flag of STRING_FLAGS) options[flag] = { type: 'string' };
  for (const flag of BOOLEAN_FLAGS) options[flag] = { type: 'boolean' };
  // negatable: `--no-validate` beats MESHLET_VALIDATE=true, as flags beat env.
  return parseOptions(argv, options, { command: 'init', negatable: true }) as ParsedFlags;
}

export const INIT_USAGE = `usage: meshlet init [flags]

Installs the netfilter rules that send this network namespace's TCP traffic through
the meshlet proxy: inbound to --inbound-port, outbound to --outbound-port. Every flag
can also be set as MESHLET_<FLAG> in the environment (e.g. MESHLET_PROXY_UID=1337,
MESHLET_DRY_RUN=true); a flag wins over the environment.

  --proxy-uid N                 UID of the proxy; its traffic is never redirected (1337)
  --proxy-gid N                 GID of the proxy; its traffic is never redirected (= uid)
  --outbound-port N             where outbound connections are redirected (15001)
  --inbound-port N              where inbound connections are redirected (15006)
  --inbound-ports LIST|*        inbound destination ports to redirect (*)
  --exclude-inbound-ports LIST  inbound ports never redirected; 15020 and 15000 always are
  --exclude-outbound-ports LIST outbound destination ports never redirected
  --include-outbound-cidrs LIST|*  only these outbound destinations are redirected (*)
  --exclude-outbound-cidrs LIST outbound destinations never redirected
  --ipv6 auto|on|off            IPv6 rules: auto = when the namespace has a global IPv6 address
  --backend auto|nft|legacy     iptables flavour: auto = the one that works and already has rules
  --dry-run                     print the iptables-restore input; change nothing
  --cleanup                     remove every MESHLET_* chain and every jump to one
  --validate                    after installing, prove that redirection works (exit 6 if not)
  -h, --help                    this text

LIST is comma-separated: ports and ranges (80,8000-8100) or CIDRs (10.0.0.0/8,fd00::/8).
Exit codes: 0 ok, 1 other failure, 2 usage, 3 no iptables, 4 permission, 5 kernel lacks nat/REDIRECT, 6 validation failed.
See docs/init.md.`;
