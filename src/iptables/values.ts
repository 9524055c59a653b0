import net from 'node:net';
import { MeshletError } from '../errors.ts';

// Parsers for the values `meshlet init` takes: integers, port lists and CIDR lists.
// Every error names where the value came from (`--flag` or `MESHLET_FLAG`) and the
// offending text, because an init container that fails is debugged from one log line.

export interface PortRange {
  readonly from: number;
  readonly to: number;
}

export interface Cidr {
  readonly family: 4 | 6;
  /** Canonical text of the address part (IPv6 compressed and lower-case). */
  readonly address: string;
  readonly prefix: number;
}

/** A decimal integer in [min, max]; signs, blanks, hex and exponents are refused. */
export function parseInteger(text: string, source: string, min: number, max: number): number {
  const trimmed = text.trim();
  const value = /^\d{1,10}$/.test(trimmed) ? Number(trimmed) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw usage(`${source}: '${text}' is not an integer between ${min} and ${max}`);
  }
  return value;
}

export function parsePort(text: string, source: string): number {
  const trimmed = text.trim();
  const problem = portProblem(trimmed);
  if (problem !== undefined) throw usage(`${source}: ${problem}`);
  return Number(trimmed);
}

const PORT_RANGE = '1–65535';

/** Why `text` is not a port, or undefined when it is one. */
function portProblem(text: string): string | undefined {
  if (!/^\d+$/.test(text)) return `'${text}' is not a port number (${PORT_RANGE})`;
  const port = Number(text);
  return port >= 1 && port <= 65535 ? undefined : `${port} is out of range ${PORT_RANGE}`;
}

/** Why a port list entry (`80`, `8000-8100`) is not one, or undefined when it is. */
function portEntryProblem(entry: string): string | undefined {
  if (entry === '') return 'an entry is empty';
  const match = /^(\d+)-(\d+)$/.exec(entry);
  if (!match) return /^\d+$/.test(entry) ? portProblem(entry) : `'${entry}' is not a port or a range (${PORT_RANGE})`;
  const [, from = '', to = ''] = match;
  const problem = portProblem(from) ?? portProblem(to);
  if (problem !== undefined) return problem;
  return Number(from) > Number(to) ? `'${entry}' is a range from high to low` : undefined;
}

/**
 * `80,443,8000-8100`. Blanks around entries are ignored; an empty string is an empty
 * list (that is how an init container says "none" through the environment).
 */
export function parsePortList(text: string, source: string): PortRange[] {
  if (text.trim() === '') return [];
  const ranges: PortRange[] = [];
  for (const raw of text.split(',')) {
    const entry = raw.trim();
    const problem = portEntryProblem(entry);
    if (problem !== undefined) {
      const within = entry === text.trim() ? '' : `'${text}': `;
      throw usage(`${source}: ${within}${problem}; expected ports or ranges like 80,8000-8100`);
    }
    const [from, to = from] = entry.split('-').map(Number) as [number, number?];
    if (!ranges.some((r) => r.from === from && r.to === to)) ranges.push({ from, to });
  }
  return ranges;
}

/** `10.0.0.0/8,fd00::/8,192.168.1.7`; a bare address means that one host (/32 or /128). */
export function parseCidrList(text: string, source: string): Cidr[] {
  if (text.trim() === '') return [];
  const cidrs: Cidr[] = [];
  for (const raw of text.split(',')) {
    const entry = raw.trim();
    const cidr = parseCidr(entry);
    if (!cidr) {
      const what = entry === '' ? 'an empty entry' : `'${entry}', which is not a CIDR`;
      throw usage(`${source}: '${text}' has ${what}; expected entries like 10.0.0.0/8 or fd00::/8`);
    }
    if (!cidrs.some((c) => c.address === cidr.address && c.prefix === cidr.prefix)) cidrs.push(cidr);
  }
  return cidrs;
}

function parseCidr(entry: string): Cidr | undefined {
  const slash = entry.indexOf('/');
  const address = slash === -1 ? entry : entry.slice(0, slash);
  const prefixText = slash === -1 ? undefined : entry.slice(slash + 1);
  // net.isIPv6 accepts zone ids (fe80::1%eth0); iptables does not.
  const family = net.isIPv4(address) ? 4 : net.isIPv6(address) && !address.includes('%') ? 6 : undefined;
  if (family === undefined) return undefined;
  const max = family === 4 ? 32 : 128;
  if (prefixText !== undefined && !/^\d{1,3}$/.test(prefixText)) return undefined;
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (prefix > max) return undefined;
  return { family, address: family === 6 ? canonicalIPv6(address) : address, prefix };
}

/** RFC 5952 text form, so `FD00:0::1` and `fd00::1` render (and compare) the same. */
export function canonicalIPv6(address: string): string {
  return new URL(`http://[${address}]/`).hostname.slice(1, -1);
}

export function formatCidr(cidr: Cidr): string {
  return `${cidr.address}/${cidr.prefix}`;
}

/** iptables spells a range with a colon: `--dport 8000:8100`. */
export function formatPortMatch(range: PortRange): string {
  return range.from === range.to ? String(range.from) : `${range.from}:${range.to}`;
}

/** Human spelling, as the user wrote it: `8000-8100`. */
export function formatPortList(ranges: readonly PortRange[]): string {
  return ranges.map((r) => (r.from === r.to ? String(r.from) : `${r.from}-${r.to}`)).join(',');
}

export function portInRanges(port: number, ranges: readonly PortRange[]): boolean {
  return ranges.some((r) => port >= r.from && port <= r.to);
}

/** Whether `address` (of the CIDR's family) lies inside any of `cidrs`. */
export function addressInCidrs(address: string, cidrs: readonly Cidr[]): boolean {
  const family = net.isIPv6(address) ? 6 : 4;
  const list = new net.BlockList();
  for (const c of cidrs) if (c.family === family) list.addSubnet(c.address, c.prefix, family === 6 ? 'ipv6' : 'ipv4');
  return list.check(address, family === 6 ? 'ipv6' : 'ipv4');
}

function usage(message: string): MeshletError {
  return new MeshletError('MESHLET_ERR_USAGE', message);
}
