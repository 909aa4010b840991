// readdir: one page of a directory, sorted by name; the cursor is the last name returned.
import { flyfsError } from '../../common/errors.js';
import type { MetaTables } from '../tables.js';
import type { DirEntry, DirentRecord } from '../types.js';
import { resolveInode } from './paths.js';

export interface ReaddirPage { entries: DirEntry[]; nextCursor: string }

export function readdirOp(db: MetaTables, a: { parts: readonly string[]; path: string; cursor: string; limit: number }): ReaddirPage {
  const dir = resolveInode(db, a.parts, a.path);
  if (dir.kind !== 'dir') throw flyfsError('FLYFS_ERR_NOT_DIR', undefined, { path: a.path });
  const entries: DirEntry[] = [];
  let more = false;
  for (const { key, value } of db.dirents.getRange({ start: [dir.inodeId, a.cursor], end: [dir.inodeId + 1] })) {
    const name = (key as [number, string])[1];
    if (name === a.cursor) continue;
    if (entries.length === a.limit) { more = true; break; }
    const d = value as DirentRecord;
    entries.push({ name, inodeId: d.inodeId, kind: d.kind });
  }
  return { entries, nextCursor: more ? entries[entries.length - 1]!.name : '' };
}
