// The namespace semantics of the store: symlinks, hard links, sessions that hold unlinked
// files, pruning of dead clients' sessions, truncate and setattr.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { limits } from '../../common/limits.js';
import { truncatePlan } from '../../metaserver/ops/truncate.js';
import { SessionPruner } from '../../metaserver/session-pruner.js';
import { MetaStore } from '../../metaserver/store.js';
import { OpenFlags, type ChunkRemover, type ChunkTrimmer } from '../../metaserver/types.js';

const W = OpenFlags.write;
const C = OpenFlags.create;
let dir: string;
let store: MetaStore;
let clock = 1_000;
const removed: Array<{ chainId: number; fromIndex: number }> = [];
const trimmed: Array<{ index: number; lengthBytes: number }> = [];
const remover: ChunkRemover = async (j) => { removed.push({ chainId: j.chainId, fromIndex: j.fromIndex }); };
const trimmer: ChunkTrimmer = async (j) => { trimmed.push({ index: j.index, lengthBytes: j.lengthBytes }); };

async function codeOf(p: Promise<unknown> | (() => unknown)): Promise<string> {
  try { await (typeof p === 'function' ? p() : p); } catch (err) { return (err as { code: string }).code; }
  return 'no error';
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'flyfs-meta-ns-'));
  removed.length = 0; trimmed.length = 0; clock = 1_000;
  store = await MetaStore.open({
    dataDir: dir, rootChunkSizeBytes: 4096, rootStripe: 2, now: () => clock,
    chainTables: { chainTable: (id) => (id === 1 ? { version: 1, chains: [7, 8] } : undefined) },
    removeChunks: remover, trimChunk: trimmer,
  });
});
afterEach(async () => { await store.close(); await rm(dir, { recursive: true, force: true }); });

async function file(path: string, length = 0): Promise<number> {
  const o = await store.open(path, { flags: W | C, ctx: { clientId: 'c', requestId: clock++ } });
  await store.closeFile({ inodeId: o.inode.inodeId, sessionId: o.sessionId, length, lengthSet: length > 0 });
  return o.inode.inodeId;
}

describe('symlinks', () => {
  it('follows relative and absolute targets in the middle and (for stat) at the end', async () => {
    await store.mkdir('/a/b', { recursive: true });
    const id = await file('/a/b/f', 10);
    await store.symlink('b', '/a/rel');
    await store.symlink('/a/b/f', '/abs');
    await store.symlink('../a/b', '/a/up');
    expect(store.stat('/a/rel/f').inodeId).toBe(id);
    expect(store.stat('/abs').inodeId).toBe(id);
    expect(store.stat('/a/up/f').inodeId).toBe(id);
    expect(store.stat('/abs', { noFollow: true })).toMatchObject({ kind: 'symlink', length: 6 });
    expect(store.readlink('/abs')).toBe('/a/b/f');
    expect(await codeOf(() => store.readlink('/a/b/f'))).toBe('FLYFS_ERR_INVALID_ARGUMENT');
    expect(store.readdir('/a/rel').entries.map((e) => e.name)).toEqual(['f']);
  });

  it('fails ELOOP after the limit of follows, and refuses bad targets', async () => {
    await store.symlink('/l1', '/l0');
    await store.symlink('/l0', '/l1');
    expect(await codeOf(() => store.stat('/l0'))).toBe('FLYFS_ERR_LOOP');
    for (let i = 0; i < limits.symlinkFollowsMax; i++) await store.symlink(`/c${i + 1}`, `/c${i}`);
    await store.mkdir(`/c${limits.symlinkFollowsMax}`);
    expect(store.stat('/c0').kind).toBe('dir'); // exactly the limit
    await store.symlink('/c0', '/over');
    expect(await codeOf(() => store.stat('/over'))).toBe('FLYFS_ERR_LOOP');
    expect(await codeOf(store.symlink('', '/e'))).toBe('FLYFS_ERR_NOT_FOUND');
    expect(await codeOf(store.symlink('a\0b', '/e'))).toBe('FLYFS_ERR_BAD_NAME');
    expect(await codeOf(store.symlink('x'.repeat(limits.pathBytesMax + 1), '/e'))).toBe('FLYFS_ERR_NAME_TOO_LONG');
    expect(await codeOf(store.symlink('x', '/l0'))).toBe('FLYFS_ERR_EXISTS');
  });

  it('open with create through a dangling link creates its target', async () => {
    await store.symlink('target', '/dangling');
    await file('/dangling', 3);
    expect(store.stat('/target').length).toBe(3);
    expect(await codeOf(store.open('/dangling', { flags: W | C | OpenFlags.exclusive }))).toBe('FLYFS_ERR_EXISTS');
  });
});

describe('hard links and sessions', () => {
  it('counts links; the inode goes with the last link and the last session', async () => {
    const id = await file('/f', 5);
    await store.link('/f', '/g');
    expect(store.stat('/f').nlink).toBe(2);
    await store.mkdir('/d');
    expect(await codeOf(store.link('/d', '/d2'))).toBe('FLYFS_ERR_NOT_PERMITTED');
    expect(await codeOf(store.link('/f', '/g'))).toBe('FLYFS_ERR_EXISTS');
    expect(await codeOf(store.link('/missing', '/h'))).toBe('FLYFS_ERR_NOT_FOUND');
    const w = await store.open('/g', { flags: W });
    await store.unlink('/f');
    await store.unlink('/g');
    expect(store.statInode(id as never)).toMatchObject({ nlink: 0, writeSessions: 1 });
    expect(store.gcCount()).toBe(0);
    await store.sync({ inodeId: id, sessionId: w.sessionId, length: 9 });
    await store.truncate({ path: '', inodeId: id, length: 7 });
    await store.closeFile({ inodeId: id, sessionId: w.sessionId, length: 6, lengthSet: true });
    expect(store.statInode(id as never)).toBeUndefined();
    expect(store.gcEntries(10).map((e) => e.inodeId)).toEqual([id]);
  });

  it('close and sync only extend the length', async () => {
    const a = await store.open('/f', { flags: W | C });
    const b = await store.open('/f', { flags: W });
    await store.closeFile({ inodeId: a.inode.inodeId, sessionId: a.sessionId, length: 200, lengthSet: true });
    await store.closeFile({ inodeId: b.inode.inodeId, sessionId: b.sessionId, length: 100, lengthSet: true });
    expect(store.stat('/f').length).toBe(200);
  });

  it('prunes the sessions of clients unheard for the timeout, finishing deferred deletions', async () => {
    const dead = await store.open('/dead', { flags: W | C, ctx: { clientId: 'dead', requestId: 1 } });
    const live = await store.open('/live', { flags: W | C, ctx: { clientId: 'live', requestId: 1 } });
    await store.unlink('/dead');
    const pruner = new SessionPruner({ store, intervalMs: 10, timeoutMs: 1_000, now: () => clock });
    expect(await pruner.runOnce()).toBe(0); // first look: everyone counts as heard now
    clock += 600; store.keepAlive('live');
    clock += 600;
    expect(await pruner.runOnce()).toBe(1);
    expect(store.statInode(dead.inode.inodeId)).toBeUndefined();
    expect(store.gcEntries(10).map((e) => e.inodeId)).toEqual([dead.inode.inodeId]);
    expect(await codeOf(store.closeFile({ inodeId: dead.inode.inodeId, sessionId: dead.sessionId, length: 0, lengthSet: false }))).toBe('FLYFS_ERR_NOT_FOUND');
    await store.closeFile({ inodeId: live.inode.inodeId, sessionId: live.sessionId, length: 1, lengthSet: true });
    expect(() => store.keepAlive('')).toThrow();
  });

  it('a write open counts as hearing its client: a client last heard long ago keeps the session it opens now', async () => {
    const pruner = new SessionPruner({ store, intervalMs: 10, timeoutMs: 1_000, now: () => clock });
    const first = await store.open('/a', { flags: W | C, ctx: { clientId: 'idle', requestId: 1 } });
    expect(await pruner.runOnce()).toBe(0);
    store.keepAlive('idle');
    await store.closeFile({ inodeId: first.inode.inodeId, sessionId: first.sessionId, length: 0, lengthSet: false });
    // Quiet for most of a timeout (no sessions, so no KeepAlive), then a new write open; the
    // client's first KeepAlive comes one interval later, after this pass.
    clock += 900;
    const second = await store.open('/b', { flags: W | C, ctx: { clientId: 'idle', requestId: 2 } });
    clock += 200;
    expect(await pruner.runOnce()).toBe(0);
    await store.closeFile({ inodeId: second.inode.inodeId, sessionId: second.sessionId, length: 1, lengthSet: true });
  });
});

describe('truncate and setattr', () => {
  it('plans the cut at the lower of old and new length', () => {
    const layout = { chunkSizeBytes: 4096, stripe: 2, chainTableId: 1, chainTableVersion: 1, chains: [7, 8], seed: 1 };
    expect(truncatePlan(layout, 10_000, 5000)).toEqual({ trim: { index: 1, chainId: 8, lengthBytes: 904 }, removeFromIndex: 2 });
    expect(truncatePlan(layout, 100, 10_000)).toEqual({ trim: { index: 0, chainId: 7, lengthBytes: 100 }, removeFromIndex: 1 });
    expect(truncatePlan(layout, 10_000, 8192)).toEqual({ removeFromIndex: 2 });
  });

  it('trims on storage before recording the exact length; refuses directories and bad lengths', async () => {
    await file('/f', 10_000);
    const t = await store.truncate({ path: '/f', inodeId: 0, length: 5000 });
    expect(t.length).toBe(5000);
    expect(trimmed).toEqual([{ index: 1, lengthBytes: 904 }]);
    expect(removed.sort((x, y) => x.chainId - y.chainId)).toEqual([{ chainId: 7, fromIndex: 2 }, { chainId: 8, fromIndex: 2 }]);
    expect((await store.truncate({ path: '/f', inodeId: 0, length: 1 << 20 })).length).toBe(1 << 20);
    await store.mkdir('/d');
    expect(await codeOf(store.truncate({ path: '/d', inodeId: 0, length: 0 }))).toBe('FLYFS_ERR_IS_DIR');
    expect(await codeOf(store.truncate({ path: '/f', inodeId: 0, length: -1 }))).toBe('FLYFS_ERR_INVALID_ARGUMENT');
    expect(await codeOf(store.truncate({ path: '/f', inodeId: 0, length: 2 ** 60 }))).toBe('FLYFS_ERR_INVALID_ARGUMENT');
    expect(await codeOf(store.truncate({ path: '/nope', inodeId: 0, length: 0 }))).toBe('FLYFS_ERR_NOT_FOUND');
  });

  it('sets mode, owner and times; ctime moves', async () => {
    await file('/f');
    clock = 9_000;
    const r = await store.setattr({ path: '/f', inodeId: 0, change: { mode: 0o600, uid: 5, gid: 6, atimeMs: 1, mtimeMs: 2 } });
    expect(r).toMatchObject({ mode: 0o600, uid: 5, gid: 6, atimeMs: 1, mtimeMs: 2, ctimeMs: 9_000 });
    expect(await codeOf(store.setattr({ path: '/f', inodeId: 0, change: { mode: 0o10000 } }))).toBe('FLYFS_ERR_INVALID_ARGUMENT');
    expect(await codeOf(store.setattr({ path: '/f', inodeId: 0, change: { uid: -1 } }))).toBe('FLYFS_ERR_INVALID_ARGUMENT');
    expect(await codeOf(store.setattr({ path: '/f', inodeId: 0, change: { mtimeMs: 1.5 } }))).toBe('FLYFS_ERR_INVALID_ARGUMENT');
  });
});
