import { readFileSync } from 'node:fs';
import type { IPv6Mode } from './options.ts';
import type { Family } from './rules.ts';

// Which address families get rules. IPv4 always. IPv6 when asked (`on`), or in `auto`
// when the namespace has a global-scope IPv6 address: with one, IPv6 connections would
// bypass the proxy unless ip6tables redirects them too; without one there is nothing
// to intercept, and ip6tables may not even work (IPv6 disabled).

/**
 * /proc/net/if_inet6 lists this namespace's IPv6 addresses, world-readable (so dry-run
 * needs no privileges): `<address> <ifindex> <prefixlen> <scope> <flags> <ifname>`,
 * scope 00 = global (which includes ULAs such as fd00::/8). Missing file = no IPv6.
 */
export function hasGlobalIPv6(read: (path: string) => string = (p) => readFileSync(p, 'utf8')): boolean {
  let text: string;
  try {
    text = read('/proc/net/if_inet6');
  } catch {
    return false;
  }
  return text.split('\n').some((line) => line.trim().split(/\s+/)[3] === '00');
}

export interface FamilyDecision {
  readonly families: readonly Family[];
  /** Why IPv6 is in or out, for the summary. */
  readonly ipv6Reason: string;
}

export function decideFamilies(mode: IPv6Mode, globalIPv6: boolean): FamilyDecision {
  if (mode === 'on') return { families: [4, 6], ipv6Reason: '--ipv6 on' };
  if (mode === 'off') return { families: [4], ipv6Reason: '--ipv6 off' };
  return globalIPv6
    ? { families: [4, 6], ipv6Reason: 'the namespace has a global IPv6 address' }
    : { families: [4], ipv6Reason: 'no global IPv6 address in this namespace (--ipv6 auto)' };
}
