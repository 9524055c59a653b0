import { pino, type Logger } from 'pino';

export type { Logger };

/** The levels `log.level` and the admin's /logging accept, least severe first. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;

/** JSON lines on stdout, one object per event, as log collectors expect from a container. */
export function createLogger(level: string, name = 'meshlet'): Logger {
  return pino({
    name,
    level,
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  });
}
