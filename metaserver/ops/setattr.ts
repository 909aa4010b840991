// setattr: chmod, chown and utimes, by path (symlinks followed) or by inode; ctime moves on any change.
import { flyfsError } from '../../common/errors.js';
import type { InodeId } from '../../common/ids.js';
import type { MetaTables } from '../tables.js';
import type { AttrChange, InodeRecord } from '../types.js';
import { getInode, resolveInode } from './paths.js';

export interface SetattrArgs { parts: readonly string[]; path: string; inodeId: InodeId | 0; change: AttrChange; nowMs: number }

export function setattrOp(db: MetaTables, a: SetattrArgs): InodeRecord {
  const inode = a.inodeId === 0 ? resolveInode(db, a.parts, a.path) : getInode(db, a.inodeId);
  if (inode === undefined) throw flyfsError('FLYFS_ERR_NOT_FOUND', `inode ${a.inodeId}`, { path: a.path });
  const c = a.change;
  const next: InodeRecord = {
    ...inode,
    ...(c.mode === undefined ? {} : { mode: c.mode }),
    ...(c.uid === undefined ? {} : { uid: c.uid }),
    ...(c.gid === undefined ? {} : { gid: c.gid }),
    ...(c.atimeMs === undefined ? {} : { atimeMs: c.atimeMs }),
    ...(c.mtimeMs === undefined ? {} : { mtimeMs: c.mtimeMs }),
    ctimeMs: a.nowMs,
  };
  db.inodes.putSync(next.inodeId, next);
  return next;
}
