import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { caCommand } from '../../../src/tls/ca/command.ts';

// Shared by the ca*.test.ts files: run `meshlet ca` in-process with a settable clock,
// and ask the openssl CLI (the independent verifier) what it thinks of the result.

/** A new directory, removed when the test file ends (keys included). */
export function tempDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'meshlet-ca-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export interface Run {
  readonly code: number;
  readonly out: string[];
  readonly err: string[];
}

export async function ca(argv: string[], now?: Date): Promise<Run> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await caCommand(argv, {}, { out: (l) => out.push(l), err: (l) => err.push(l), ...(now ? { now: () => now } : {}) });
  return { code, out, err };
}

/** Runs `meshlet ca ...` and fails loudly when it does not succeed (for set-up steps). */
export async function caOk(argv: string[], now?: Date): Promise<Run> {
  const run = await ca(argv, now);
  if (run.code !== 0) throw new Error(`meshlet ca ${argv.join(' ')} exited ${run.code}: ${run.err.join(' | ')}`);
  return run;
}

export interface Result {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export function openssl(args: string[], input?: string): Result {
  const r = spawnSync('openssl', args, { encoding: 'utf8', ...(input === undefined ? {} : { input }) });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The PEM blocks of a file, in order. */
export function pemBlocks(file: string): string[] {
  return [...readFileSync(file, 'utf8').matchAll(/-----BEGIN ([A-Z ]+)-----[\s\S]+?-----END \1-----\n?/g)].map((m) => m[0]);
}

/** Writes each PEM block of `file` to its own file; returns their paths. */
export function splitPem(file: string, dir: string): string[] {
  return pemBlocks(file).map((block, i) => {
    const out = path.join(dir, `${path.basename(file)}.${i}.pem`);
    writeFileSync(out, block);
    return out;
  });
}

/** `openssl x509 -text -noout` of the first certificate in a file (or of PEM text given as input). */
export function certText(fileOrPem: string): string {
  const r = fileOrPem.startsWith('-----BEGIN') ? openssl(['x509', '-text', '-noout'], fileOrPem) : openssl(['x509', '-in', fileOrPem, '-text', '-noout']);
  if (r.status !== 0) throw new Error(`openssl x509 failed: ${r.stderr}`);
  return r.stdout;
}

export interface ExtensionText {
  readonly critical: boolean;
  /** The indented lines under the extension's header, trimmed and joined with '\n'. */
  readonly value: string;
}

/** One extension as openssl prints it (`X509v3 Key Usage: critical` + value lines), or undefined. */
export function extension(text: string, name: string): ExtensionText | undefined {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l.trim() === `${name}:` || l.trim() === `${name}: critical`);
  if (start === -1) return undefined;
  const indent = lines[start]!.search(/\S/);
  const value: string[] = [];
  for (const line of lines.slice(start + 1)) {
    if (line.trim() === '' || line.search(/\S/) <= indent) break;
    value.push(line.trim());
  }
  return { critical: lines[start]!.trim().endsWith('critical'), value: value.join('\n') };
}

/** openssl's single-line field (e.g. `Subject:`) value, trimmed. */
export function field(text: string, name: string): string | undefined {
  const line = text.split('\n').find((l) => l.trim().startsWith(`${name}:`));
  return line?.trim().slice(name.length + 1).trim();
}

/** `openssl x509 -noout -<what>` for dates and serials: the value after '='. */
export function x509Value(file: string, what: 'startdate' | 'enddate' | 'serial'): string {
  const r = openssl(['x509', '-in', file, '-noout', `-${what}`]);
  if (r.status !== 0) throw new Error(`openssl x509 -${what} failed: ${r.stderr}`);
  return r.stdout.trim().split('=')[1]!;
}

export function x509Date(file: string, what: 'startdate' | 'enddate'): Date {
  return new Date(x509Value(file, what));
}

/** `openssl verify -x509_strict` of `leaf` against `caFile`, with optional untrusted intermediates. */
export function verify(caFile: string, leaf: string, untrusted?: string, extra: string[] = []): Result {
  const args = ['verify', '-x509_strict', ...extra, '-CAfile', caFile];
  if (untrusted !== undefined) args.push('-untrusted', untrusted);
  return openssl([...args, leaf]);
}
