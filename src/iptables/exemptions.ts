import { parseSave, tokenize } from './save-format.ts';

// What installed rules say about the proxy's own traffic, read back from iptables-save
// output: whether outbound connections are redirected to the proxy's port, and which
// owners (UIDs, GIDs) are let through unredirected. The proxy compares this with the
// identity it runs under, since a proxy whose traffic is redirected loops on itself.

/** An owner match, first and last id: `--uid-owner 1337` is [1337, 1337], `1000-1999` [1000, 1999]. */
export type IdRange = readonly [from: number, to: number];

export interface OwnerExemptions {
  /** Some nat rule redirects to the outbound port: interception is on. */
  readonly redirects: boolean;
  /** UIDs and GIDs whose traffic a nat rule returns (or accepts) before any redirect. */
  readonly uids: readonly IdRange[];
  readonly gids: readonly IdRange[];
}

/**
 * Reads the nat tables in `saveText` (the output of one or more iptables-save and
 * ip6tables-save runs, concatenated). An exemption is a rule that matches an owner
 * (not negated) and jumps to RETURN or ACCEPT, as `meshlet init` writes them; other
 * matches on the same rule are not weighed.
 */
export function outboundExemptions(saveText: string, outboundPort: number): OwnerExemptions {
  let redirects = false;
  const uids: IdRange[] = [];
  const gids: IdRange[] = [];
  for (const table of parseSave(saveText)) {
    if (table.name !== 'nat') continue;
    for (const rule of table.rules) {
      const tokens = tokenize(rule.spec);
      const target = valueOf(tokens, '-j');
      if (target === 'REDIRECT' && valueOf(tokens, '--to-ports') === String(outboundPort)) redirects = true;
      if (target !== 'RETURN' && target !== 'ACCEPT') continue;
      const uid = ownerMatch(tokens, '--uid-owner');
      const gid = ownerMatch(tokens, '--gid-owner');
      // IPv4 and IPv6 rules (or two backends) usually say the same: keep each range once.
      if (uid && !uids.some(([from, to]) => from === uid[0] && to === uid[1])) uids.push(uid);
      if (gid && !gids.some(([from, to]) => from === gid[0] && to === gid[1])) gids.push(gid);
    }
  }
  return { redirects, uids, gids };
}

/** Whether a process with this UID and GID is let through by `exemptions`. */
export function isExempt(exemptions: OwnerExemptions, uid: number, gid: number): boolean {
  const within = (ranges: readonly IdRange[], id: number) => ranges.some(([from, to]) => id >= from && id <= to);
  return within(exemptions.uids, uid) || within(exemptions.gids, gid);
}

/** `1337`, `1000-1999` for messages. */
export function formatRanges(ranges: readonly IdRange[]): string {
  return ranges.map(([from, to]) => (from === to ? String(from) : `${from}-${to}`)).join(', ');
}

function valueOf(tokens: readonly string[], option: string): string | undefined {
  const i = tokens.indexOf(option);
  return i === -1 ? undefined : tokens[i + 1];
}

function ownerMatch(tokens: readonly string[], option: string): IdRange | undefined {
  const i = tokens.indexOf(option);
  if (i === -1 || tokens[i - 1] === '!') return undefined;
  const m = /^(\d+)(?:-(\d+))?$/.exec(tokens[i + 1] ?? '');
  if (!m) return undefined;
  return [Number(m[1]), Number(m[2] ?? m[1])];
}
