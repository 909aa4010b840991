// readlink: the target of a symlink (the last component is not followed); anything else is EINVAL.
import { flyfsError } from '../../common/errors.js';
import type { MetaTables } from '../tables.js';
import { resolveInode } from './paths.js';

export function readlinkOp(db: MetaTables, a: { parts: readonly string[]; path: string }): string {
  const inode = resolveInode(db, a.parts, a.path, { followLast: false });
  if (inode.kind !== 'symlink' || inode.target === undefined) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', 'not a symbolic link', { path: a.path });
  return inode.target;
}
