// mkdir, with Node's recursive semantics.
import { flyfsError } from '../../common/errors.js';
import { inodeId } from '../../common/ids.js';
import type { MetaTables } from '../tables.js';
import { nextCounter } from '../tables.js';
import type { InodeRecord, LayoutPolicy } from '../types.js';
import { getDirent, mustInode, touch, walkDirs } from './paths.js';

export interface MkdirArgs { parts: readonly string[]; path: string; mode: number; recursive: boolean; policy: LayoutPolicy; nowMs: number }

export function mkdirOp(db: MetaTables, a: MkdirArgs): InodeRecord {
  if (a.parts.length === 0) {
    if (a.recursive) return mustInode(db, inodeId(1), a.path);
    throw flyfsError('FLYFS_ERR_EXISTS', undefined, { path: a.path });
  }
  if (!a.recursive) {
    const dirs = walkDirs(db, a.parts.slice(0, -1), a.path);
    const parent = dirs[dirs.length - 1]!;
    const name = a.parts[a.parts.length - 1]!;
    if (getDirent(db, parent.inodeId, name) !== undefined) throw flyfsError('FLYFS_ERR_EXISTS', undefined, { path: a.path });
    return createDir(db, parent, name, a);
  }
  let cur = mustInode(db, inodeId(1), a.path);
  for (let i = 0; i < a.parts.length; i++) {
    const name = a.parts[i]!;
    const last = i === a.parts.length - 1;
    const dirent = getDirent(db, cur.inodeId, name);
    if (dirent === undefined) { cur = createDir(db, cur, name, { ...a, policy: last ? a.policy : { chunkSizeBytes: 0, stripe: 0, chainTableId: 0 } }); continue; }
    if (dirent.kind !== 'dir') throw flyfsError(last ? 'FLYFS_ERR_EXISTS' : 'FLYFS_ERR_NOT_DIR', undefined, { path: a.path });
    cur = mustInode(db, dirent.inodeId, a.path);
  }
  return cur;
}

function createDir(db: MetaTables, parent: InodeRecord, name: string, a: MkdirArgs): InodeRecord {
  const id = inodeId(nextCounter(db, 'inode', 1));
  const inode: InodeRecord = {
    inodeId: id, kind: 'dir', mode: a.mode, nlink: 2, length: 0,
    ctimeMs: a.nowMs, mtimeMs: a.nowMs, atimeMs: a.nowMs, birthtimeMs: a.nowMs,
    layoutPolicy: a.policy, parentId: parent.inodeId,
  };
  db.inodes.putSync(id, inode);
  db.dirents.putSync([parent.inodeId, name], { inodeId: id, kind: 'dir' });
  touch(db, parent, a.nowMs, { nlink: parent.nlink + 1 });
  return inode;
}
