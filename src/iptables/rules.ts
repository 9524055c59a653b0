import { ALWAYS_EXCLUDED_INBOUND_PORTS, type InitOptions } from './options.ts';
import { formatCidr, formatPortList, type Cidr, type PortRange } from './values.ts';

// The rule model: options in, the rules for one address family out, each with a
// comment saying why it is there. Pure data — rendering to iptables-restore text lives
// in render.ts, and what to do about rules already in the kernel in plan.ts.
//
// Shape (nat table only; REDIRECT exists only there):
//
//   PREROUTING  -p tcp → MESHLET_INBOUND
//     RETURN for excluded ports (always 15020 and 15000), then REDIRECT → inbound port
//     (all ports, or only --inbound-ports).
//   OUTPUT      -p tcp → MESHLET_OUTPUT
//     RETURN for the proxy's UID and GID (its own connections must leave as they are,
//     or every upstream connection would loop back into it), for loopback, excluded
//     ports and excluded CIDRs; then REDIRECT → outbound port (everything, or only
//     --include-outbound-cidrs).
//
// An app connecting to its own pod IP is redirected to the outbound proxy like any
// other destination; the proxy then connects as its UID, which RETURNs, and locally
// generated traffic never crosses PREROUTING's nat, so there is no second redirect
// and no loop.

export type Family = 4 | 6;

export const TABLE = 'nat';
export const INBOUND_CHAIN = 'MESHLET_INBOUND';
export const OUTPUT_CHAIN = 'MESHLET_OUTPUT';
/** Every chain meshlet owns starts with this; cleanup removes all of them. */
export const CHAIN_PREFIX = 'MESHLET_';

export type Target =
  | { readonly kind: 'RETURN' }
  | { readonly kind: 'REDIRECT'; readonly toPort: number }
  | { readonly kind: 'jump'; readonly chain: string };

export interface Rule {
  readonly chain: string;
  /** `-d`; absent means any destination. */
  readonly destination?: Cidr;
  /** `-m tcp --dport`; absent means any port. */
  readonly dport?: PortRange;
  readonly uidOwner?: number;
  readonly gidOwner?: number;
  readonly target: Target;
  /** Why the rule exists; rendered as `-m comment --comment "meshlet: ..."`. */
  readonly comment: string;
}

export interface RuleSet {
  readonly family: Family;
  readonly table: typeof TABLE;
  /** Chains meshlet creates, in declaration order. */
  readonly chains: readonly string[];
  /** Rules inside meshlet's chains, in order. */
  readonly rules: readonly Rule[];
  /** The jumps from built-in chains into meshlet's chains (added only when missing). */
  readonly jumps: readonly Rule[];
}

const LOOPBACK: Record<Family, Cidr> = {
  4: { family: 4, address: '127.0.0.0', prefix: 8 },
  6: { family: 6, address: '::1', prefix: 128 },
};

export function buildRuleSet(options: InitOptions, family: Family): RuleSet {
  return {
    family,
    table: TABLE,
    chains: [INBOUND_CHAIN, OUTPUT_CHAIN],
    rules: [...inboundRules(options), ...outboundRules(options, family)],
    jumps: [
      { chain: 'PREROUTING', target: { kind: 'jump', chain: INBOUND_CHAIN }, comment: 'inbound TCP to the meshlet proxy' },
      { chain: 'OUTPUT', target: { kind: 'jump', chain: OUTPUT_CHAIN }, comment: 'outbound TCP to the meshlet proxy' },
    ],
  };
}

function inboundRules(options: InitOptions): Rule[] {
  const rules: Rule[] = [];
  for (const range of ALWAYS_EXCLUDED_INBOUND_PORTS) {
    rules.push({ chain: INBOUND_CHAIN, dport: range, target: { kind: 'RETURN' }, comment: `proxy port ${formatPortList([range])} is not intercepted` });
  }
  for (const range of options.excludeInboundPorts) {
    rules.push({ chain: INBOUND_CHAIN, dport: range, target: { kind: 'RETURN' }, comment: `excluded inbound port ${formatPortList([range])}` });
  }
  const redirect: Target = { kind: 'REDIRECT', toPort: options.inboundPort };
  if (options.inboundPorts === 'all') {
    rules.push({ chain: INBOUND_CHAIN, target: redirect, comment: `inbound TCP to the proxy on ${options.inboundPort}` });
  } else {
    for (const range of options.inboundPorts) {
      rules.push({ chain: INBOUND_CHAIN, dport: range, target: redirect, comment: `inbound port ${formatPortList([range])} to the proxy on ${options.inboundPort}` });
    }
  }
  return rules;
}

function outboundRules(options: InitOptions, family: Family): Rule[] {
  const rules: Rule[] = [
    { chain: OUTPUT_CHAIN, uidOwner: options.proxyUid, target: { kind: 'RETURN' }, comment: `traffic of the proxy uid ${options.proxyUid} is not redirected` },
    { chain: OUTPUT_CHAIN, gidOwner: options.proxyGid, target: { kind: 'RETURN' }, comment: `traffic of the proxy gid ${options.proxyGid} is not redirected` },
    { chain: OUTPUT_CHAIN, destination: LOOPBACK[family], target: { kind: 'RETURN' }, comment: 'loopback traffic is not redirected' },
  ];
  for (const range of options.excludeOutboundPorts) {
    rules.push({ chain: OUTPUT_CHAIN, dport: range, target: { kind: 'RETURN' }, comment: `excluded outbound port ${formatPortList([range])}` });
  }
  for (const cidr of options.excludeOutboundCidrs.filter((c) => c.family === family)) {
    rules.push({ chain: OUTPUT_CHAIN, destination: cidr, target: { kind: 'RETURN' }, comment: `excluded outbound destination ${formatCidr(cidr)}` });
  }
  const redirect: Target = { kind: 'REDIRECT', toPort: options.outboundPort };
  if (options.includeOutboundCidrs === 'all') {
    rules.push({ chain: OUTPUT_CHAIN, target: redirect, comment: `outbound TCP to the proxy on ${options.outboundPort}` });
  } else {
    // Include-CIDRs of the other family do not apply here; with none of this family,
    // nothing of this family is redirected (that is what "only these" means).
    for (const cidr of options.includeOutboundCidrs.filter((c) => c.family === family)) {
      rules.push({ chain: OUTPUT_CHAIN, destination: cidr, target: redirect, comment: `outbound TCP to ${formatCidr(cidr)} to the proxy on ${options.outboundPort}` });
    }
  }
  return rules;
}
