import { errorLine } from '../args.ts';
import { describeError, isMeshletError } from '../errors.ts';
import { applyChanges, readState, type FamilyChange, type FamilyState } from './apply.ts';
import { binary, detectBackend, LOCK_WAIT, type Backend, type BackendChoice } from './backend.ts';
import { systemExec, type Exec } from './exec.ts';
import { classifyFailure, failureDetail, failureError } from './failures.ts';
import { decideFamilies, hasGlobalIPv6, type FamilyDecision } from './families.ts';
import { EXIT, exitCodeFor } from './exit-codes.ts';
import { INIT_USAGE, parseInitOptions, type InitOptions } from './options.ts';
import { installedState, planCleanup, planInstall, type RestorePlan } from './plan.ts';
import { renderDrops, renderRestore } from './render.ts';
import { buildRuleSet, type Family } from './rules.ts';
import { formatPortList } from './values.ts';

// `meshlet init`: parse options, pick the backend and families, read what is there,
// plan, apply (or print), validate. Each step lives in its own module; this file only
// orders them and turns the outcome into output and an exit code.

export { EXIT, exitCodeFor } from './exit-codes.ts';
export type { InitOptions } from './options.ts';

/** What initCommand talks to; tests replace parts of it. */
export interface InitDeps {
  readonly exec: Exec;
  readonly hasGlobalIPv6: () => boolean;
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
}

const defaultDeps: InitDeps = {
  exec: systemExec,
  hasGlobalIPv6: () => hasGlobalIPv6(),
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
};

/** `meshlet init ...` (argv is everything after `init`); returns the process exit code. */
export async function initCommand(argv: string[], env: NodeJS.ProcessEnv, deps: Partial<InitDeps> = {}): Promise<number> {
  const io: InitDeps = { ...defaultDeps, ...deps };
  try {
    const options = parseInitOptions(argv, env);
    if (options.help) {
      io.out(INIT_USAGE);
      return EXIT.OK;
    }
    const families = decideFamilies(options.ipv6, io.hasGlobalIPv6());
    if (options.dryRun) await dryRun(options, families, io);
    else if (options.cleanup) await cleanup(options, io);
    else await install(options, families, io);
    return EXIT.OK;
  } catch (err) {
    // One line, whatever went wrong: it is what `kubectl logs` of the init container shows.
    io.err(errorLine('init', err));
    return exitCodeFor(err);
  }
}

async function install(options: InitOptions, decision: FamilyDecision, io: InitDeps): Promise<void> {
  const choice = await detectBackend(io.exec, options.backend);
  const { backend } = choice;
  if (decision.families.includes(6)) await requireIPv6(io.exec, backend, decision);
  const changes: FamilyChange[] = [];
  for (const family of decision.families) {
    const before = await readState(io.exec, backend, family);
    changes.push({ plan: planInstall(buildRuleSet(options, family), before.tables), before });
  }
  await applyChanges(io.exec, backend, changes);
  for (const family of decision.families) {
    io.out(`meshlet init: IPv${family} rules installed with ${binary(backend, family)} (${choice.reason}): ${describeRules(options)}`);
  }
  if (!decision.families.includes(6)) io.out(`meshlet init: IPv6 skipped: ${decision.ipv6Reason}`);
  if (options.validate) await validate(options, decision.families, io);
}

/** IPv6 rules are needed: ip6tables must work, or IPv6 traffic would bypass the proxy. */
async function requireIPv6(exec: Exec, backend: Backend, decision: FamilyDecision): Promise<void> {
  const command = binary(backend, 6);
  const result = await exec(command, [...LOCK_WAIT, '-t', 'nat', '-S']);
  if (result.code === 0) return;
  const why = `IPv6 rules are needed (${decision.ipv6Reason}) but ${command} failed: ${failureDetail(result)}; fix ip6tables or pass --ipv6 off`;
  throw failureError(classifyFailure(result), why);
}

async function cleanup(options: InitOptions, io: InitDeps): Promise<void> {
  // Clean every backend that holds meshlet chains, not just the preferred one: rules
  // left behind in the other would still apply (both are evaluated by the kernel).
  // Read-only probes: cleanup must not create the tables it is meant to leave as found.
  const choice = await detectBackend(io.exec, options.backend, true);
  const backends = choice.probes.filter((p) => p.works).map((p) => p.backend);
  let removedAny = false;
  for (const backend of backends) {
    const changes: FamilyChange[] = [];
    for (const family of [4, 6] as const) {
      if (family === 6 && options.ipv6 === 'off') continue;
      let before: FamilyState;
      try {
        before = await readState(io.exec, backend, family);
      } catch (err) {
        // IPv6 in auto mode is best effort: no ip6tables means no IPv6 rules to remove.
        if (family === 6 && options.ipv6 === 'auto') continue;
        throw err;
      }
      changes.push({ plan: planCleanup(family, before.tables, backend === 'nft'), before });
    }
    await applyChanges(io.exec, backend, changes);
    for (const { plan } of changes) {
      if (plan.tables.length === 0) continue;
      removedAny = true;
      io.out(`meshlet init: IPv${plan.family} cleaned up with ${binary(backend, plan.family)}: ${describeCleanup(plan)}`);
    }
  }
  if (!removedAny) io.out(`meshlet init: nothing to clean up (no MESHLET_* chains with ${backends.map((b) => `iptables-${b}`).join(' or ')})`);
}

async function dryRun(options: InitOptions, decision: FamilyDecision, io: InitDeps): Promise<void> {
  // Read-only from here on: probes use *-save, and nothing is restored. Without
  // privileges the current rules cannot be read; then show the input for a namespace
  // without meshlet rules (install) or with a default install (cleanup), and say so.
  let choice: Pick<BackendChoice, 'backend' | 'reason'> | undefined;
  let probeProblem = '';
  try {
    choice = await detectBackend(io.exec, options.backend, true);
  } catch (err) {
    probeProblem = isMeshletError(err, 'MESHLET_ERR_IPTABLES_PERMISSION') ? 'no CAP_NET_ADMIN to read them' : describeError(err);
    // A forced backend that cannot be probed (no privileges) is still the one to show.
    if (options.backend !== 'auto') choice = { backend: options.backend, reason: 'forced by --backend' };
  }
  const families: readonly Family[] = options.cleanup && options.ipv6 !== 'off' ? [4, 6] : decision.families;
  for (const family of families) {
    const ruleSet = buildRuleSet(options, family);
    let state: FamilyState | undefined;
    let note = '';
    if (choice && !probeProblem) {
      try {
        state = await readState(io.exec, choice.backend, family);
      } catch (err) {
        note = `could not read the current IPv${family} rules (${isMeshletError(err, 'MESHLET_ERR_IPTABLES_PERMISSION') ? 'no CAP_NET_ADMIN to read them' : describeError(err)})`;
      }
    } else {
      note = `could not read the current rules (${probeProblem})`;
    }
    const plan: RestorePlan = options.cleanup
      ? planCleanup(family, state?.tables ?? installedState(ruleSet), choice?.backend === 'nft')
      : planInstall(ruleSet, state?.tables ?? []);
    const command = choice ? binary(choice.backend, family, '-restore') : `${family === 6 ? 'ip6tables' : 'iptables'}-restore`;
    io.out(`# meshlet init --dry-run: IPv${family} input for: ${command} ${[...LOCK_WAIT, '--noflush'].join(' ')}`);
    io.out(`# backend: ${choice ? `${choice.backend} (${choice.reason})` : 'unknown'}`);
    if (note) io.out(`# note: ${note}; showing the input for ${options.cleanup ? 'a default install' : 'a namespace without meshlet rules'}`);
    const input = renderRestore(plan);
    io.out(input === '' ? '# nothing to do' : input.trimEnd());
    const drops = renderDrops(plan);
    if (drops !== '') {
      io.out(`# then, deleting the tables left empty: ${command} ${LOCK_WAIT.join(' ')}`);
      io.out(drops.trimEnd());
    }
  }
  if (!options.cleanup && !decision.families.includes(6)) io.out(`# IPv6 skipped: ${decision.ipv6Reason}`);
  // With --dry-run, --validate checks the rules already in the kernel.
  if (options.validate) await validate(options, decision.families, io);
}

async function validate(options: InitOptions, families: readonly Family[], io: InitDeps): Promise<void> {
  // Loaded only when asked for: it pulls in the FFI module for SO_ORIGINAL_DST.
  const { validateRedirection } = await import('./validate.ts');
  for (const line of await validateRedirection(options, families)) io.out(`meshlet init: ${line}`);
}

function describeRules(options: InitOptions): string {
  const inboundPorts = options.inboundPorts === 'all' ? 'all ports' : `ports ${formatPortList(options.inboundPorts) || '(none)'}`;
  return `inbound TCP (${inboundPorts}) → ${options.inboundPort}, outbound TCP → ${options.outboundPort} except uid ${options.proxyUid}/gid ${options.proxyGid}; chains MESHLET_INBOUND, MESHLET_OUTPUT`;
}

function describeCleanup(plan: RestorePlan): string {
  const chains = plan.tables.flatMap((t) => t.deleteChains.map((c) => `${t.table}/${c}`));
  const jumps = plan.tables.reduce((n, t) => n + t.deleteRules.length, 0);
  return `removed ${jumps} jump${jumps === 1 ? '' : 's'} and chain${chains.length === 1 ? '' : 's'} ${chains.join(', ') || '(none)'}`;
}
