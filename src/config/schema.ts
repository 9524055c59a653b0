import { z } from 'zod';
import { parseDuration } from './duration.ts';

// The proxy's configuration. Every field has a default, so no file is needed; a YAML
// file (--config / MESHLET_CONFIG) and MESHLET_* variables override. Unknown fields are
// errors, so a typo is reported instead of silently ignored.

// 0 asks the kernel for a free port (tests bind that way).
const port = z
  .number({ error: (issue) => `expected a port number (0-65535), got ${JSON.stringify(issue.input)}` })
  .int()
  .min(0)
  .max(65535);

/** A Go-style duration string, parsed to milliseconds. */
const duration = z
  .string({ error: 'expected a duration such as "500ms", "1s" or "1h"' })
  .transform((text, ctx) => {
    const ms = parseDuration(text);
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: `"${text}" is not a duration (use e.g. "500ms", "1s", "1h30m")` });
      return z.NEVER;
    }
    return ms;
  });

const listener = (defaults: { port: number; connectTimeout: string }) =>
  z
    .strictObject({
      /** Port the listener binds (dual-stack). */
      port: port.default(defaults.port),
      /** How long to wait for the TCP connection to the original destination. */
      connectTimeout: duration.prefault(defaults.connectTimeout),
    })
    .prefault({});

export const configSchema = z
  .strictObject({
    outbound: listener({ port: 15001, connectTimeout: '1s' }),
    inbound: listener({ port: 15006, connectTimeout: '1s' }),
    tcp: z
      .strictObject({
        /** A proxied connection with no bytes in either direction for this long is closed. */
        idleTimeout: duration.prefault('1h'),
      })
      .prefault({}),
    health: z
      .strictObject({
        /** /healthz/ready, /healthz/live and /stats/prometheus. */
        port: port.default(15020),
      })
      .prefault({}),
    log: z
      .strictObject({
        level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
      })
      .prefault({}),
  })
  .prefault({});

export type Config = z.output<typeof configSchema>;
