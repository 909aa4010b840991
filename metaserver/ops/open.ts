// open: look up (following symlinks) or create a file; write opens start a session.
// Truncation's chunk removal happens before this runs (the store awaits it), this only records length 0.
import { flyfsError } from '../../common/errors.js';
import { inodeId, sessionId, type SessionId } from '../../common/ids.js';
import { chooseChains, type FileLayout } from '../../common/layout.js';
import type { MetaTables } from '../tables.js';
import { nextCounter } from '../tables.js';
import { OpenFlags, type ChainTableSource, type InodeRecord } from '../types.js';
import { effectivePolicy, resolveInode, resolveParent, resolvePath, touch, type Resolved } from './paths.js';
import { startSession } from './sessions.js';

export interface OpenArgs { parts: readonly string[]; path: string; flags: number; mode: number; clientId: string; nowMs: number; tables: ChainTableSource }
export interface OpenResult { inode: InodeRecord; sessionId: SessionId }

export function isWriteOpen(flags: number): boolean {
  return (flags & (OpenFlags.write | OpenFlags.append)) !== 0;
}

export function openOp(db: MetaTables, a: OpenArgs): OpenResult {
  const write = isWriteOpen(a.flags);
  const create = (a.flags & OpenFlags.create) !== 0;
  let inode: InodeRecord;
  if (a.parts.length === 0) {
    inode = resolveInode(db, a.parts, a.path);
  } else {
    const literal = resolveParent(db, a.parts, a.path);
    // O_CREAT|O_EXCL refuses any existing name, a symlink too, wherever it points.
    if (literal.inode !== undefined && create && (a.flags & OpenFlags.exclusive) !== 0) {
      throw flyfsError('FLYFS_ERR_EXISTS', undefined, { path: a.path });
    }
    const r: Resolved = literal.inode?.kind === 'symlink' ? resolvePath(db, a.parts, a.path, { followLast: true }) : literal;
    if (r.inode === undefined) {
      if (!create) throw flyfsError('FLYFS_ERR_NOT_FOUND', undefined, { path: a.path });
      // Creating through a dangling symlink creates its target, as Linux does.
      inode = createFile(db, r, a);
      return write ? startSession(db, inode, a) : { inode, sessionId: sessionId(0) };
    }
    inode = r.inode;
  }
  if (inode.kind === 'dir' && write) throw flyfsError('FLYFS_ERR_IS_DIR', undefined, { path: a.path });
  if (inode.kind === 'file' && (a.flags & OpenFlags.truncate) !== 0) inode = touch(db, inode, a.nowMs, { length: 0 });
  return write ? startSession(db, inode, a) : { inode, sessionId: sessionId(0) };
}

export function chooseLayout(ancestors: readonly InodeRecord[], id: number, tables: ChainTableSource, path: string): FileLayout {
  const policy = effectivePolicy(ancestors);
  const table = tables.chainTable(policy.chainTableId);
  if (table === undefined || table.chains.length === 0) {
    throw flyfsError('FLYFS_ERR_NO_CHAINS', `chain table ${policy.chainTableId} has no chains`, { path });
  }
  const stripe = Math.min(policy.stripe, table.chains.length);
  return {
    chunkSizeBytes: policy.chunkSizeBytes, stripe, chainTableId: policy.chainTableId, chainTableVersion: table.version,
    chains: chooseChains(table.chains, stripe, id), seed: id,
  };
}

function createFile(db: MetaTables, at: Resolved, a: OpenArgs): InodeRecord {
  // The counter is read first so a NO_CHAINS refusal (child transaction aborted) burns no id.
  const id = inodeId(((db.counters.get('inode') as number | undefined) ?? 1) + 1);
  const layout = chooseLayout(at.ancestors, id, a.tables, a.path);
  const assigned = nextCounter(db, 'inode', 1);
  if (assigned !== id) throw flyfsError('FLYFS_ERR_INTERNAL', 'inode counter moved');
  const inode: InodeRecord = {
    inodeId: id, kind: 'file', mode: a.mode, nlink: 1, length: 0, uid: 0, gid: 0, writeSessions: 0,
    ctimeMs: a.nowMs, mtimeMs: a.nowMs, atimeMs: a.nowMs, birthtimeMs: a.nowMs, layout,
  };
  db.inodes.putSync(id, inode);
  db.dirents.putSync([at.parent.inodeId, at.name], { inodeId: id, kind: 'file' });
  touch(db, at.parent, a.nowMs);
  return inode;
}
