// Path resolution over the dirents table (following symlinks), shared by every namespace operation.
import { flyfsError } from '../../common/errors.js';
import { ROOT_INODE_ID, type InodeId } from '../../common/ids.js';
import type { MetaTables } from '../tables.js';
import { limits } from '../../common/limits.js';
import { validateName } from '../../common/names.js';
import type { DirentRecord, InodeRecord, LayoutPolicy } from '../types.js';

const inodeDefaults = { uid: 0, gid: 0, writeSessions: 0 } as const;

/** An inode as stored; records written before uid, gid and writeSessions existed read as 0. */
export function getInode(db: MetaTables, id: InodeId): InodeRecord | undefined {
  const rec = db.inodes.get(id) as InodeRecord | undefined;
  if (rec === undefined) return undefined;
  // Records are read-only, so a complete one is returned as it is: spreading a decoded record
  // costs about 12 µs here, ten times its read (BENCHMARKS.md, meta).
  if (rec.uid !== undefined && rec.gid !== undefined && rec.writeSessions !== undefined) return rec;
  return { ...inodeDefaults, ...rec };
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

/** Where a path leads, after following symbolic links. */
export interface Resolved {
  /** The directories from the root down to the one holding the final entry, as they really nest. */
  readonly ancestors: readonly InodeRecord[];
  /** The directory holding the final entry (the root for the root itself). */
  readonly parent: InodeRecord;
  /** The final entry's name in `parent`; '' where the path ends in the root, '.' or '..'. */
  readonly name: string;
  /** The final entry; undefined where only the last component is missing. */
  readonly inode: InodeRecord | undefined;
}

export interface ResolveOptions {
  /** Follow a symlink in the last component (stat, open) or not (lstat, unlink, rename, link). */
  readonly followLast: boolean;
}

/**
 * Walks a path component by component. Symlinks met before the last component are always
 * followed, the last one only with followLast; relative targets resolve against the link's
 * directory, absolute ones against the root. More than limits.symlinkFollowsMax follows fail
 * ELOOP; a missing intermediate ENOENT; a file as an intermediate ENOTDIR.
 */
export function resolvePath(db: MetaTables, parts: readonly string[], path: string, options: ResolveOptions): Resolved {
  const root = mustInode(db, ROOT_INODE_ID, path);
  const dirs: InodeRecord[] = [root];
  const pending = [...parts].reverse();
  let follows = 0;
  let final: { name: string; inode: InodeRecord | undefined } = { name: '', inode: root };
  while (pending.length > 0) {
    const name = pending.pop()!;
    const last = pending.length === 0;
    if (name === '.' || name === '..') {
      if (name === '..' && dirs.length > 1) dirs.pop();
      final = { name: '', inode: dirs[dirs.length - 1]! };
      continue;
    }
    const dir = dirs[dirs.length - 1]!;
    const dirent = getDirent(db, dir.inodeId, name);
    if (dirent === undefined) {
      if (last) return { ancestors: dirs, parent: dir, name, inode: undefined };
      throw flyfsError('FLYFS_ERR_NOT_FOUND', undefined, { path });
    }
    const inode = mustInode(db, dirent.inodeId, path);
    if (inode.kind === 'symlink' && (!last || options.followLast)) {
      follows++;
      if (follows > limits.symlinkFollowsMax) throw flyfsError('FLYFS_ERR_LOOP', undefined, { path });
      const target = inode.target ?? '';
      if (target.startsWith('/')) dirs.length = 1;
      pending.push(...targetParts(target, path).reverse());
      final = { name: '', inode: dirs[dirs.length - 1]! };
      continue;
    }
    if (last) return { ancestors: dirs, parent: dir, name, inode };
    if (inode.kind !== 'dir') throw flyfsError('FLYFS_ERR_NOT_DIR', undefined, { path });
    dirs.push(inode);
    final = { name: '', inode };
  }
  // The path ended in the root, '.', '..' or a link to a directory given by one of those.
  const inode = final.inode!;
  const ancestors = dirs.length > 1 ? dirs.slice(0, -1) : dirs;
  return { ancestors, parent: ancestors[ancestors.length - 1]!, name: final.name, inode };
}

/** The components of a symlink target; '.' and '..' stay, for the walk to apply. */
function targetParts(target: string, path: string): string[] {
  const out: string[] = [];
  for (const part of target.split('/')) {
    if (part === '') continue;
    if (part !== '.' && part !== '..') validateName(part, path);
    out.push(part);
  }
  return out;
}

/** The inode a path names; missing is ENOENT. */
export function resolveInode(db: MetaTables, parts: readonly string[], path: string, options: ResolveOptions = { followLast: true }): InodeRecord {
  const r = resolvePath(db, parts, path, options);
  if (r.inode === undefined) throw flyfsError('FLYFS_ERR_NOT_FOUND', undefined, { path });
  return r.inode;
}

/** Where a path's last component (not followed) is or would be: for create and remove. */
export function resolveParent(db: MetaTables, parts: readonly string[], path: string): Resolved {
  if (parts.length === 0) throw flyfsError('FLYFS_ERR_INTERNAL', 'resolveParent of root', { path });
  return resolvePath(db, parts, path, { followLast: false });
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
