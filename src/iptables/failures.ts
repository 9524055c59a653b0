import { MeshletError, type ErrorCode } from '../errors.ts';
import type { CommandResult } from './exec.ts';

// Why an iptables command failed, from its exit and stderr. iptables has no structured
// errors; these are the messages iptables 1.8 (nft and legacy) prints for each cause.

export type FailureKind = 'missing' | 'permission' | 'kernel' | 'other';

const PERMISSION = /permission denied|operation not permitted|you must be root/i;
/**
 * Rules iptables-nft cannot represent (another tool wrote them with nft directly). Its
 * message also says "your kernel needs to be upgraded", but the kernel is fine.
 */
const FOREIGN_RULES = /parsing nftables rule failed|is incompatible, use 'nft' tool/i;
const KERNEL = new RegExp(
  [
    'table does not exist',
    "table '[^']*' does not exist",
    'no chain/target/match by that name',
    "couldn't load (target|match)",
    'unable to initialize table',
    'do you need to insmod',
    'needs to be upgraded',
    'extension [^ ]+ revision [0-9]+ not supported',
    'rule_append failed \\(no such file or directory\\)',
    'could not process rule: no such file or directory',
    'protocol not supported',
    'address family not supported',
  ].join('|'),
  'i',
);

export function classifyFailure(result: CommandResult): FailureKind {
  if (result.spawnError) return result.spawnError.code === 'ENOENT' ? 'missing' : result.spawnError.code === 'EACCES' ? 'permission' : 'other';
  if (PERMISSION.test(result.stderr)) return 'permission';
  if (FOREIGN_RULES.test(result.stderr)) return 'other';
  if (KERNEL.test(result.stderr)) return 'kernel';
  return 'other';
}

/** The first meaningful line of a failed command's output, for one-line messages. */
export function failureDetail(result: CommandResult): string {
  if (result.spawnError) return result.spawnError.code === 'ENOENT' ? 'not found on PATH' : result.spawnError.message;
  const lines = result.stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('# Warning') && !l.startsWith('Try `'));
  // iptables' own line ("iptables-restore v1.8.9 (legacy): ...") says most; nft's
  // library may print a terser "Error: ..." line before it.
  return lines.find((l) => /^(ip6?tables|Fatal)/.test(l)) ?? lines[0] ?? `exited with status ${result.code}`;
}

const CODES: Record<FailureKind, ErrorCode> = {
  missing: 'MESHLET_ERR_IPTABLES_MISSING',
  permission: 'MESHLET_ERR_IPTABLES_PERMISSION',
  kernel: 'MESHLET_ERR_IPTABLES_KERNEL',
  other: 'MESHLET_ERR_IPTABLES_APPLY',
};

const HINTS: Record<FailureKind, string> = {
  missing: ' (install iptables, or check PATH)',
  permission: ' (needs root or CAP_NET_ADMIN in this network namespace)',
  kernel: ' (the kernel lacks nat/REDIRECT support for this iptables backend)',
  other: '',
};

export function failureError(kind: FailureKind, message: string): MeshletError {
  return new MeshletError(CODES[kind], `${message}${HINTS[kind]}`);
}

/** Error for a failed command: what ran, why it failed, and the classified code. */
export function commandError(what: string, result: CommandResult): MeshletError {
  return failureError(classifyFailure(result), `${what} failed: ${failureDetail(result)}`);
}
