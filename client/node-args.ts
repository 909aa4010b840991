// Arguments in the shapes node:fs accepts, turned into flyfs's: file modes (number or octal
// string), times (seconds, numeric string or Date), owner ids (-1 = leave as it is).
import { flyfsError } from '../common/errors.js';
import type { AttrChange } from './metadata-client.js';

export type TimeLike = number | string | Date;

export function modeOf(mode: number | string): number {
  const n = typeof mode === 'string' ? (/^[0-7]+$/.test(mode) ? parseInt(mode, 8) : NaN) : mode;
  if (!Number.isSafeInteger(n) || n < 0 || n > 0xffff_ffff) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `mode ${String(mode)}`);
  return n & 0o7777;
}

/** Milliseconds since the epoch, as Node reads a time given to utimes. */
export function timeMsOf(t: TimeLike): number {
  const seconds = t instanceof Date ? t.getTime() / 1000 : typeof t === 'string' ? Number(t) : t;
  if (typeof seconds !== 'number' || !Number.isFinite(seconds)) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `time ${String(t)}`);
  return Math.round(seconds * 1000);
}

export function ownerChange(uid: number, gid: number): AttrChange {
  const check = (name: string, v: number): void => {
    if (!Number.isSafeInteger(v) || v < -1 || v > 0xffff_ffff) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `${name} ${v}`);
  };
  check('uid', uid);
  check('gid', gid);
  return { ...(uid === -1 ? {} : { uid }), ...(gid === -1 ? {} : { gid }) };
}

export function timesChange(atime: TimeLike, mtime: TimeLike): AttrChange {
  return { atimeMs: timeMsOf(atime), mtimeMs: timeMsOf(mtime) };
}
