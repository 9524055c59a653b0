import { z } from 'zod';
import net from 'node:net';
import { parseDuration } from './duration.ts';

// Field types shared by the configuration's schemas (schema.ts, resilience-schema.ts):
// each error message shows the bad value and what would be accepted.

/** A value as it appears in an error message: text quoted, numbers and the rest as YAML/JSON would show them. */
export function showValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

const PORT_RANGE = '1–65535';

/**
 * A whole number in [min, max], whose every error shows the value and the range;
 * `zero`, when given, is why 0 is not taken (said instead of "out of range").
 */
export const wholeNumber = (what: string, min: number, max: number, zero?: string) => {
  const range = `${min}–${max}`;
  return z
    .number({ error: (issue) => `expected ${what} (${range}), got ${showValue(issue.input)}` })
    .int({ error: (issue) => `${showValue(issue.input)} is not ${what} (${range})` })
    .refine((n) => n >= min && n <= max, {
      error: (issue) => (issue.input === 0 && zero !== undefined ? `0 ${zero}; use ${range}` : `${showValue(issue.input)} is out of range ${range}`),
    });
};

/**
 * A number shared with `meshlet init`'s variables, read by init's rule: an empty
 * variable is the same as an unset one (how pod templates leave a setting alone).
 */
export const initNumber = <T extends z.ZodType>(schema: T) => z.preprocess((value) => (value === '' ? undefined : value), schema);

/** A port of the app or of a destination. */
export const port = wholeNumber('a port number', 1, 65535);

/**
 * A port the proxy listens on. Never 0: a port the kernel picks is one that what must
 * reach the listener (`reachedBy`: the interception rules, kubelet) cannot know, so the
 * proxy would start and serve nothing. Tests give free ports instead.
 */
export const listenerPort = (reachedBy: string) => wholeNumber('a port number', 1, 65535, `is not a port ${reachedBy}`);

/** A map key that must be a port number: YAML gives keys as text. */
export const portKey = z.string().superRefine((text, ctx) => {
  if (!/^\d+$/.test(text)) ctx.addIssue({ code: 'custom', message: `the key ${showValue(text)} is not a port number (${PORT_RANGE})` });
  else if (Number(text) < 1 || Number(text) > 65535) ctx.addIssue({ code: 'custom', message: `the key ${text} is out of range ${PORT_RANGE}` });
});

/** A Go-style duration string, parsed to milliseconds. */
export const duration = z
  .union([z.string(), z.number()], { error: (issue) => `expected a duration such as 500ms, 1s or 1h30m, got ${showValue(issue.input)}` })
  .transform((value, ctx) => {
    // YAML reads `idleTimeout: 5` as a number: say which unit was forgotten, not "expected string".
    if (typeof value === 'number') {
      ctx.addIssue({ code: 'custom', message: `${value} needs a unit, e.g. ${value}s or ${value}ms (Go syntax: 500ms, 1s, 1m, 1h30m)` });
      return z.NEVER;
    }
    const ms = parseDuration(value);
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: `"${value}" is not a duration (use e.g. "500ms", "1s", "1h30m")` });
      return z.NEVER;
    }
    return ms;
  });

export const cidr = z.string().superRefine((text, ctx) => {
  const [address = '', bits, ...rest] = text.split('/');
  const family = net.isIPv4(address) ? 4 : net.isIPv6(address) ? 6 : 0;
  const max = family === 4 ? 32 : 128;
  if (family === 0 || rest.length > 0 || (bits !== undefined && !(/^\d+$/.test(bits) && Number(bits) <= max))) {
    ctx.addIssue({ code: 'custom', message: `"${text}" is not a CIDR (e.g. 10.0.0.0/8 or fd00::/8)` });
  }
});

