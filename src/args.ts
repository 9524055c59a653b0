import { parseArgs } from 'node:util';
import { describeError, isMeshletError, MeshletError, type ErrorCode } from './errors.ts';
import { didYouMean } from './suggest.ts';

// Flags and errors of every `meshlet` subcommand, in one style. Flags are split by
// node:util's parseArgs, but checked here, token by token, so every mistake gets the
// same kind of message (and a negative number can be a flag's value, for the value's
// own check to refuse). Every error is reported as one line per problem on stderr:
//
//   meshlet <command>: MESHLET_ERR_<CODE>: <what is wrong>[ (see meshlet <command> --help)]
//
// the pointer to --help only on usage errors (exit 2 everywhere).

export interface OptionSpec {
  readonly type: 'string' | 'boolean';
  readonly short?: string;
}

export type OptionSpecs = Readonly<Record<string, OptionSpec>>;

/** Values by option name: text for string options, true/false for boolean ones; absent when not given. */
export type OptionValues<O extends OptionSpecs> = { -readonly [K in keyof O]?: O[K]['type'] extends 'string' ? string : boolean } & {
  help?: boolean;
};

export interface ParseSettings {
  /** As in `meshlet <command>`, for messages: `init`, `ca issue`. */
  readonly command: string;
  /** Accept `--no-<flag>` for boolean options (it sets false). */
  readonly negatable?: boolean;
}

/** A negative number (or duration) given as an option's value: `--proxy-uid -1`, `--ttl -1h`. */
const NEGATIVE_NUMBER = /^-\d/;

/**
 * Parses `argv` (no positionals) against `options` plus `-h/--help`. Throws
 * MESHLET_ERR_USAGE for an unknown option (naming the closest known one), a missing
 * value, a value given to a boolean option, or a positional argument.
 */
export function parseOptions<O extends OptionSpecs>(argv: readonly string[], options: O, settings: ParseSettings): OptionValues<O> {
  return parseCommandLine(argv, options, settings, false).values;
}

/**
 * The same for commands that also take operands (`meshlet inject FILE...`): arguments
 * that are not flags, and everything after `--`, come back in order as `operands`.
 */
export function parseCommandLine<O extends OptionSpecs>(
  argv: readonly string[],
  options: O,
  settings: ParseSettings,
  allowOperands = true,
): { values: OptionValues<O>; operands: string[] } {
  const operands: string[] = [];
  const all: Record<string, OptionSpec> = { ...options, help: { type: 'boolean', short: 'h' } };
  const known = Object.keys(all).map((name) => `--${name}`);
  const { tokens } = parseArgs({ args: [...argv], options: all, strict: false, tokens: true, allowPositionals: true, allowNegative: settings.negatable === true });
  const values: Record<string, string | boolean> = {};
  let terminated = false;
  for (const token of tokens) {
    if (token.kind === 'option-terminator') {
      terminated = true;
      continue;
    }
    if (token.kind === 'positional') {
      if (allowOperands) {
        operands.push(token.value);
        continue;
      }
      const after = terminated ? " after '--'" : '';
      throw usage(`unexpected argument '${token.value}'${after} (meshlet ${settings.command} takes only flags)`);
    }
    const spec = Object.hasOwn(all, token.name) ? all[token.name] : undefined;
    const negated = token.rawName.startsWith('--no-') && token.rawName !== `--${token.name}`;
    if (spec === undefined || (negated && spec.type !== 'boolean')) {
      throw usage(`unknown flag '${token.rawName}'${didYouMean(token.rawName, known)}`);
    }
    if (spec.type === 'boolean') {
      if (token.value !== undefined) {
        const alternative = settings.negatable && token.name !== 'help' ? ` or --no-${token.name}` : ' alone';
        throw usage(`flag ${token.rawName} takes no value (write ${token.rawName}${alternative})`);
      }
      values[token.name] = !negated;
      continue;
    }
    const value = token.value;
    if (value === undefined) throw usage(`flag ${token.rawName} needs a value`);
    // The next argument was taken as the value: refuse it when it is another flag (the
    // value was forgotten), but keep a negative number for the value's own check.
    if (!token.inlineValue && value.startsWith('-') && value !== '-' && !NEGATIVE_NUMBER.test(value)) {
      throw usage(`flag ${token.rawName} needs a value, not the flag '${value}' (write ${token.rawName}=${value} if that is the value)`);
    }
    values[token.name] = value;
  }
  return { values: values as OptionValues<O>, operands };
}

export function usage(message: string): MeshletError {
  return new MeshletError('MESHLET_ERR_USAGE', message);
}

interface ErrorText {
  /** `meshlet <command>: <CODE>: ` */
  readonly lead: string;
  /** ` (see meshlet <command> --help)` on usage errors. */
  readonly hint: string;
  readonly lines: readonly string[];
}

function errorText(command: string, err: unknown, fallback: ErrorCode | undefined): ErrorText {
  const prefix = command === '' ? 'meshlet' : `meshlet ${command}`;
  const code = isMeshletError(err) ? err.code : fallback;
  const text = isMeshletError(err) ? err.message : describeError(err);
  const lines = text.split('\n').map((line) => line.trim()).filter((line) => line !== '');
  return {
    lead: code === undefined ? `${prefix}: ` : `${prefix}: ${code}: `,
    hint: code === 'MESHLET_ERR_USAGE' ? ` (see ${prefix} --help)` : '',
    lines: lines.length > 0 ? lines : ['failed'],
  };
}

/**
 * The stderr lines for an error of `meshlet <command>` (`''` for the dispatcher): one
 * per line of the message, each `meshlet <command>: <CODE>: <text>`. Errors that are not
 * MeshletErrors get `fallback` as their code when one is given.
 */
export function errorLines(command: string, err: unknown, fallback?: ErrorCode): string[] {
  const { lead, hint, lines } = errorText(command, err, fallback);
  return lines.map((line) => `${lead}${line}${hint}`);
}

/** The same as one line, for commands whose every failure is one line: the message's line breaks become blanks. */
export function errorLine(command: string, err: unknown, fallback?: ErrorCode): string {
  const { lead, hint, lines } = errorText(command, err, fallback);
  return `${lead}${lines.join(' ')}${hint}`;
}

/** Writes errorLines() to stderr. */
export function reportError(command: string, err: unknown, fallback?: ErrorCode): void {
  for (const line of errorLines(command, err, fallback)) process.stderr.write(`${line}\n`);
}
