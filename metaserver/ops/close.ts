// close: ends a write session, recording the length the writer leaves.
import { flyfsError } from '../../common/errors.js';
import type { InodeId, SessionId } from '../../common/ids.js';
import type { MetaTables } from '../tables.js';
import type { InodeRecord, SessionRecord } from '../types.js';
import { getInode, touch } from './paths.js';

export interface CloseArgs { inodeId: InodeId; sessionId: SessionId; length: number; lengthSet: boolean; nowMs: number }

export function closeOp(db: MetaTables, a: CloseArgs): InodeRecord {
  const inode = getInode(db, a.inodeId);
  if (inode === undefined) throw flyfsError('FLYFS_ERR_NOT_FOUND', `inode ${a.inodeId}`);
  if (a.sessionId === 0) {
    if (a.lengthSet) throw flyfsError('FLYFS_ERR_BAD_SESSION', 'a length needs a write session');
    return inode;
  }
  const session = db.sessions.get(a.sessionId) as SessionRecord | undefined;
  if (session === undefined || session.inodeId !== a.inodeId) throw flyfsError('FLYFS_ERR_BAD_SESSION', `session ${a.sessionId}`);
  if (inode.kind !== 'file') throw flyfsError('FLYFS_ERR_IS_DIR', `inode ${a.inodeId}`);
  db.sessions.removeSync(a.sessionId);
  return touch(db, inode, a.nowMs, a.lengthSet ? { length: a.length } : {});
}
