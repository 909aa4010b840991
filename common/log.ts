// Structured logs (pino). Every role logs through a child logger carrying role and node id.
import pino, { type Logger } from 'pino';

export type { Logger };

export interface LogOptions {
  role: string;
  level?: string;
  /** File descriptor or path; stderr by default so stdout stays free for the ready line. */
  destination?: number | string;
}

export function createLogger(options: LogOptions): Logger {
  const level = options.level ?? process.env['FLYFS_LOG_LEVEL'] ?? 'info';
  const dest = pino.destination({ dest: options.destination ?? 2, sync: false });
  return pino({ level, base: { role: options.role, pid: process.pid } }, dest);
}

/** A logger that drops everything: for tests and embedded use. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
