// Reading iptables-save output: which tables, chains and rules exist. init uses it to
// add only the jumps that are missing and to find every MESHLET_* chain for cleanup;
// the tests use normalizeSave to compare rulesets.

export interface SavedChain {
  readonly name: string;
  /** `ACCEPT`/`DROP` for built-in chains, `-` for user chains. */
  readonly policy: string;
}

export interface SavedRule {
  readonly chain: string;
  /** Everything after `-A CHAIN `, exactly as printed (re-usable in `-D CHAIN spec`). */
  readonly spec: string;
}

export interface SavedTable {
  readonly name: string;
  readonly chains: readonly SavedChain[];
  readonly rules: readonly SavedRule[];
}

export function parseSave(text: string): SavedTable[] {
  const tables: SavedTable[] = [];
  let current: { name: string; chains: SavedChain[]; rules: SavedRule[] } | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) {
      current = { name: line.slice(1).trim(), chains: [], rules: [] };
      tables.push(current);
    } else if (!current) {
      continue; // comments and warnings before the first table
    } else if (line.startsWith(':')) {
      const [name = '', policy = '-'] = line.slice(1).split(' ');
      current.chains.push({ name, policy });
    } else if (line.startsWith('-A ')) {
      const rest = line.slice(3);
      const space = rest.indexOf(' ');
      current.rules.push(space === -1 ? { chain: rest, spec: '' } : { chain: rest.slice(0, space), spec: rest.slice(space + 1) });
    } else if (line.trim() === 'COMMIT') {
      current = undefined;
    }
  }
  return tables;
}

/** Split a rule spec into arguments the way iptables-restore does (double quotes group, `\"` escapes). */
export function tokenize(spec: string): string[] {
  const tokens: string[] = [];
  let token = '';
  let inToken = false;
  let quoted = false;
  for (let i = 0; i < spec.length; i++) {
    const ch = spec[i]!;
    if (ch === '\\' && quoted && spec[i + 1] === '"') {
      token += '"';
      i++;
    } else if (ch === '"') {
      quoted = !quoted;
      inToken = true;
    } else if (!quoted && /\s/.test(ch)) {
      if (inToken) tokens.push(token);
      token = '';
      inToken = false;
    } else {
      token += ch;
      inToken = true;
    }
  }
  if (inToken) tokens.push(token);
  return tokens;
}

/** The chain or target a rule jumps (`-j`) or goes (`-g`) to. */
export function ruleTarget(spec: string): string | undefined {
  const tokens = tokenize(spec);
  for (let i = 0; i < tokens.length - 1; i++) {
    if (['-j', '--jump', '-g', '--goto'].includes(tokens[i]!)) return tokens[i + 1];
  }
  return undefined;
}

/** Non-policy content: any rule or user-defined chain (what "already holds rules" means). */
export function countRuleLines(text: string): number {
  return parseSave(text).reduce((n, t) => n + t.rules.length + t.chains.filter((c) => c.policy === '-').length, 0);
}

/**
 * A ruleset as comparable text: no `#` lines, counters zeroed, and tables that hold only
 * built-in chains with ACCEPT policy and no rules dropped — iptables-nft prints nothing
 * for a table that does not exist, and such a table is behaviourally the same as none
 * (iptables-legacy even creates one as soon as anything lists it).
 */
export function normalizeSave(text: string): string {
  const out: string[] = [];
  for (const table of parseSave(text)) {
    const empty = table.rules.length === 0 && table.chains.every((c) => c.policy === 'ACCEPT');
    if (empty) continue;
    out.push(`*${table.name}`);
    for (const c of table.chains) out.push(`:${c.name} ${c.policy} [0:0]`);
    for (const r of table.rules) out.push(`-A ${r.chain} ${r.spec}`.trimEnd());
    out.push('COMMIT');
  }
  return out.join('\n');
}

/** The raw lines of one table (`*name` … `COMMIT`) from iptables-save output, or undefined. */
export function tableBlock(text: string, table: string): string | undefined {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l.trim() === `*${table}`);
  if (start === -1) return undefined;
  const end = lines.findIndex((l, i) => i > start && l.trim() === 'COMMIT');
  if (end === -1) return undefined;
  return `${lines.slice(start, end + 1).join('\n')}\n`;
}
