// unlink: files only.
import { flyfsError } from '../../common/errors.js';
import type { MetaTables } from '../tables.js';
import { dropFileLink } from './gc-queue.js';
import { getDirent, mustInode, resolveParent, touch } from './paths.js';

export function unlinkOp(db: MetaTables, a: { parts: readonly string[]; path: string; nowMs: number }): Record<string, never> {
  if (a.parts.length === 0) throw flyfsError('FLYFS_ERR_IS_DIR', undefined, { path: a.path });
  const { parent, name } = resolveParent(db, a.parts, a.path);
  const dirent = getDirent(db, parent.inodeId, name);
  if (dirent === undefined) throw flyfsError('FLYFS_ERR_NOT_FOUND', undefined, { path: a.path });
  if (dirent.kind === 'dir') throw flyfsError('FLYFS_ERR_IS_DIR', undefined, { path: a.path });
  const inode = mustInode(db, dirent.inodeId, a.path);
  db.dirents.removeSync([parent.inodeId, name]);
  touch(db, parent, a.nowMs);
  dropFileLink(db, inode, a.nowMs);
  return {};
}
