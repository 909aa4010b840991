// Turns flyfs errors into the errors node:fs/promises throws: `code` is the errno name,
// `errno` the negative number, plus `syscall` and `path`; the registry code stays in `flyfsCode`.
import { constants } from 'node:os';
import { FlyfsError, flyfsError } from '../common/errors.js';

export interface NodeStyleError extends Error {
  code: string;
  errno: number;
  syscall: string;
  path?: string;
  dest?: string;
  flyfsCode: string;
  retryable: boolean;
}

const errnoNumbers = constants.errno as Record<string, number>;

export function toNodeError(err: unknown, syscall: string, path?: string, dest?: string): NodeStyleError {
  const fe = err instanceof FlyfsError ? err : flyfsError('FLYFS_ERR_INTERNAL', err instanceof Error ? err.message : String(err), { cause: err });
  const where = path === undefined ? '' : dest === undefined ? ` '${path}'` : ` '${path}' -> '${dest}'`;
  const e = new Error(`${fe.errno}: ${fe.message}, ${syscall}${where}`, { cause: fe }) as NodeStyleError;
  e.code = fe.errno;
  e.errno = -(errnoNumbers[fe.errno] ?? errnoNumbers['EIO'] ?? 5);
  e.syscall = syscall;
  if (path !== undefined) e.path = path;
  if (dest !== undefined) e.dest = dest;
  e.flyfsCode = fe.code;
  e.retryable = fe.retryable;
  return e;
}

/** Runs fn and rethrows any failure as a Node-style error for `syscall`. */
export async function nodeCall<T>(syscall: string, path: string | undefined, fn: () => Promise<T>, dest?: string): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if ((err as Partial<NodeStyleError>).flyfsCode !== undefined) throw err;
    throw toNodeError(err, syscall, path, dest);
  }
}

/** The error node:fs rejects with when an operation's AbortSignal fired. */
export function abortError(signal: AbortSignal): Error {
  const e = new Error('The operation was aborted', { cause: signal.reason }) as Error & { code: string };
  e.name = 'AbortError';
  e.code = 'ABORT_ERR';
  return e;
}

/**
 * Runs `fn` unless `signal` has fired; rejects with an AbortError as soon as it fires (what is
 * already in flight completes in the background; nothing more starts after the check).
 */
export async function abortable<T>(signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
  if (signal === undefined) return fn();
  if (signal.aborted) throw abortError(signal);
  let onAbort!: () => void;
  const aborted = new Promise<never>((_, reject) => { onAbort = () => reject(abortError(signal)); });
  signal.addEventListener('abort', onAbort, { once: true });
  const run = fn();
  run.catch(() => undefined);
  try {
    return await Promise.race([run, aborted]);
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}
