// symlink: a new inode of kind 'symlink' holding its target as given (resolved only when followed).
import { flyfsError } from '../../common/errors.js';
import { inodeId } from '../../common/ids.js';
import type { MetaTables } from '../tables.js';
import { nextCounter } from '../tables.js';
import type { InodeRecord } from '../types.js';
import { resolveParent, touch } from './paths.js';

export function symlinkOp(db: MetaTables, a: { target: string; parts: readonly string[]; path: string; nowMs: number }): InodeRecord {
  if (a.parts.length === 0) throw flyfsError('FLYFS_ERR_EXISTS', undefined, { path: a.path });
  const r = resolveParent(db, a.parts, a.path);
  if (r.inode !== undefined) throw flyfsError('FLYFS_ERR_EXISTS', undefined, { path: a.path });
  const id = inodeId(nextCounter(db, 'inode', 1));
  const inode: InodeRecord = {
    inodeId: id, kind: 'symlink', mode: 0o777, nlink: 1, length: Buffer.byteLength(a.target), uid: 0, gid: 0, writeSessions: 0,
    ctimeMs: a.nowMs, mtimeMs: a.nowMs, atimeMs: a.nowMs, birthtimeMs: a.nowMs, target: a.target,
  };
  db.inodes.putSync(id, inode);
  db.dirents.putSync([r.parent.inodeId, r.name], { inodeId: id, kind: 'symlink' });
  touch(db, r.parent, a.nowMs);
  return inode;
}
