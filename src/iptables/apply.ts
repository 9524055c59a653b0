import { binary, LOCK_WAIT, type Backend } from './backend.ts';
import type { Exec } from './exec.ts';
import { commandError, classifyFailure, failureDetail, failureError } from './failures.ts';
import type { RestorePlan } from './plan.ts';
import { renderDrops, renderRestore } from './render.ts';
import type { Family } from './rules.ts';
import { parseSave, tableBlock, type SavedTable } from './save-format.ts';

// Applying restore plans. Each family is one `iptables-restore --noflush` transaction,
// so it lands entirely or not at all. Across families there is no kernel transaction:
// if IPv6 fails after IPv4 succeeded, IPv4 is put back exactly as it was, from the
// iptables-save snapshot taken just before, so a failed init never leaves rules for
// one family only.

export interface FamilyState {
  readonly family: Family;
  /** Raw iptables-save output, kept as the rollback snapshot. */
  readonly text: string;
  readonly tables: readonly SavedTable[];
}

export async function readState(exec: Exec, backend: Backend, family: Family): Promise<FamilyState> {
  const command = binary(backend, family, '-save');
  const result = await exec(command, []);
  if (result.code !== 0) throw commandError(command, result);
  return { family, text: result.stdout, tables: parseSave(result.stdout) };
}

export interface FamilyChange {
  readonly plan: RestorePlan;
  readonly before: FamilyState;
}

/** Apply every change in order, rolling back the ones already applied if a later one fails. */
export async function applyChanges(exec: Exec, backend: Backend, changes: readonly FamilyChange[]): Promise<void> {
  const applied: FamilyChange[] = [];
  for (const change of changes) {
    const steps: Array<[input: string, flags: readonly string[]]> = [
      [renderRestore(change.plan), [...LOCK_WAIT, '--noflush']],
      [renderDrops(change.plan), LOCK_WAIT],
    ];
    for (const [input, flags] of steps) {
      if (input === '') continue;
      const command = binary(backend, change.plan.family, '-restore');
      const result = await exec(command, flags, input);
      // A change counts as applied (to roll back) from its first step that succeeded.
      if (result.code === 0) {
        if (!applied.includes(change)) applied.push(change);
        continue;
      }
      const kind = classifyFailure(result);
      const cause = `${command} failed for IPv${change.plan.family}: ${failureDetail(result)}`;
      if (applied.length === 0) throw failureError(kind, cause);
      const rollback = await rollBack(exec, backend, applied);
      throw failureError(kind, `${cause}; ${rollback}`);
    }
  }
}

/** Put the tables each applied change touched back as they were; returns what happened, for the message. */
async function rollBack(exec: Exec, backend: Backend, applied: readonly FamilyChange[]): Promise<string> {
  const problems: string[] = [];
  for (const change of [...applied].reverse()) {
    // Without --noflush, restoring a table replaces its whole content with the snapshot.
    // A table absent from the snapshot is restored as an empty one (nft: deleted).
    const input = change.plan.tables.map((t) => tableBlock(change.before.text, t.table) ?? `*${t.table}\nCOMMIT\n`).join('');
    const command = binary(backend, change.plan.family, '-restore');
    const result = await exec(command, [...LOCK_WAIT], input);
    if (result.code !== 0) problems.push(`IPv${change.plan.family}: ${failureDetail(result)}`);
  }
  const families = applied.map((c) => `IPv${c.plan.family}`).join(', ');
  if (problems.length > 0) {
    return `rolling back ${families} ALSO FAILED (${problems.join('; ')}); inspect with ${binary(backend, 4, '-save')}`;
  }
  return `rolled back ${families}, nothing was changed`;
}
