// Write sessions of open files: started by open, ended by close or by pruning a dead client.
// The inode counts its sessions, so the last end of an unlinked file finishes its deletion.
import { flyfsError } from '../../common/errors.js';
import { sessionId, type InodeId, type SessionId } from '../../common/ids.js';
import type { MetaTables } from '../tables.js';
import { nextCounter } from '../tables.js';
import type { InodeRecord, SessionRecord } from '../types.js';
import { removeInode } from './gc-queue.js';
import { getInode } from './paths.js';

export function startSession(db: MetaTables, inode: InodeRecord, a: { clientId: string; nowMs: number }): { sessionId: SessionId; inode: InodeRecord } {
  const id = sessionId(nextCounter(db, 'session'));
  const record: SessionRecord = { sessionId: id, inodeId: inode.inodeId, clientId: a.clientId, openedMs: a.nowMs };
  db.sessions.putSync(id, record);
  const next: InodeRecord = { ...inode, writeSessions: inode.writeSessions + 1 };
  db.inodes.putSync(next.inodeId, next);
  return { sessionId: id, inode: next };
}

/** The session `id` of file `inodeId`, or FLYFS_ERR_BAD_SESSION. */
export function mustSession(db: MetaTables, inodeId: InodeId, id: SessionId): SessionRecord {
  const session = db.sessions.get(id) as SessionRecord | undefined;
  if (session === undefined || session.inodeId !== inodeId) throw flyfsError('FLYFS_ERR_BAD_SESSION', `session ${id}`);
  return session;
}

/** The file's length becomes at least `length` (writers only ever extend; truncate shrinks). */
export function extendTo(db: MetaTables, inode: InodeRecord, length: number, nowMs: number): InodeRecord {
  const next: InodeRecord = { ...inode, length: Math.max(inode.length, length), mtimeMs: nowMs, ctimeMs: nowMs };
  db.inodes.putSync(next.inodeId, next);
  return next;
}

/** Ends one session; returns the inode as it is left (deleted when unlinked and this was its last session). */
export function endSession(db: MetaTables, session: SessionRecord, nowMs: number): InodeRecord | undefined {
  db.sessions.removeSync(session.sessionId);
  const inode = getInode(db, session.inodeId);
  if (inode === undefined) return undefined;
  const next: InodeRecord = { ...inode, writeSessions: Math.max(0, inode.writeSessions - 1) };
  if (next.nlink === 0 && next.writeSessions === 0) {
    removeInode(db, next, nowMs);
    return next;
  }
  db.inodes.putSync(next.inodeId, next);
  return next;
}
