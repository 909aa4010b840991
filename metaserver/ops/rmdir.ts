// rmdir: empty directories only (not a symlink to one), never the root.
import { flyfsError } from '../../common/errors.js';
import type { MetaTables } from '../tables.js';
import { dirIsEmpty, resolveParent, touch } from './paths.js';

export function rmdirOp(db: MetaTables, a: { parts: readonly string[]; path: string; nowMs: number }): Record<string, never> {
  if (a.parts.length === 0) throw flyfsError('FLYFS_ERR_BUSY', 'cannot remove the root', { path: a.path });
  const { parent, name, inode } = resolveParent(db, a.parts, a.path);
  if (inode === undefined) throw flyfsError('FLYFS_ERR_NOT_FOUND', undefined, { path: a.path });
  if (inode.kind !== 'dir') throw flyfsError('FLYFS_ERR_NOT_DIR', undefined, { path: a.path });
  if (!dirIsEmpty(db, inode.inodeId)) throw flyfsError('FLYFS_ERR_NOT_EMPTY', undefined, { path: a.path });
  db.dirents.removeSync([parent.inodeId, name]);
  db.inodes.removeSync(inode.inodeId);
  touch(db, parent, a.nowMs, { nlink: parent.nlink - 1 });
  return {};
}
