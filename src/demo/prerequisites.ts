import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import { testbedUnavailable } from '../testbed/netns.ts';

// What the demo needs from this machine, checked up front so that a missing piece is
// one line of explanation instead of a stack trace halfway through building pods.

/** Tools the demo runs, and the Debian package that provides each. */
export const DEMO_TOOLS: ReadonlyArray<{ tool: string; pkg: string }> = [
  { tool: 'ip', pkg: 'iproute2' },
  { tool: 'iptables', pkg: 'iptables' },
  { tool: 'ip6tables', pkg: 'iptables' },
  { tool: 'setpriv', pkg: 'util-linux' },
  { tool: 'curl', pkg: 'curl' },
];

// A non-root PATH often lacks the sbin directories even though the tools are there and
// root's PATH (sudo's secure_path) will have them. As root, PATH is what the demo runs with.
const SBIN_DIRS = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

/** Absolute path of an executable named `tool`, looked up in PATH and then `extraDirs`. */
export function findTool(tool: string, pathEnv: string | undefined, extraDirs: readonly string[] = []): string | undefined {
  const dirs = [...(pathEnv ?? '').split(path.delimiter).filter(Boolean), ...extraDirs];
  for (const dir of dirs) {
    const candidate = path.join(dir, tool);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

export interface PrerequisiteFacts {
  isRoot: boolean;
  missingTools: string[];
  /** What the shared testbed check says, for anything it knows that this module does not. */
  testbedReason: string | undefined;
}

export function gatherFacts(env: NodeJS.ProcessEnv): PrerequisiteFacts {
  const isRoot = process.getuid?.() === 0;
  const extraDirs = isRoot ? [] : SBIN_DIRS;
  return {
    isRoot,
    missingTools: DEMO_TOOLS.filter(({ tool }) => findTool(tool, env.PATH, extraDirs) === undefined).map(({ tool }) => tool),
    testbedReason: testbedUnavailable(),
  };
}

/**
 * One line naming everything that is missing, or undefined when the demo can run.
 * Lists all of it at once, so the user fixes it in one go rather than one error per run.
 */
export function describeMissing(facts: PrerequisiteFacts): string | undefined {
  const needs: string[] = [];
  if (!facts.isRoot) needs.push('root');
  needs.push(...facts.missingTools);
  if (needs.length === 0) {
    return facts.testbedReason === undefined ? undefined : `meshlet demo ${facts.testbedReason}`;
  }
  const packages = [...new Set(DEMO_TOOLS.filter(({ tool }) => facts.missingTools.includes(tool)).map(({ pkg }) => pkg))];
  const install = packages.length > 0 ? `apt-get install ${packages.join(' ')}` : undefined;
  const asRoot = facts.isRoot ? undefined : 'run it as root, e.g. sudo npm run demo';
  const hint = install && asRoot ? `${install}, then ${asRoot}` : (install ?? asRoot);
  return `meshlet demo needs ${needs.join(', ')} (it builds network namespaces with iptables rules): ${hint}`;
}
