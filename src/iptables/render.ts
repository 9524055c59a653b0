import type { Rule, Target } from './rules.ts';
import type { RestorePlan, TablePlan } from './plan.ts';
import { formatCidr, formatPortMatch } from './values.ts';

// Rendering to iptables-restore input. Rules are spelled exactly the way iptables-save
// prints them (`-d` before `-p`, `-m tcp --dport`, the comment before `-j`), so a
// rule read back from the kernel compares equal to the one we rendered: that is how
// init recognises its own jumps and adds them only once.

export const COMMENT_PREFIX = 'meshlet: ';

/** The rule's arguments after `-A CHAIN`. */
export function renderRuleSpec(rule: Rule): string {
  const parts: string[] = [];
  if (rule.destination) parts.push('-d', formatCidr(rule.destination));
  parts.push('-p', 'tcp');
  if (rule.dport) parts.push('-m', 'tcp', '--dport', formatPortMatch(rule.dport));
  if (rule.uidOwner !== undefined) parts.push('-m', 'owner', '--uid-owner', String(rule.uidOwner));
  if (rule.gidOwner !== undefined) parts.push('-m', 'owner', '--gid-owner', String(rule.gidOwner));
  parts.push('-m', 'comment', '--comment', quote(COMMENT_PREFIX + rule.comment));
  parts.push(...renderTarget(rule.target));
  return parts.join(' ');
}

export function renderRuleLine(rule: Rule): string {
  return `-A ${rule.chain} ${renderRuleSpec(rule)}`;
}

function renderTarget(target: Target): string[] {
  switch (target.kind) {
    case 'RETURN':
      return ['-j', 'RETURN'];
    case 'REDIRECT':
      return ['-j', 'REDIRECT', '--to-ports', String(target.toPort)];
    case 'jump':
      return ['-j', target.chain];
  }
}

/**
 * Comments are ours. They stay within characters that every iptables-save prints back
 * verbatim (iptables-nft escapes an apostrophe as \'), and under the 256-byte limit,
 * so a saved rule compares equal to the rendered one.
 */
function quote(text: string): string {
  if (!/^[\w .,:/()\-]{1,255}$/.test(text)) throw new Error(`rule comment would not round-trip through iptables-save: ${text}`);
  return `"${text}"`;
}

/** One family's iptables-restore input (for `--noflush`); empty when there is nothing to do. */
export function renderRestore(plan: RestorePlan): string {
  return plan.tables.filter((t) => !t.drop).map(renderTable).join('');
}

/**
 * Input for iptables-restore WITHOUT --noflush that deletes the tables the plan drops:
 * an iptables-nft-restore of a table declared with nothing in it deletes the table.
 * Replacing a whole table is safe only because the plan found nothing but ours in it.
 */
export function renderDrops(plan: RestorePlan): string {
  return plan.tables.filter((t) => t.drop).map((t) => `*${t.table}\nCOMMIT\n`).join('');
}

function renderTable(t: TablePlan): string {
  const lines = [`*${t.table}`];
  // Declaring a chain creates it, or flushes it if it exists (with --noflush too).
  for (const chain of t.declareChains) lines.push(`:${chain} - [0:0]`);
  for (const rule of t.deleteRules) lines.push(`-D ${rule.chain} ${rule.spec}`);
  // Stale chains: flush them all before deleting any, since they may refer to each other.
  for (const chain of t.deleteChains) lines.push(`-F ${chain}`);
  for (const chain of t.deleteChains) lines.push(`-X ${chain}`);
  lines.push(...t.appendLines);
  lines.push('COMMIT');
  return `${lines.join('\n')}\n`;
}
