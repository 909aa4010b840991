// rename: atomic within and across directories; replaces a file by a file or an empty
// directory by a directory; never moves a directory into its own subtree or renames the root.
import { flyfsError } from '../../common/errors.js';
import type { MetaTables } from '../tables.js';
import type { InodeRecord } from '../types.js';
import { dropFileLink } from './gc-queue.js';
import { dirIsEmpty, getDirent, getInode, mustInode, resolveParent, touch } from './paths.js';

export interface RenameArgs { from: readonly string[]; to: readonly string[]; fromPath: string; toPath: string; nowMs: number }

export function renameOp(db: MetaTables, a: RenameArgs): Record<string, never> {
  if (a.from.length === 0 || a.to.length === 0) throw flyfsError('FLYFS_ERR_BUSY', 'cannot rename the root', { path: a.fromPath, dest: a.toPath });
  const src = resolveParent(db, a.from, a.fromPath);
  const srcDirent = getDirent(db, src.parent.inodeId, src.name);
  if (srcDirent === undefined) throw flyfsError('FLYFS_ERR_NOT_FOUND', undefined, { path: a.fromPath, dest: a.toPath });
  const dst = resolveParent(db, a.to, a.toPath);
  const moving = mustInode(db, srcDirent.inodeId, a.fromPath);
  if (moving.kind === 'dir' && dst.ancestors.some((d) => d.inodeId === moving.inodeId)) {
    throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', 'cannot move a directory into its own subtree', { path: a.fromPath, dest: a.toPath });
  }
  const dstDirent = getDirent(db, dst.parent.inodeId, dst.name);
  if (dstDirent !== undefined && dstDirent.inodeId === moving.inodeId) return {}; // same file: POSIX no-op
  let replaced: InodeRecord | undefined;
  if (dstDirent !== undefined) {
    replaced = mustInode(db, dstDirent.inodeId, a.toPath);
    if (moving.kind === 'dir' && replaced.kind !== 'dir') throw flyfsError('FLYFS_ERR_NOT_DIR', undefined, { path: a.fromPath, dest: a.toPath });
    if (moving.kind !== 'dir' && replaced.kind === 'dir') throw flyfsError('FLYFS_ERR_IS_DIR', undefined, { path: a.fromPath, dest: a.toPath });
    if (replaced.kind === 'dir' && !dirIsEmpty(db, replaced.inodeId)) throw flyfsError('FLYFS_ERR_NOT_EMPTY', undefined, { path: a.fromPath, dest: a.toPath });
  }
  // Checks are done; from here on only writes.
  db.dirents.removeSync([src.parent.inodeId, src.name]);
  db.dirents.putSync([dst.parent.inodeId, dst.name], { inodeId: moving.inodeId, kind: moving.kind });
  if (replaced !== undefined) {
    if (replaced.kind === 'dir') db.inodes.removeSync(replaced.inodeId);
    else dropFileLink(db, replaced, a.nowMs);
  }
  const isDir = moving.kind === 'dir';
  const sameParent = src.parent.inodeId === dst.parent.inodeId;
  // Directory link counts: a removed target dir takes one link of the new parent, the moved dir adds one.
  const dstLinkDelta = (isDir && !sameParent ? 1 : 0) - (replaced?.kind === 'dir' ? 1 : 0);
  const srcParent = mustInode(db, src.parent.inodeId, a.fromPath);
  touch(db, srcParent, a.nowMs, { nlink: srcParent.nlink - (isDir && !sameParent ? 1 : 0) });
  const dstParent = mustInode(db, dst.parent.inodeId, a.toPath);
  touch(db, dstParent, a.nowMs, { nlink: dstParent.nlink + dstLinkDelta });
  const movedNow = getInode(db, moving.inodeId) ?? moving;
  db.inodes.putSync(moving.inodeId, { ...movedNow, ctimeMs: a.nowMs, ...(isDir ? { parentId: dst.parent.inodeId } : {}) });
  return {};
}
