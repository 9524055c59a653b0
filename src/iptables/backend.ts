import type { Exec } from './exec.ts';
import { classifyFailure, failureDetail, failureError, type FailureKind } from './failures.ts';
import type { Family } from './rules.ts';
import { countRuleLines } from './save-format.ts';

// Which iptables: nft (nf_tables kernel API) or legacy (x_tables). Both can be present
// and both can hold rules in the same namespace, and then both apply — the classic
// "rules are there but nothing happens" mismatch. So auto mode picks the backend that
// works here and already holds rules (a CNI plugin may have put some there), the way
// Kubernetes' iptables-wrapper does; with no rules anywhere, nft.

export type Backend = 'nft' | 'legacy';
export const BACKENDS: readonly Backend[] = ['nft', 'legacy'];

type Tool = '' | '-save' | '-restore';

/** `iptables-nft-restore`, `ip6tables-legacy-save`, ... */
export function binary(backend: Backend, family: Family, tool: Tool = ''): string {
  return `${family === 6 ? 'ip6tables' : 'iptables'}-${backend}${tool}`;
}

/** Seconds to wait for the legacy xtables lock (nft ignores the flag). */
export const LOCK_WAIT = ['-w', '10'];

export interface Probe {
  readonly backend: Backend;
  readonly works: boolean;
  /** Why it does not work. */
  readonly failure?: { readonly kind: FailureKind; readonly detail: string };
  /** Rules and user chains it holds in this namespace, IPv4 and IPv6 together. */
  readonly ruleLines: number;
}

export interface BackendChoice {
  readonly backend: Backend;
  /** One phrase for the summary line: why this one. */
  readonly reason: string;
  readonly probes: readonly Probe[];
}

/**
 * Does `backend` work here, and how many rules does it hold? Read-only: *-save prints
 * the tables that exist and creates none. (Listing the nat table with iptables-legacy,
 * `-t nat -S`, creates that table in the namespace for good: x_tables has no way to
 * remove it again, so probing every backend that way left an empty legacy nat table in
 * every pod meshed with iptables-nft.)
 */
export async function probeBackend(exec: Exec, backend: Backend): Promise<Probe> {
  let ruleLines = 0;
  for (const family of [4, 6] as const) {
    const saved = await exec(binary(backend, family, '-save'), []);
    if (saved.code === 0) ruleLines += countRuleLines(saved.stdout);
    else if (family === 4) return { backend, works: false, failure: { kind: classifyFailure(saved), detail: failureDetail(saved) }, ruleLines: 0 };
  }
  return { backend, works: true, ruleLines };
}

/** The decision alone, from probe results (unit-tested with fake probes). */
export function chooseBackend(mode: 'auto' | Backend, probes: readonly Probe[]): BackendChoice {
  if (mode !== 'auto') {
    const probe = probes.find((p) => p.backend === mode);
    if (!probe?.works) {
      const failure = probe?.failure ?? { kind: 'missing' as const, detail: 'not probed' };
      throw failureError(failure.kind, `--backend ${mode}: ${binary(mode, 4)} does not work: ${failure.detail}`);
    }
    return { backend: mode, reason: 'forced by --backend', probes };
  }
  const working = probes.filter((p) => p.works);
  if (working.length === 0) {
    const tried = probes.map((p) => `${binary(p.backend, 4)} (${p.failure?.detail ?? 'unknown'})`).join('; ');
    throw failureError(worstFailure(probes), `no working iptables backend: tried ${tried}`);
  }
  const [first, second] = [...working].sort((a, b) => b.ruleLines - a.ruleLines || rank(a) - rank(b));
  let reason: string;
  if (!second) reason = `auto: the only one that works (${probes.filter((p) => !p.works).map((p) => `${p.backend}: ${p.failure?.detail}`).join('; ')})`;
  else if (first!.ruleLines > second.ruleLines) reason = `auto: holds ${first!.ruleLines} rule lines here, ${second.backend} holds ${second.ruleLines}`;
  else reason = `auto: both work and ${first!.ruleLines === 0 ? 'neither holds rules' : 'both hold as many rules'}; nft preferred`;
  return { backend: first!.backend, reason, probes };
}

function rank(probe: Probe): number {
  return BACKENDS.indexOf(probe.backend);
}

/**
 * When nothing works, the most actionable cause wins: a permission problem is fixed by
 * running as root, a kernel problem by another node image, a missing binary by apt.
 */
function worstFailure(probes: readonly Probe[]): FailureKind {
  const kinds = probes.map((p) => p.failure?.kind);
  if (kinds.includes('permission')) return 'permission';
  if (kinds.includes('kernel')) return 'kernel';
  return 'missing';
}

/**
 * Probes (read-only), chooses, and, unless `readOnly`, confirms the choice by listing
 * its nat table (`-t nat -S`): that finds a kernel without nat support for this backend
 * before anything is applied, and in auto mode falls back to the other backend. Only
 * the chosen backend is listed, which is the one whose nat table init fills anyway.
 */
export async function detectBackend(exec: Exec, mode: 'auto' | Backend, readOnly = false): Promise<BackendChoice> {
  const candidates = mode === 'auto' ? BACKENDS : [mode];
  const probes: Probe[] = [];
  for (const backend of candidates) probes.push(await probeBackend(exec, backend));
  for (;;) {
    const choice = chooseBackend(mode, probes);
    if (readOnly) return choice;
    const check = await exec(binary(choice.backend, 4), [...LOCK_WAIT, '-t', 'nat', '-S']);
    if (check.code === 0) return choice;
    const index = probes.findIndex((p) => p.backend === choice.backend);
    probes[index] = { backend: choice.backend, works: false, failure: { kind: classifyFailure(check), detail: failureDetail(check) }, ruleLines: 0 };
  }
}
