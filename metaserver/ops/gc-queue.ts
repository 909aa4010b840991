// The persisted queue of chunk removals: an entry per removed file, drained by gc-runner.ts.
import type { MetaTables } from '../tables.js';
import { nextCounter } from '../tables.js';
import type { GcEntry, InodeRecord } from '../types.js';

/** Drops one link of a file inode; the last one deletes it and queues its chunks. */
export function dropFileLink(db: MetaTables, inode: InodeRecord, nowMs: number): void {
  if (inode.nlink > 1) {
    db.inodes.putSync(inode.inodeId, { ...inode, nlink: inode.nlink - 1, ctimeMs: nowMs });
    return;
  }
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
