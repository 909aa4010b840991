// close: ends a write session; the file's length becomes at least the writer's written end.
import { flyfsError } from '../../common/errors.js';
import type { InodeId, SessionId } from '../../common/ids.js';
import type { MetaTables } from '../tables.js';
import type { InodeRecord } from '../types.js';
import { getInode } from './paths.js';
import { endSession, extendTo, mustSession } from './sessions.js';

export interface CloseArgs { inodeId: InodeId; sessionId: SessionId; length: number; lengthSet: boolean; nowMs: number }

export function closeOp(db: MetaTables, a: CloseArgs): InodeRecord {
  const inode = getInode(db, a.inodeId);
  if (inode === undefined) throw flyfsError('FLYFS_ERR_NOT_FOUND', `inode ${a.inodeId}`);
  if (a.sessionId === 0) {
    if (a.lengthSet) throw flyfsError('FLYFS_ERR_BAD_SESSION', 'a length needs a write session');
    return inode;
  }
  const session = mustSession(db, a.inodeId, a.sessionId);
  if (inode.kind !== 'file') throw flyfsError('FLYFS_ERR_IS_DIR', `inode ${a.inodeId}`);
  if (a.lengthSet) extendTo(db, inode, a.length, a.nowMs);
  return endSession(db, session, a.nowMs) ?? inode;
}
