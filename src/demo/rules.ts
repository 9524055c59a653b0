import { parseSave, ruleTarget } from '../iptables/save-format.ts';
import type { Pod } from '../testbed/netns.ts';
import { DemoFailure, firstLine } from './failure.ts';

// Installs the interception rules in a pod with the real `meshlet init`, then reads the
// nat table back to report where TCP is now redirected, from the tables themselves.

export interface Redirects {
  /** `--to-ports` of the REDIRECT rules reachable from PREROUTING (what arrives). */
  inbound: number[];
  /** `--to-ports` of the REDIRECT rules reachable from OUTPUT (what the pod sends). */
  outbound: number[];
}

export interface InstalledRules {
  /** The iptables binary `meshlet init` said it used, e.g. iptables-nft. */
  binary: string;
  v4: Redirects;
  /** Undefined when `meshlet init` installed no IPv6 rules. */
  v6: Redirects | undefined;
}

/** Follows the jumps from PREROUTING and OUTPUT through the nat table of an *-save dump. */
export function redirectTargets(save: string): Redirects {
  const nat = parseSave(save).find((t) => t.name === 'nat');
  const rulesOf = (chain: string) => nat?.rules.filter((r) => r.chain === chain) ?? [];
  const follow = (chain: string, seen: Set<string>): number[] => {
    if (seen.has(chain)) return [];
    seen.add(chain);
    const ports: number[] = [];
    for (const rule of rulesOf(chain)) {
      const target = ruleTarget(rule.spec);
      const redirect = target === 'REDIRECT' ? /--to-ports (\d+)/.exec(rule.spec) : null;
      if (redirect) ports.push(Number(redirect[1]));
      else if (target !== undefined && nat?.chains.some((c) => c.name === target)) ports.push(...follow(target, seen));
    }
    return [...new Set(ports)];
  };
  return { inbound: follow('PREROUTING', new Set()), outbound: follow('OUTPUT', new Set()) };
}

export async function installRules(pod: Pod): Promise<InstalledRules> {
  const result = await pod.init([]);
  if (result.code !== 0) {
    throw new DemoFailure(`meshlet init in pod ${pod.name} exited ${result.code ?? result.signal}: ${firstLine(result.stderr) || firstLine(result.stdout)}`);
  }
  // "meshlet init: IPv4 rules installed with iptables-nft (...)": read back with the same backend.
  const binaryFor = (family: 4 | 6) => new RegExp(`IPv${family} rules installed with (\\S+)`).exec(result.stdout)?.[1];
  const v4Binary = binaryFor(4);
  if (v4Binary === undefined) throw new DemoFailure(`meshlet init in pod ${pod.name} did not report installing IPv4 rules: ${firstLine(result.stdout)}`);
  const read = async (binary: string) => {
    const save = await pod.run([`${binary}-save`, '-t', 'nat']);
    if (save.code !== 0) throw new DemoFailure(`${binary}-save in pod ${pod.name} failed: ${firstLine(save.stderr)}`);
    return redirectTargets(save.stdout);
  };
  const v6Binary = binaryFor(6);
  return { binary: v4Binary, v4: await read(v4Binary), v6: v6Binary === undefined ? undefined : await read(v6Binary) };
}

/** Why these rules would not send a pod's TCP to the sidecar's listeners, or [] when they do. */
export function redirectProblems(rules: InstalledRules, ports: { inbound: number; outbound: number }): string[] {
  const problems: string[] = [];
  for (const [family, r] of [['IPv4', rules.v4], ['IPv6', rules.v6]] as const) {
    if (!r) continue;
    if (!r.inbound.includes(ports.inbound)) problems.push(`${family} inbound goes to ${r.inbound.join(', ') || 'nowhere'}, the sidecar listens on ${ports.inbound}`);
    if (!r.outbound.includes(ports.outbound)) problems.push(`${family} outbound goes to ${r.outbound.join(', ') || 'nowhere'}, the sidecar listens on ${ports.outbound}`);
  }
  return problems;
}

export function describeRules(rules: InstalledRules): string {
  const where = (r: Redirects) => `inbound → :${r.inbound.join(' :')}, outbound → :${r.outbound.join(' :')}`;
  const v4 = where(rules.v4);
  if (!rules.v6) return `${v4} (IPv4; no IPv6 rules)`;
  const v6 = where(rules.v6);
  return v4 === v6 ? `${v4} (IPv4 and IPv6)` : `${v4} (IPv4), ${v6} (IPv6)`;
}
