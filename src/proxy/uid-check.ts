import type { Config } from '../config/schema.ts';
import { MeshletError } from '../errors.ts';
import { binary, BACKENDS } from '../iptables/backend.ts';
import { systemExec, type CommandResult, type Exec } from '../iptables/exec.ts';
import { formatRanges, isExempt, outboundExemptions, type OwnerExemptions } from '../iptables/exemptions.ts';
import { failureDetail } from '../iptables/failures.ts';
import type { Logger } from '../log.ts';

// The interception rules let the proxy's own traffic through by its UID or GID. A proxy
// running as anyone else (a missing runAsUser makes it root) has every connection it
// opens redirected back to itself. So it checks at start: against the installed rules
// when it may read them (root with CAP_NET_ADMIN), else against proxy.uid / proxy.gid,
// the identity meshlet init exempts unless told otherwise.

export interface RunningAs {
  readonly uid: number;
  readonly gid: number;
}

/** The rules as iptables-save prints them, or why they could not be read. */
export type InstalledRules = { readonly text: string } | { readonly unreadable: string };

/** Refuses to start (MESHLET_ERR_PROXY_UID) when the proxy's own traffic would be redirected to it. */
export async function checkProxyIdentity(config: Config, log: Logger, exec: Exec = systemExec): Promise<void> {
  const running = { uid: process.geteuid?.() ?? 0, gid: process.getegid?.() ?? 0 };
  const verdict = judge(running, config, await readInstalledRules(exec));
  log.debug({ uid: running.uid, gid: running.gid }, verdict.note);
  if (verdict.refusal !== undefined) throw new MeshletError('MESHLET_ERR_PROXY_UID', verdict.refusal);
}

/** The decision alone (unit-tested): a note for the debug log, and a refusal when the check fails. */
export function judge(running: RunningAs, config: Config, rules: InstalledRules): { note: string; refusal?: string } {
  const outboundPort = config.outbound.port;
  const runs = `this process runs as uid ${running.uid} (gid ${running.gid})`;
  const loops = 'every connection it opens would come back to it';
  if ('text' in rules) {
    const exemptions: OwnerExemptions = outboundExemptions(rules.text, outboundPort);
    if (!exemptions.redirects) return { note: `no installed rule redirects to port ${outboundPort}: no interception to check the uid against` };
    if (isExempt(exemptions, running.uid, running.gid)) return { note: 'the installed interception rules exempt the uid or gid this process runs as' };
    const uids = formatRanges(exemptions.uids);
    const gids = formatRanges(exemptions.gids);
    const exempted = [uids && `uid ${uids}`, gids && `gid ${gids}`].filter(Boolean).join(' and ') || 'no uid or gid';
    return {
      note: 'the installed interception rules do not exempt this process',
      refusal: `the interception rules here redirect outbound traffic to port ${outboundPort} and exempt ${exempted}, but ${runs}: ${loops}. Run it as ${exemptions.uids[0] ? `uid ${exemptions.uids[0][0]}` : 'an exempted user'} (securityContext.runAsUser), or give meshlet init --proxy-uid the uid it runs as`,
    };
  }
  const expected = { uid: config.proxy.uid, gid: config.proxy.gid ?? config.proxy.uid };
  const note = `could not read the interception rules (${rules.unreadable}); checked against proxy.uid ${expected.uid} / proxy.gid ${expected.gid} instead`;
  if (running.uid === expected.uid || running.gid === expected.gid) return { note };
  return {
    note,
    refusal: `${runs}, but proxy.uid is ${expected.uid} (gid ${expected.gid}), the identity the interception rules exempt: ${loops}. Run it as uid ${expected.uid} (securityContext.runAsUser), or set MESHLET_PROXY_UID for both meshlet init and the proxy to the uid it runs as`,
  };
}

/**
 * Every backend's nat rules, IPv4 and IPv6 (meshlet init may have used either backend).
 * *-save reads without creating tables. Unreadable when no save command succeeds: not
 * root or no CAP_NET_ADMIN (the proxy's usual case), or no iptables in the image.
 */
export async function readInstalledRules(exec: Exec): Promise<InstalledRules> {
  const save = (commands: string[]) => Promise.all(commands.map(async (command) => ({ command, result: await exec(command, []) })));
  let runs = await save(BACKENDS.flatMap((backend) => [binary(backend, 4, '-save'), binary(backend, 6, '-save')]));
  if (runs.every(({ result }) => result.spawnError?.code === 'ENOENT')) runs = await save(['iptables-save', 'ip6tables-save']);
  const read = runs.filter(({ result }) => result.code === 0);
  if (read.length > 0) return { text: read.map(({ result }) => result.stdout).join('\n') };
  return { unreadable: describeFailures(runs) };
}

function describeFailures(runs: ReadonlyArray<{ command: string; result: CommandResult }>): string {
  const missing = runs.filter(({ result }) => result.spawnError?.code === 'ENOENT');
  if (missing.length === runs.length) return 'no iptables-save on PATH';
  const failed = runs.find(({ result }) => result.spawnError?.code !== 'ENOENT');
  return `${failed!.command}: ${failureDetail(failed!.result)}`;
}
