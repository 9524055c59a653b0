import { parseOptions, reportError } from '../args.ts';
import { describeError } from '../errors.ts';
import { run } from '../testbed/exec.ts';
import type { SpawnedProcess, Testbed } from '../testbed/netns.ts';
import { DemoFailure } from './failure.ts';
import { describeMissing, gatherFacts } from './prerequisites.ts';
import { runDemo } from './run.ts';

const USAGE = `usage: meshlet demo [--verbose]

Builds two pods (a and b) as network namespaces on this machine, installs the
interception rules, starts a sidecar in each and a tiny HTTP app, sends requests
from a to b over IPv4 and IPv6 and one over a's loopback, prints the path each
took according to the sidecars' own logs, and removes everything again.
Needs root, iproute2, iptables, util-linux (setpriv) and curl.

  --verbose   also print the sidecars' and apps' logs at the end (on stderr)`;

const SIGNALS = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;

/** Everything but a line break: the reason of a failure is always one line. */
function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' | ').trim();
}

/** Network namespaces of this testbed that `ip netns list` still shows. */
async function leftoverNamespaces(id: string): Promise<string[]> {
  const { stdout } = await run(['ip', 'netns', 'list']);
  return stdout.split('\n').map((l) => l.split(' ')[0] ?? '').filter((ns) => ns.startsWith(`ml${id}-`));
}

/** `meshlet demo`; resolves with the exit code after the pods are gone. */
export async function demoCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let verbose: boolean | undefined;
  try {
    const values = parseOptions(argv, { verbose: { type: 'boolean', short: 'v' } }, { command: 'demo' });
    if (values.help) {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    verbose = values.verbose;
  } catch (err) {
    reportError('demo', err);
    return 2;
  }

  const missing = describeMissing(gatherFacts(env));
  if (missing !== undefined) {
    process.stderr.write(`${missing}\n`);
    return 1;
  }

  const out = (line: string) => process.stdout.write(`${line}\n`);
  let testbed: Testbed | undefined;
  const processes: Array<[string, SpawnedProcess]> = [];
  let cleaning = false;

  // On a signal, exit right away: Testbed registers a synchronous teardown on 'exit' (it
  // kills the pods' processes and deletes the namespaces), which also covers pods still
  // being built. Once our own teardown has started, let it finish instead.
  const onSignal = (signal: keyof typeof SIGNALS) => {
    if (cleaning) return;
    process.stderr.write(`meshlet demo: interrupted by ${signal}; removing the pods\n`);
    process.exit(SIGNALS[signal]);
  };
  const handlers = Object.keys(SIGNALS).map((s) => {
    const signal = s as keyof typeof SIGNALS;
    const handler = () => onSignal(signal);
    process.on(signal, handler);
    return [signal, handler] as const;
  });

  let code = 0;
  try {
    out('meshlet demo: two pods as network namespaces, a sidecar in each, requests from a to b');
    await runDemo({
      out,
      onTestbed: (tb) => (testbed = tb),
      onProcess: (label, proc) => processes.push([label, proc]),
    });
  } catch (err) {
    code = 1;
    const reason = err instanceof DemoFailure ? err.message : describeError(err);
    process.stderr.write(`meshlet demo failed: ${oneLine(reason)}\n`);
  } finally {
    cleaning = true;
    if (verbose) {
      for (const [label, proc] of processes) {
        const { stdout, stderr } = proc.output();
        process.stderr.write(`--- ${label}\n${stdout}${stderr}`);
      }
    }
    if (testbed) {
      try {
        await testbed.destroy();
        const left = await leftoverNamespaces(testbed.id);
        if (left.length > 0) throw new Error(`namespaces still present: ${left.join(' ')}`);
        out(`cleaned up: processes stopped, namespaces ml${testbed.id}-* removed`);
      } catch (err) {
        code = 1;
        process.stderr.write(`meshlet demo: cleanup failed: ${oneLine(describeError(err))}\n`);
      }
    }
    for (const [signal, handler] of handlers) process.removeListener(signal, handler);
  }
  return code;
}
