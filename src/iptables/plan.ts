import { renderRuleLine, renderRuleSpec } from './render.ts';
import { CHAIN_PREFIX, type Family, type RuleSet } from './rules.ts';
import { ruleTarget, type SavedRule, type SavedTable } from './save-format.ts';

// What to change, given what the kernel already has (parsed iptables-save output).
// The rule set is declarative; this turns "rules wanted" + "rules present" into one
// iptables-restore transaction per family, so that running init again converges to
// exactly the same rules instead of piling up jumps, and cleanup touches nothing that
// is not meshlet's.

export interface TablePlan {
  readonly table: string;
  /** Chains to create or flush (`:NAME - [0:0]`). */
  readonly declareChains: readonly string[];
  /** Rules to delete by spec (`-D CHAIN spec`): stale or duplicate jumps into our chains. */
  readonly deleteRules: readonly SavedRule[];
  /** Our chains that should no longer exist (`-F` then `-X`). */
  readonly deleteChains: readonly string[];
  /** `-A ...` lines to add. */
  readonly appendLines: readonly string[];
  /**
   * After the changes above the table holds nothing (built-in chains, ACCEPT, no rules):
   * delete it, so that iptables-save prints what it printed before init created it.
   */
  readonly drop?: boolean;
}

export interface RestorePlan {
  readonly family: Family;
  readonly tables: readonly TablePlan[];
}

const isOurs = (chain: string) => chain.startsWith(CHAIN_PREFIX);

/** Install `ruleSet` on top of `present`: flush and refill our chains, add only missing jumps. */
export function planInstall(ruleSet: RuleSet, present: readonly SavedTable[]): RestorePlan {
  const tables: TablePlan[] = [];
  const names = new Set([ruleSet.table, ...present.map((t) => t.name)]);
  for (const name of names) {
    const saved = present.find((t) => t.name === name);
    const wanted = name === ruleSet.table;
    const wantedJumps = wanted ? ruleSet.jumps.map((j) => ({ chain: j.chain, spec: renderRuleSpec(j) })) : [];
    const kept = new Set<number>();
    const deleteRules: SavedRule[] = [];
    for (const rule of jumpsIntoOurChains(saved)) {
      const match = wantedJumps.findIndex((j, i) => !kept.has(i) && j.chain === rule.chain && j.spec === rule.spec);
      if (match === -1) deleteRules.push(rule);
      else kept.add(match);
    }
    const wantedChains = wanted ? ruleSet.chains : [];
    const deleteChains = (saved?.chains ?? []).map((c) => c.name).filter((c) => isOurs(c) && !wantedChains.includes(c));
    const appendLines = wanted
      ? [
          ...ruleSet.rules.map(renderRuleLine),
          ...ruleSet.jumps.filter((_, i) => !kept.has(i)).map(renderRuleLine),
        ]
      : [];
    if (wanted || deleteRules.length > 0 || deleteChains.length > 0) {
      tables.push({ table: name, declareChains: wantedChains, deleteRules, deleteChains, appendLines });
    }
  }
  return { family: ruleSet.family, tables };
}

/**
 * Remove every MESHLET_* chain and every jump into one, in every table; nothing else.
 * With `dropEmptyTables` (iptables-nft, where a table can be deleted), a table left
 * holding nothing is deleted too: init created it, or it was equally empty and inert.
 * iptables-legacy cannot remove a table once it exists in a namespace.
 */
export function planCleanup(family: Family, present: readonly SavedTable[], dropEmptyTables = false): RestorePlan {
  const tables: TablePlan[] = [];
  for (const saved of present) {
    const deleteRules = jumpsIntoOurChains(saved);
    const deleteChains = saved.chains.map((c) => c.name).filter(isOurs);
    if (deleteRules.length > 0 || deleteChains.length > 0) {
      const drop = dropEmptyTables && leftEmpty(saved, deleteRules);
      tables.push({ table: saved.name, declareChains: [], deleteRules, deleteChains, appendLines: [], drop });
    }
  }
  return { family, tables };
}

/** Does the table hold nothing once `deleted` and everything in our chains are gone? */
function leftEmpty(saved: SavedTable, deleted: readonly SavedRule[]): boolean {
  const chainsLeft = saved.chains.filter((c) => !isOurs(c.name));
  const rulesLeft = saved.rules.filter((r) => !isOurs(r.chain) && !deleted.includes(r));
  return rulesLeft.length === 0 && chainsLeft.every((c) => c.policy === 'ACCEPT');
}

/** Rules in chains that are not ours which jump or go to one of ours. */
function jumpsIntoOurChains(saved: SavedTable | undefined): SavedRule[] {
  return (saved?.rules ?? []).filter((r) => !isOurs(r.chain) && isOurs(ruleTarget(r.spec) ?? ''));
}

/**
 * What the kernel would hold after installing `ruleSet` into an empty namespace; used
 * to show a cleanup dry-run when the real rules cannot be read (no privileges).
 */
export function installedState(ruleSet: RuleSet): SavedTable[] {
  const rules = [...ruleSet.rules, ...ruleSet.jumps].map((r) => ({ chain: r.chain, spec: renderRuleSpec(r) }));
  return [{ name: ruleSet.table, chains: ruleSet.chains.map((name) => ({ name, policy: '-' })), rules }];
}

export function isEmptyPlan(plan: RestorePlan): boolean {
  return plan.tables.length === 0;
}
