// truncate: sets a file's length exactly, up or down. The store first trims the chunks past the
// new end on the storage servers (truncatePlan says which), then commits the length with truncateOp,
// so bytes past the end read as zeros when the file grows again.
import { flyfsError } from '../../common/errors.js';
import type { InodeId } from '../../common/ids.js';
import type { FileLayout } from '../../common/layout.js';
import { chainOfChunk } from '../../common/layout.js';
import type { MetaTables } from '../tables.js';
import type { InodeRecord } from '../types.js';
import { getInode, resolveInode } from './paths.js';

/** What a truncate does to the chunks: trim the one holding the new end, remove those past it. */
export interface TruncatePlan {
  readonly trim?: { readonly index: number; readonly chainId: number; readonly lengthBytes: number };
  /** Chunks with index >= this go, on every chain of the layout. */
  readonly removeFromIndex: number;
}

/** The file a truncate by inode id (when not 0) or by path (symlinks followed) applies to. */
export function truncateTarget(db: MetaTables, a: { parts: readonly string[]; path: string; inodeId: InodeId | 0 }): InodeRecord {
  const inode = a.inodeId === 0 ? resolveInode(db, a.parts, a.path) : getInode(db, a.inodeId);
  if (inode === undefined) throw flyfsError('FLYFS_ERR_NOT_FOUND', `inode ${a.inodeId}`, { path: a.path });
  if (inode.kind === 'dir') throw flyfsError('FLYFS_ERR_IS_DIR', undefined, { path: a.path });
  if (inode.kind !== 'file') throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', 'not a regular file', { path: a.path });
  return inode;
}

/**
 * Cuts at the lower of the old and new length: going down drops the tail, going up makes sure
 * no stale bytes past the old end show through the new hole.
 */
export function truncatePlan(layout: FileLayout, oldLength: number, newLength: number): TruncatePlan {
  const cut = Math.min(oldLength, newLength);
  const index = Math.floor(cut / layout.chunkSizeBytes);
  const lengthBytes = cut % layout.chunkSizeBytes;
  if (lengthBytes === 0) return { removeFromIndex: index };
  return { trim: { index, chainId: chainOfChunk(layout, index), lengthBytes }, removeFromIndex: index + 1 };
}

export function truncateOp(db: MetaTables, a: { inodeId: InodeId; length: number; nowMs: number }): InodeRecord {
  const inode = getInode(db, a.inodeId);
  if (inode === undefined) throw flyfsError('FLYFS_ERR_NOT_FOUND', `inode ${a.inodeId}`);
  if (inode.kind !== 'file') throw flyfsError('FLYFS_ERR_IS_DIR', `inode ${a.inodeId}`);
  const next: InodeRecord = { ...inode, length: a.length, mtimeMs: a.nowMs, ctimeMs: a.nowMs };
  db.inodes.putSync(next.inodeId, next);
  return next;
}
