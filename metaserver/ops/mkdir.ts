// mkdir, with Node's recursive semantics; symlinks to directories are walked through.
import { flyfsError } from '../../common/errors.js';
import { inodeId } from '../../common/ids.js';
import type { MetaTables } from '../tables.js';
import { nextCounter } from '../tables.js';
import type { InodeRecord, LayoutPolicy } from '../types.js';
import { mustInode, resolveParent, resolvePath, touch } from './paths.js';

export interface MkdirArgs { parts: readonly string[]; path: string; mode: number; recursive: boolean; policy: LayoutPolicy; nowMs: number }

const inherit: LayoutPolicy = { chunkSizeBytes: 0, stripe: 0, chainTableId: 0 };

export function mkdirOp(db: MetaTables, a: MkdirArgs): InodeRecord {
  if (a.parts.length === 0) {
    if (a.recursive) return mustInode(db, inodeId(1), a.path);
    throw flyfsError('FLYFS_ERR_EXISTS', undefined, { path: a.path });
  }
  if (!a.recursive) {
    const r = resolveParent(db, a.parts, a.path);
    if (r.inode !== undefined) throw flyfsError('FLYFS_ERR_EXISTS', undefined, { path: a.path });
    return createDir(db, r.parent, r.name, a);
  }
  let cur: InodeRecord | undefined;
  for (let i = 1; i <= a.parts.length; i++) {
    const last = i === a.parts.length;
    const prefix = a.parts.slice(0, i);
    const r = resolveParent(db, prefix, a.path);
    if (r.inode === undefined) { cur = createDir(db, r.parent, r.name, { ...a, policy: last ? a.policy : inherit }); continue; }
    cur = r.inode.kind === 'symlink' ? resolvePath(db, prefix, a.path, { followLast: true }).inode : r.inode;
    if (cur?.kind !== 'dir') throw flyfsError(last ? 'FLYFS_ERR_EXISTS' : 'FLYFS_ERR_NOT_DIR', undefined, { path: a.path });
  }
  return cur!;
}

function createDir(db: MetaTables, parent: InodeRecord, name: string, a: MkdirArgs): InodeRecord {
  const id = inodeId(nextCounter(db, 'inode', 1));
  const inode: InodeRecord = {
    inodeId: id, kind: 'dir', mode: a.mode, nlink: 2, length: 0, uid: 0, gid: 0, writeSessions: 0,
    ctimeMs: a.nowMs, mtimeMs: a.nowMs, atimeMs: a.nowMs, birthtimeMs: a.nowMs,
    layoutPolicy: a.policy, parentId: parent.inodeId,
  };
  db.inodes.putSync(id, inode);
  db.dirents.putSync([parent.inodeId, name], { inodeId: id, kind: 'dir' });
  touch(db, parent, a.nowMs, { nlink: parent.nlink + 1 });
  return inode;
}
