// The head's view of state: committed LMDB, overlaid with uncommitted entries' writes, overlaid
// with the running operation's own writes; and what a savepoint undoes.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { applyWrites, openMetaEnv, type MetaEnv } from '../../metaserver/db.js';
import { Overlay, WriteSetTables } from '../../metaserver/replication/overlay.js';
import { savepoint } from '../../metaserver/tables.js';

let dir: string;
let env: MetaEnv;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'flyfs-overlay-'));
  env = openMetaEnv(dir);
  env.env.transactionSync(() => {
    for (const name of ['a', 'c', 'e', 'g']) env.tables.dirents.putSync([7, name], { committed: name });
    env.tables.dirents.putSync([8, 'other'], { committed: 'other' });
  });
});

afterEach(async () => { await env.close(); await rm(dir, { recursive: true, force: true }); });

const names = (rows: Iterable<{ key: unknown }>): string[] => [...rows].map((r) => (r.key as [number, string])[1]);

describe('overlay', () => {
  it('reads the newest layer: the operation, then uncommitted entries, then LMDB', () => {
    const overlay = new Overlay();
    overlay.add(5, [['dirents', [7, 'c'], { entry: 5 }], ['dirents', [7, 'e'], undefined]]);
    const ws = new WriteSetTables(env.tables, overlay);
    const t = ws.tables;
    expect(t.dirents.get([7, 'a'])).toEqual({ committed: 'a' });
    expect(t.dirents.get([7, 'c'])).toEqual({ entry: 5 });
    expect(t.dirents.get([7, 'e'])).toBeUndefined();
    t.dirents.putSync([7, 'b'], { op: true });
    expect(t.dirents.removeSync([7, 'g'])).toBe(true);
    expect(t.dirents.removeSync([7, 'zz'])).toBe(false);
    expect(names(t.dirents.getRange({ start: [7, ''], end: [8] }))).toEqual(['a', 'b', 'c']);
    expect(names(t.dirents.getRange({ start: [7, ''], end: [8], limit: 2 }))).toEqual(['a', 'b']);
    expect(names(t.dirents.getRange({ start: [7, 'b'], end: [8], limit: 1 }))).toEqual(['b']);
    expect(names(t.dirents.getRange({ start: [8, 'zzz'], end: [7, ''], reverse: true }))).toEqual(['other', 'c', 'b', 'a']);
    // LMDB itself is untouched until the write set is applied.
    expect(env.tables.dirents.get([7, 'g'])).toEqual({ committed: 'g' });
    expect(ws.writes).toEqual([['dirents', [7, 'b'], { op: true }], ['dirents', [7, 'g'], undefined], ['dirents', [7, 'zz'], undefined]]);
  });

  it('forgets an entry once it is applied, unless a later entry rewrote the key', () => {
    const overlay = new Overlay();
    overlay.add(5, [['inodes', 1, { v: 5 }], ['inodes', 2, { v: 5 }]]);
    overlay.add(6, [['inodes', 2, { v: 6 }]]);
    env.env.transactionSync(() => applyWrites(env.tables, [['inodes', 1, { v: 5 }], ['inodes', 2, { v: 5 }]]));
    overlay.applied(5, [['inodes', 1, { v: 5 }], ['inodes', 2, { v: 5 }]]);
    const t = new WriteSetTables(env.tables, overlay).tables;
    expect(t.inodes.get(1)).toEqual({ v: 5 });
    expect(t.inodes.get(2)).toEqual({ v: 6 });
    expect(overlay.size()).toBe(1);
  });

  it('a savepoint undoes the writes of a step that throws, and keeps the earlier ones', () => {
    const ws = new WriteSetTables(env.tables, new Overlay());
    const t = ws.tables;
    t.counters.putSync('kept', 1);
    expect(() => savepoint(t, () => { t.counters.putSync('undone', 2); t.dirents.removeSync([7, 'a']); throw new Error('step failed'); })).toThrow('step failed');
    expect(t.counters.get('undone')).toBeUndefined();
    expect(t.dirents.get([7, 'a'])).toEqual({ committed: 'a' });
    expect(t.counters.get('kept')).toBe(1);
    expect(ws.writes).toEqual([['counters', 'kept', 1]]);
  });
});
