// sync (fsync of a write handle): records the writer's written end without ending its session.
import { flyfsError } from '../../common/errors.js';
import type { InodeId, SessionId } from '../../common/ids.js';
import type { MetaTables } from '../tables.js';
import type { InodeRecord } from '../types.js';
import { getInode } from './paths.js';
import { extendTo, mustSession } from './sessions.js';

export function syncOp(db: MetaTables, a: { inodeId: InodeId; sessionId: SessionId; length: number; nowMs: number }): InodeRecord {
  const inode = getInode(db, a.inodeId);
  if (inode === undefined) throw flyfsError('FLYFS_ERR_NOT_FOUND', `inode ${a.inodeId}`);
  mustSession(db, a.inodeId, a.sessionId);
  if (a.length <= inode.length) return inode;
  return extendTo(db, inode, a.length, a.nowMs);
}
