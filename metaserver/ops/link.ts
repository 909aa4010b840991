// link: a new name for an existing file or symlink (not followed, as Linux's link(2)); never a directory.
import { flyfsError } from '../../common/errors.js';
import type { MetaTables } from '../tables.js';
import type { InodeRecord } from '../types.js';
import { resolveParent, touch } from './paths.js';

export interface LinkArgs { from: readonly string[]; to: readonly string[]; fromPath: string; toPath: string; nowMs: number }

export function linkOp(db: MetaTables, a: LinkArgs): InodeRecord {
  const where = { path: a.fromPath, dest: a.toPath };
  if (a.from.length === 0) throw flyfsError('FLYFS_ERR_NOT_PERMITTED', 'hard link to a directory', where);
  const existing = resolveParent(db, a.from, a.fromPath).inode;
  if (existing === undefined) throw flyfsError('FLYFS_ERR_NOT_FOUND', undefined, where);
  if (existing.kind === 'dir') throw flyfsError('FLYFS_ERR_NOT_PERMITTED', 'hard link to a directory', where);
  if (a.to.length === 0) throw flyfsError('FLYFS_ERR_EXISTS', undefined, where);
  const at = resolveParent(db, a.to, a.toPath);
  if (at.inode !== undefined) throw flyfsError('FLYFS_ERR_EXISTS', undefined, where);
  db.dirents.putSync([at.parent.inodeId, at.name], { inodeId: existing.inodeId, kind: existing.kind });
  touch(db, at.parent, a.nowMs);
  const linked: InodeRecord = { ...existing, nlink: existing.nlink + 1, ctimeMs: a.nowMs };
  db.inodes.putSync(linked.inodeId, linked);
  return linked;
}
