// Path resolution over the dirents table, shared by every namespace operation.
import { flyfsError } from '../../common/errors.js';
import { ROOT_INODE_ID, type InodeId } from '../../common/ids.js';
import type { MetaTables } from '../tables.js';
import type { DirentRecord, InodeRecord, LayoutPolicy } from '../types.js';

export function getInode(db: MetaTables, id: InodeId): InodeRecord | undefined {
  return db.inodes.get(id) as InodeRecord | undefined;
}

export function mustInode(db: MetaTables, id: InodeId, path: string): InodeRecord {
  const inode = getInode(db, id);
  if (inode === undefined) throw flyfsError('FLYFS_ERR_INTERNAL', `dangling inode ${id}`, { path });
  return inode;
}

export function getDirent(db: MetaTables, parentId: InodeId, name: string): DirentRecord | undefined {
  return db.dirents.get([parentId, name]) as DirentRecord | undefined;
}

export function dirIsEmpty(db: MetaTables, dirId: InodeId): boolean {
  for (const _ of db.dirents.getKeys({ start: [dirId, ''], end: [dirId + 1], limit: 1 })) return false;
  return true;
}

/** The directories from root down to (and including) the one holding the last component. */
export interface ResolvedParent {
  readonly ancestors: readonly InodeRecord[];
  readonly parent: InodeRecord;
  readonly name: string;
}

/** Walks every component but the last: each must exist and be a directory. */
export function resolveParent(db: MetaTables, parts: readonly string[], path: string): ResolvedParent {
  const name = parts[parts.length - 1];
  if (name === undefined) throw flyfsError('FLYFS_ERR_INTERNAL', 'resolveParent of root', { path });
  const ancestors = walkDirs(db, parts.slice(0, -1), path);
  return { ancestors, parent: ancestors[ancestors.length - 1]!, name };
}

export function walkDirs(db: MetaTables, parts: readonly string[], path: string): InodeRecord[] {
  const chain: InodeRecord[] = [mustInode(db, ROOT_INODE_ID, path)];
  for (const part of parts) {
    const dirent = getDirent(db, chain[chain.length - 1]!.inodeId, part);
    if (dirent === undefined) throw flyfsError('FLYFS_ERR_NOT_FOUND', undefined, { path });
    if (dirent.kind !== 'dir') throw flyfsError('FLYFS_ERR_NOT_DIR', undefined, { path });
    chain.push(mustInode(db, dirent.inodeId, path));
  }
  return chain;
}

/** The inode a path names (root for []). */
export function resolveInode(db: MetaTables, parts: readonly string[], path: string): InodeRecord {
  if (parts.length === 0) return mustInode(db, ROOT_INODE_ID, path);
  const { parent, name } = resolveParent(db, parts, path);
  const dirent = getDirent(db, parent.inodeId, name);
  if (dirent === undefined) throw flyfsError('FLYFS_ERR_NOT_FOUND', undefined, { path });
  return mustInode(db, dirent.inodeId, path);
}

/** The nearest non-zero value of each policy field, walking from the deepest directory up. */
export function effectivePolicy(ancestors: readonly InodeRecord[]): LayoutPolicy {
  let chunkSizeBytes = 0; let stripe = 0; let chainTableId = 0;
  for (let i = ancestors.length - 1; i >= 0; i--) {
    const p = ancestors[i]!.layoutPolicy;
    if (p === undefined) continue;
    if (chunkSizeBytes === 0) chunkSizeBytes = p.chunkSizeBytes;
    if (stripe === 0) stripe = p.stripe;
    if (chainTableId === 0) chainTableId = p.chainTableId;
  }
  return { chunkSizeBytes, stripe, chainTableId };
}

export function touch(db: MetaTables, inode: InodeRecord, nowMs: number, change: Partial<InodeRecord> = {}): InodeRecord {
  const next: InodeRecord = { ...inode, ...change, mtimeMs: nowMs, ctimeMs: nowMs };
  db.inodes.putSync(next.inodeId, next);
  return next;
}
