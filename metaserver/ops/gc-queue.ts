// The persisted queue of chunk removals: an entry per removed file, drained by gc-runner.ts.
// An inode goes only when its last link is gone AND no write session holds it open; until
// then it stays with nlink 0, reachable by id through its sessions.
import type { MetaTables } from '../tables.js';
import { nextCounter } from '../tables.js';
import type { GcEntry, InodeRecord } from '../types.js';

/** Drops one link of a non-directory inode; the last one (with no session open) deletes it. */
export function dropLink(db: MetaTables, inode: InodeRecord, nowMs: number): void {
  const nlink = Math.max(0, inode.nlink - 1);
  if (nlink > 0 || inode.writeSessions > 0) {
    db.inodes.putSync(inode.inodeId, { ...inode, nlink, ctimeMs: nowMs });
    return;
  }
  removeInode(db, inode, nowMs);
}

/** Deletes an inode and queues its chunks (if any) for removal. */
export function removeInode(db: MetaTables, inode: InodeRecord, nowMs: number): void {
  db.inodes.removeSync(inode.inodeId);
  if (inode.layout !== undefined && inode.layout.chains.length > 0) {
    const seq = nextCounter(db, 'gc');
    const entry: GcEntry = {
      seq, inodeId: inode.inodeId, chains: [...inode.layout.chains], fromIndex: 0,
      enqueuedMs: nowMs, attempts: 0, nextAttemptMs: nowMs,
    };
    db.gcQueue.putSync(seq, entry);
  }
}
