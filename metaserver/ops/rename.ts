// rename: atomic within and across directories; replaces a file by a file or an empty
// directory by a directory; never moves a directory into its own subtree or renames the root.
// Neither last component is followed: a symlink is renamed (or replaced) as the link itself.
import { flyfsError } from '../../common/errors.js';
import type { MetaTables } from '../tables.js';
import type { InodeRecord } from '../types.js';
import { dropLink } from './gc-queue.js';
import { dirIsEmpty, getInode, mustInode, resolveParent, touch } from './paths.js';

export interface RenameArgs { from: readonly string[]; to: readonly string[]; fromPath: string; toPath: string; nowMs: number }

export function renameOp(db: MetaTables, a: RenameArgs): Record<string, never> {
  const where = { path: a.fromPath, dest: a.toPath };
  if (a.from.length === 0 || a.to.length === 0) throw flyfsError('FLYFS_ERR_BUSY', 'cannot rename the root', where);
  const src = resolveParent(db, a.from, a.fromPath);
  const moving = src.inode;
  if (moving === undefined) throw flyfsError('FLYFS_ERR_NOT_FOUND', undefined, where);
  const dst = resolveParent(db, a.to, a.toPath);
  const replaced = dst.inode;
  if (replaced !== undefined && replaced.inodeId === moving.inodeId) return {}; // the same file (or a hard link of it): POSIX no-op
  if (moving.kind === 'dir' && dst.ancestors.some((d) => d.inodeId === moving.inodeId)) {
    throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', 'cannot move a directory into its own subtree', where);
  }
  if (replaced !== undefined) checkReplace(db, moving, replaced, where);
  // Checks are done; from here on only writes.
  db.dirents.removeSync([src.parent.inodeId, src.name]);
  db.dirents.putSync([dst.parent.inodeId, dst.name], { inodeId: moving.inodeId, kind: moving.kind });
  if (replaced !== undefined) {
    if (replaced.kind === 'dir') db.inodes.removeSync(replaced.inodeId);
    else dropLink(db, replaced, a.nowMs);
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

function checkReplace(db: MetaTables, moving: InodeRecord, replaced: InodeRecord, where: { path: string; dest: string }): void {
  if (moving.kind === 'dir' && replaced.kind !== 'dir') throw flyfsError('FLYFS_ERR_NOT_DIR', undefined, where);
  if (moving.kind !== 'dir' && replaced.kind === 'dir') throw flyfsError('FLYFS_ERR_IS_DIR', undefined, where);
  if (replaced.kind === 'dir' && !dirIsEmpty(db, replaced.inodeId)) throw flyfsError('FLYFS_ERR_NOT_EMPTY', undefined, where);
}
