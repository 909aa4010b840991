// open: look up or create a file; write opens start a session. Truncation's chunk removal
// happens before this runs (the store awaits it), this only records length 0.
import { flyfsError } from '../../common/errors.js';
import { inodeId, sessionId, type SessionId } from '../../common/ids.js';
import { chooseChains, type FileLayout } from '../../common/layout.js';
import type { MetaTables } from '../tables.js';
import { nextCounter } from '../tables.js';
import { OpenFlags, type ChainTableSource, type InodeRecord } from '../types.js';
import { effectivePolicy, getDirent, mustInode, resolveInode, resolveParent, touch } from './paths.js';

export interface OpenArgs { parts: readonly string[]; path: string; flags: number; mode: number; clientId: string; nowMs: number; tables: ChainTableSource }
export interface OpenResult { inode: InodeRecord; sessionId: SessionId }

export function isWriteOpen(flags: number): boolean {
  return (flags & (OpenFlags.write | OpenFlags.append)) !== 0;
}

export function openOp(db: MetaTables, a: OpenArgs): OpenResult {
  const write = isWriteOpen(a.flags);
  let inode: InodeRecord;
  if (a.parts.length === 0) {
    inode = resolveInode(db, a.parts, a.path);
  } else {
    const { ancestors, parent, name } = resolveParent(db, a.parts, a.path);
    const dirent = getDirent(db, parent.inodeId, name);
    if (dirent === undefined) {
      if ((a.flags & OpenFlags.create) === 0) throw flyfsError('FLYFS_ERR_NOT_FOUND', undefined, { path: a.path });
      inode = createFile(db, ancestors, parent, name, a);
      return { inode, sessionId: write ? startSession(db, inode, a) : sessionId(0) };
    }
    if ((a.flags & OpenFlags.create) !== 0 && (a.flags & OpenFlags.exclusive) !== 0) {
      throw flyfsError('FLYFS_ERR_EXISTS', undefined, { path: a.path });
    }
    inode = mustInode(db, dirent.inodeId, a.path);
  }
  if (inode.kind === 'dir' && write) throw flyfsError('FLYFS_ERR_IS_DIR', undefined, { path: a.path });
  if (inode.kind === 'file' && (a.flags & OpenFlags.truncate) !== 0) inode = touch(db, inode, a.nowMs, { length: 0 });
  return { inode, sessionId: write ? startSession(db, inode, a) : sessionId(0) };
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

function createFile(db: MetaTables, ancestors: readonly InodeRecord[], parent: InodeRecord, name: string, a: OpenArgs): InodeRecord {
  // The counter is read first so a NO_CHAINS refusal (child transaction aborted) burns no id.
  const id = inodeId(((db.counters.get('inode') as number | undefined) ?? 1) + 1);
  const layout = chooseLayout(ancestors, id, a.tables, a.path);
  const assigned = nextCounter(db, 'inode', 1);
  if (assigned !== id) throw flyfsError('FLYFS_ERR_INTERNAL', 'inode counter moved');
  const inode: InodeRecord = {
    inodeId: id, kind: 'file', mode: a.mode, nlink: 1, length: 0,
    ctimeMs: a.nowMs, mtimeMs: a.nowMs, atimeMs: a.nowMs, birthtimeMs: a.nowMs, layout,
  };
  db.inodes.putSync(id, inode);
  db.dirents.putSync([parent.inodeId, name], { inodeId: id, kind: 'file' });
  touch(db, parent, a.nowMs);
  return inode;
}

function startSession(db: MetaTables, inode: InodeRecord, a: OpenArgs): SessionId {
  const id = sessionId(nextCounter(db, 'session'));
  db.sessions.putSync(id, { sessionId: id, inodeId: inode.inodeId, clientId: a.clientId, openedMs: a.nowMs });
  return id;
}
