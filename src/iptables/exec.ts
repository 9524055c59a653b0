import { spawn } from 'node:child_process';

// Running the iptables binaries. A missing binary is a result (spawnError ENOENT), not
// an exception, so callers classify every failure in one place (failures.ts).

export interface CommandResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Set when the command could not be started at all (ENOENT: not installed / not on PATH). */
  readonly spawnError?: NodeJS.ErrnoException;
}

export type Exec = (command: string, args: readonly string[], input?: string) => Promise<CommandResult>;

/** iptables never needs this long; a hung one (e.g. a stuck xtables lock) should not hang the pod. */
const TIMEOUT_MS = 60_000;

export const systemExec: Exec = (command, args, input) =>
  new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    // Our own timer, not spawn's `timeout`: that one is only cleared on 'exit', which a
    // command that failed to start never emits, so it would hold the process for a minute.
    const timer = setTimeout(() => child.kill('SIGKILL'), TIMEOUT_MS);
    let stdout = '';
    let stderr = '';
    let spawnError: NodeJS.ErrnoException | undefined;
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (err: NodeJS.ErrnoException) => (spawnError = err));
    // EPIPE when the command exits without reading its input: its exit status says why.
    child.stdin.on('error', () => {});
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (signal && !spawnError) stderr += `${stderr && !stderr.endsWith('\n') ? '\n' : ''}killed by ${signal}`;
      resolve(spawnError ? { code: null, stdout, stderr, spawnError } : { code, stdout, stderr });
    });
    child.stdin.end(input ?? '');
  });

/** `iptables-nft-restore --noflush` → for messages. */
export function commandLine(command: string, args: readonly string[]): string {
  return [command, ...args].join(' ');
}
