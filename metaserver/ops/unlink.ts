// unlink: files and symlinks (the link itself); a file goes with its last link and session.
import { flyfsError } from '../../common/errors.js';
import type { MetaTables } from '../tables.js';
import { dropLink } from './gc-queue.js';
import { resolveParent, touch } from './paths.js';

export function unlinkOp(db: MetaTables, a: { parts: readonly string[]; path: string; nowMs: number }): Record<string, never> {
  if (a.parts.length === 0) throw flyfsError('FLYFS_ERR_IS_DIR', undefined, { path: a.path });
  const { parent, name, inode } = resolveParent(db, a.parts, a.path);
  if (inode === undefined) throw flyfsError('FLYFS_ERR_NOT_FOUND', undefined, { path: a.path });
  if (inode.kind === 'dir') throw flyfsError('FLYFS_ERR_IS_DIR', undefined, { path: a.path });
  db.dirents.removeSync([parent.inodeId, name]);
  touch(db, parent, a.nowMs);
  dropLink(db, inode, a.nowMs);
  return {};
}
