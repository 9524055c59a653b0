import { pino, type Logger } from 'pino';

export type { Logger };

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
