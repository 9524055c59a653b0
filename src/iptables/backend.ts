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
 * Does `backend` work here, and how many rules does it hold? `sideEffectFree` (dry-run)
 * only reads with *-save: listing the nat table with iptables-legacy creates that table
 * in the namespace, which a dry-run must not do.
 */
export async function probeBackend(exec: Exec, backend: Backend, sideEffectFree = false): Promise<Probe> {
  const check = sideEffectFree
    ? await exec(binary(backend, 4, '-save'), [])
    : await exec(binary(backend, 4), [...LOCK_WAIT, '-t', 'nat', '-S']);
  if (check.code !== 0) {
    return { backend, works: false, failure: { kind: classifyFailure(check), detail: failureDetail(check) }, ruleLines: 0 };
  }
  let ruleLines = 0;
  for (const family of [4, 6] as const) {
    const saved = await exec(binary(backend, family, '-save'), []);
    if (saved.code === 0) ruleLines += countRuleLines(saved.stdout);
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

export async function detectBackend(exec: Exec, mode: 'auto' | Backend, sideEffectFree = false): Promise<BackendChoice> {
  const candidates = mode === 'auto' ? BACKENDS : [mode];
  const probes: Probe[] = [];
  for (const backend of candidates) probes.push(await probeBackend(exec, backend, sideEffectFree));
  return chooseBackend(mode, probes);
}
