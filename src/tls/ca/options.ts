import { parseOptions, usage, type OptionSpecs } from '../../args.ts';
import { formatDuration, parseDuration } from '../../config/duration.ts';
import { MeshletError } from '../../errors.ts';
import { parseTrustDomain, parseWorkloadId } from '../spiffe.ts';
import { KEY_TYPES, type KeyType } from './keys.ts';
import type { InitRequest, IssueRequest } from './operations.ts';

// Flags of `meshlet ca init` and `meshlet ca issue`, validated before any file is
// read: a typo fails with exit 2 and changes nothing.

export const DEFAULT_CA_TTL = '8760h';
export const DEFAULT_LEAF_TTL = '24h';
/** Longer than any sensible CA; also keeps notAfter far from the year 9999 limit of X.509 dates. */
const MAX_TTL_MS = 100 * 365 * 24 * 3_600_000;

export type Parsed<T> = { help: true } | ({ help: false; ttlText: string } & T);

export function parseInitFlags(argv: readonly string[]): Parsed<InitRequest> {
  const values = parseFlags(argv, 'init', {
    out: { type: 'string' },
    root: { type: 'string' },
    'trust-domain': { type: 'string' },
    ttl: { type: 'string' },
    key: { type: 'string' },
    force: { type: 'boolean' },
  });
  if (values.help === true) return { help: true };
  const out = required(values.out, '--out DIR');
  const ttlText = text(values.ttl) ?? DEFAULT_CA_TTL;
  const trustDomain = text(values['trust-domain']);
  return {
    help: false,
    ttlText,
    out,
    root: text(values.root),
    trustDomain: trustDomain === undefined ? undefined : naming('--trust-domain', () => parseTrustDomain(trustDomain)),
    ttlMs: parseTtl(ttlText),
    keyType: parseKeyType(text(values.key)),
    force: values.force === true,
  };
}

export function parseIssueFlags(argv: readonly string[]): Parsed<IssueRequest> {
  const values = parseFlags(argv, 'issue', {
    ca: { type: 'string' },
    'spiffe-id': { type: 'string' },
    out: { type: 'string' },
    ttl: { type: 'string' },
    key: { type: 'string' },
    force: { type: 'boolean' },
  });
  if (values.help === true) return { help: true };
  const ca = required(values.ca, '--ca DIR');
  const id = required(values['spiffe-id'], '--spiffe-id spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT');
  const out = required(values.out, '--out DIR');
  const ttlText = text(values.ttl) ?? DEFAULT_LEAF_TTL;
  return {
    help: false,
    ttlText,
    ca,
    spiffeId: naming('--spiffe-id', () => parseWorkloadId(id)),
    out,
    ttlMs: parseTtl(ttlText),
    keyType: parseKeyType(text(values.key)),
    force: values.force === true,
  };
}

/** Milliseconds of a positive Go-syntax duration of at least 1s. */
export function parseTtl(value: string): number {
  if (value.trim().startsWith('-')) throw usage(`--ttl ${value}: a lifetime must be positive`);
  const ms = parseDuration(value.trim());
  if (ms === undefined) throw usage(`--ttl ${value} is not a duration (Go syntax: 24h, 90m, 1h30m)`);
  if (ms === 0) throw usage(`--ttl ${value}: a lifetime must be positive`);
  if (ms < 1000) throw usage(`--ttl ${value}: a lifetime must be at least 1s`);
  if (ms > MAX_TTL_MS) throw usage(`--ttl ${value} is longer than ${formatDuration(MAX_TTL_MS)} (100 years)`);
  return ms;
}

function parseKeyType(value: string | undefined): KeyType {
  if (value === undefined) return 'ec';
  const type = value.trim().toLowerCase();
  if (!(KEY_TYPES as readonly string[]).includes(type)) throw usage(`--key ${value} is not one of ${KEY_TYPES.join(', ')}`);
  return type as KeyType;
}

function parseFlags(argv: readonly string[], command: string, options: OptionSpecs): Record<string, string | boolean | undefined> {
  return parseOptions(argv, options, { command: `ca ${command}` });
}

function text(value: string | boolean | undefined): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function required(value: string | boolean | undefined, flag: string): string {
  if (typeof value !== 'string' || value.trim() === '') throw usage(`missing ${flag}`);
  return value;
}

/** The same error (and code), with the flag that carried the value named. */
function naming<T>(flag: string, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof MeshletError) throw new MeshletError(err.code, `${flag}: ${err.message}`, { cause: err });
    throw err;
  }
}
