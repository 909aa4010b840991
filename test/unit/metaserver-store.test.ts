import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chooseChains } from '../../common/layout.js';
import { MetaStore } from '../../metaserver/store.js';
import { OpenFlags, type ChainTableSource, type ChunkRemover } from '../../metaserver/types.js';

const W = OpenFlags.write;
const C = OpenFlags.create;

function tables(chains: number[]): ChainTableSource {
  return { chainTable: (id) => (id === 1 ? { version: 7, chains } : undefined) };
}

let dir: string;
let store: MetaStore;
let clock = 1_000;
const removed: Array<{ inodeId: number; chainId: number; fromIndex: number }> = [];
let removerFails = false;
const remover: ChunkRemover = async (job) => {
  if (removerFails) throw new Error('storage down');
  removed.push(job);
};

async function openStore(chains = [11, 12, 13, 14]): Promise<MetaStore> {
  return MetaStore.open({ dataDir: dir, rootChunkSizeBytes: 1 << 20, rootStripe: 3, now: () => clock, chainTables: tables(chains), removeChunks: remover });
}

async function codeOf(p: Promise<unknown> | (() => unknown)): Promise<string> {
  try { await (typeof p === 'function' ? p() : p); } catch (err) { return (err as { code: string }).code; }
  return 'no error';
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'flyfs-meta-store-'));
  removed.length = 0;
  removerFails = false;
  store = await openStore();
});
afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

describe('root and mkdir', () => {
  it('creates root inode 1 with the configured layout policy', () => {
    const root = store.stat('/');
    expect(root.inodeId).toBe(1);
    expect(root.kind).toBe('dir');
    expect(root.layoutPolicy).toEqual({ chunkSizeBytes: 1 << 20, stripe: 3, chainTableId: 1 });
  });

  it('mkdir, nested, recursive and its errors', async () => {
    const a = await store.mkdir('/a');
    expect(a.kind).toBe('dir');
    expect(await codeOf(store.mkdir('/a'))).toBe('FLYFS_ERR_EXISTS');
    expect(await codeOf(store.mkdir('/x/y'))).toBe('FLYFS_ERR_NOT_FOUND');
    const deep = await store.mkdir('/a/b/c', { recursive: true });
    expect(store.stat('/a/b/c').inodeId).toBe(deep.inodeId);
    expect((await store.mkdir('/a/b/c', { recursive: true })).inodeId).toBe(deep.inodeId);
    expect((await store.mkdir('/', { recursive: true })).inodeId).toBe(1);
    expect(await codeOf(store.mkdir('/'))).toBe('FLYFS_ERR_EXISTS');
    await store.open('/a/f', { flags: W | C });
    expect(await codeOf(store.mkdir('/a/f/g', { recursive: true }))).toBe('FLYFS_ERR_NOT_DIR');
    expect(await codeOf(store.mkdir('/a/f', { recursive: true }))).toBe('FLYFS_ERR_EXISTS');
    expect(await codeOf(store.mkdir('/a/f/g'))).toBe('FLYFS_ERR_NOT_DIR');
    expect(store.stat('/a').nlink).toBe(3); // '.', its entry in '/', and 'b'
  });

  it('rejects bad names, long names and bad policies', async () => {
    expect(await codeOf(store.mkdir('/a/..'))).toBe('FLYFS_ERR_BAD_NAME');
    expect(await codeOf(store.mkdir('/a/.'))).toBe('FLYFS_ERR_BAD_NAME');
    expect(await codeOf(store.mkdir('/a\0b'))).toBe('FLYFS_ERR_BAD_NAME');
    expect(await codeOf(store.mkdir('/' + 'n'.repeat(256)))).toBe('FLYFS_ERR_NAME_TOO_LONG');
    expect(await codeOf(store.mkdir('relative'))).toBe('FLYFS_ERR_INVALID_ARGUMENT');
    expect(await codeOf(store.mkdir('/p', { layoutPolicy: { chunkSizeBytes: 1000 } }))).toBe('FLYFS_ERR_INVALID_ARGUMENT');
    expect(await codeOf(store.mkdir('/p', { layoutPolicy: { stripe: -1 } }))).toBe('FLYFS_ERR_INVALID_ARGUMENT');
    expect(await codeOf(store.mkdir('/p', { layoutPolicy: { chainTableId: 9 } }))).toBe('FLYFS_ERR_INVALID_ARGUMENT');
    expect(await codeOf(store.mkdir('/p', { mode: 0o70000 }))).toBe('FLYFS_ERR_INVALID_ARGUMENT');
    expect(await codeOf(() => store.stat('/p'))).toBe('FLYFS_ERR_NOT_FOUND');
  });
});

describe('open', () => {
  it('creates a file with a layout from the nearest policy and the chain table', async () => {
    const r = await store.open('/f', { flags: W | C, mode: 0o600 });
    expect(r.sessionId).toBeGreaterThan(0);
    const l = r.inode.layout!;
    expect(l.chunkSizeBytes).toBe(1 << 20);
    expect(l.stripe).toBe(3);
    expect(l.chainTableVersion).toBe(7);
    expect(l.seed).toBe(r.inode.inodeId);
    expect(l.chains).toEqual(chooseChains([11, 12, 13, 14], 3, r.inode.inodeId));
    expect(r.inode.mode).toBe(0o600);

    await store.mkdir('/big', { layoutPolicy: { chunkSizeBytes: 64 * 1024, stripe: 8 } });
    await store.mkdir('/big/inner');
    const g = await store.open('/big/inner/g', { flags: W | C });
    expect(g.inode.layout!.chunkSizeBytes).toBe(64 * 1024);
    expect(g.inode.layout!.stripe).toBe(4); // clamped to the chains in the table
  });

  it('read opens, exclusive, missing files and directories', async () => {
    expect(await codeOf(store.open('/nope', { flags: OpenFlags.read }))).toBe('FLYFS_ERR_NOT_FOUND');
    await store.open('/f', { flags: W | C });
    const ro = await store.open('/f', { flags: OpenFlags.read });
    expect(ro.sessionId).toBe(0);
    expect(await codeOf(store.open('/f', { flags: W | C | OpenFlags.exclusive }))).toBe('FLYFS_ERR_EXISTS');
    await store.mkdir('/d');
    expect(await codeOf(store.open('/d', { flags: W }))).toBe('FLYFS_ERR_IS_DIR');
    expect(await codeOf(store.open('/', { flags: W }))).toBe('FLYFS_ERR_IS_DIR');
    expect((await store.open('/d', { flags: OpenFlags.read })).inode.kind).toBe('dir');
    expect(await codeOf(store.open('/f/x', { flags: W | C }))).toBe('FLYFS_ERR_NOT_DIR');
    expect(await codeOf(store.open('/f', { flags: 1 << 10 }))).toBe('FLYFS_ERR_INVALID_ARGUMENT');
    expect(await codeOf(store.open('/f', { flags: OpenFlags.truncate }))).toBe('FLYFS_ERR_INVALID_ARGUMENT');
  });

  it('refuses to create files when there are no chains', async () => {
    await store.close();
    store = await openStore([]);
    expect(await codeOf(store.open('/f', { flags: W | C }))).toBe('FLYFS_ERR_NO_CHAINS');
    expect(await codeOf(() => store.stat('/f'))).toBe('FLYFS_ERR_NOT_FOUND');
  });

  it('truncate removes the chunks on every chain before it replies, then sets length 0', async () => {
    const w = await store.open('/f', { flags: W | C });
    await store.closeFile({ inodeId: w.inode.inodeId, sessionId: w.sessionId, length: 5000, lengthSet: true });
    expect(store.stat('/f').length).toBe(5000);
    removerFails = true;
    expect(await codeOf(store.open('/f', { flags: W | OpenFlags.truncate }))).toBe('FLYFS_ERR_UNAVAILABLE');
    expect(store.stat('/f').length).toBe(5000);
    removerFails = false;
    const t = await store.open('/f', { flags: W | OpenFlags.truncate });
    expect(t.inode.length).toBe(0);
    expect(removed.map((r) => r.chainId).sort()).toEqual([...w.inode.layout!.chains].sort());
    expect(removed.every((r) => r.fromIndex === 0 && r.inodeId === w.inode.inodeId)).toBe(true);
  });
});

describe('close', () => {
  it('sets the final length and mtime, ends the session', async () => {
    const w = await store.open('/f', { flags: W | C });
    clock = 5_000;
    const closed = await store.closeFile({ inodeId: w.inode.inodeId, sessionId: w.sessionId, length: 123, lengthSet: true });
    expect(closed.length).toBe(123);
    expect(closed.mtimeMs).toBe(5_000);
    expect(await codeOf(store.closeFile({ inodeId: w.inode.inodeId, sessionId: w.sessionId, length: 1, lengthSet: true }))).toBe('FLYFS_ERR_BAD_SESSION');
    expect(await codeOf(store.closeFile({ inodeId: w.inode.inodeId, sessionId: 0, length: 1, lengthSet: true }))).toBe('FLYFS_ERR_BAD_SESSION');
    expect((await store.closeFile({ inodeId: w.inode.inodeId, sessionId: 0, length: 0, lengthSet: false })).length).toBe(123);
    expect(await codeOf(store.closeFile({ inodeId: 999, sessionId: 0, length: 0, lengthSet: false }))).toBe('FLYFS_ERR_NOT_FOUND');
    const w2 = await store.open('/f', { flags: W });
    expect(await codeOf(store.closeFile({ inodeId: w2.inode.inodeId, sessionId: w2.sessionId, length: -1, lengthSet: true }))).toBe('FLYFS_ERR_INVALID_ARGUMENT');
    expect(await codeOf(store.closeFile({ inodeId: w2.inode.inodeId, sessionId: w2.sessionId, length: 2 ** 52 + 8, lengthSet: true }))).toBe('FLYFS_ERR_FILE_TOO_LARGE');
    expect(await codeOf(store.closeFile({ inodeId: -3, sessionId: w2.sessionId, length: 0, lengthSet: false }))).toBe('FLYFS_ERR_INVALID_ARGUMENT');
  });
});

describe('readdir', () => {
  it('pages over more than one page, sorted by name', async () => {
    await store.mkdir('/d');
    const names: string[] = [];
    const writes: Array<Promise<unknown>> = [];
    for (let i = 0; i < 1205; i++) {
      const name = `n${String(i).padStart(5, '0')}`;
      names.push(name);
      writes.push(i % 2 === 0 ? store.mkdir(`/d/${name}`) : store.open(`/d/${name}`, { flags: W | C }));
    }
    await Promise.all(writes); // many mutations in few group commits
    const seen: string[] = [];
    let cursor = '';
    let pages = 0;
    for (;;) {
      const page = store.readdir('/d', { cursor, limit: 0 });
      pages++;
      expect(page.entries.length).toBeLessThanOrEqual(1000);
      seen.push(...page.entries.map((e) => e.name));
      if (page.nextCursor === '') break;
      cursor = page.nextCursor;
    }
    expect(pages).toBe(2);
    expect(seen).toEqual(names);
    const small = store.readdir('/d', { limit: 2 });
    expect(small.entries.map((e) => [e.name, e.kind])).toEqual([['n00000', 'dir'], ['n00001', 'file']]);
    expect(small.nextCursor).toBe('n00001');
    expect(store.readdir('/d', { cursor: 'n01204' })).toEqual({ entries: [], nextCursor: '' });
    expect(await codeOf(() => store.readdir('/d/n00001'))).toBe('FLYFS_ERR_NOT_DIR');
    expect(await codeOf(() => store.readdir('/d', { cursor: '../x' }))).toBe('FLYFS_ERR_BAD_NAME');
    expect(await codeOf(() => store.readdir('/d', { limit: -1 }))).toBe('FLYFS_ERR_INVALID_ARGUMENT');
  });
});

describe('unlink and rmdir', () => {
  it('unlink removes files and queues their chunks; refuses directories', async () => {
    const f = await store.open('/f', { flags: C });
    await store.mkdir('/d');
    expect(await codeOf(store.unlink('/d'))).toBe('FLYFS_ERR_IS_DIR');
    expect(await codeOf(store.unlink('/'))).toBe('FLYFS_ERR_IS_DIR');
    expect(await codeOf(store.unlink('/zz'))).toBe('FLYFS_ERR_NOT_FOUND');
    await store.unlink('/f');
    expect(await codeOf(() => store.stat('/f'))).toBe('FLYFS_ERR_NOT_FOUND');
    const gc = store.gcEntries(10);
    expect(gc).toHaveLength(1);
    expect(gc[0]!.inodeId).toBe(f.inode.inodeId);
    expect(gc[0]!.chains).toEqual(f.inode.layout!.chains);
  });

  it('rmdir refuses non-empty dirs, files and the root', async () => {
    await store.mkdir('/d/e', { recursive: true });
    await store.open('/f', { flags: W | C });
    expect(await codeOf(store.rmdir('/d'))).toBe('FLYFS_ERR_NOT_EMPTY');
    expect(await codeOf(store.rmdir('/f'))).toBe('FLYFS_ERR_NOT_DIR');
    expect(await codeOf(store.rmdir('/'))).toBe('FLYFS_ERR_BUSY');
    expect(await codeOf(store.rmdir('/q'))).toBe('FLYFS_ERR_NOT_FOUND');
    await store.rmdir('/d/e');
    await store.rmdir('/d');
    expect(store.readdir('/').entries.map((e) => e.name)).toEqual(['f']);
    expect(store.stat('/').nlink).toBe(2);
  });
});

describe('rename', () => {
  it('moves within and across directories', async () => {
    await store.mkdir('/a');
    await store.mkdir('/b');
    const f = await store.open('/a/f', { flags: W | C });
    await store.rename('/a/f', '/a/g');
    expect(store.stat('/a/g').inodeId).toBe(f.inode.inodeId);
    await store.rename('/a/g', '/b/h');
    expect(store.readdir('/a').entries).toEqual([]);
    expect(store.stat('/b/h').inodeId).toBe(f.inode.inodeId);
    await store.mkdir('/a/sub');
    await store.rename('/a/sub', '/b/sub');
    expect(store.stat('/a').nlink).toBe(2);
    expect(store.stat('/b').nlink).toBe(3);
    expect(store.stat('/b/sub').parentId).toBe(store.stat('/b').inodeId);
  });

  it('replaces a file by a file and queues the old one for GC', async () => {
    const x = await store.open('/x', { flags: C });
    const y = await store.open('/y', { flags: C });
    await store.rename('/x', '/y');
    expect(store.stat('/y').inodeId).toBe(x.inode.inodeId);
    expect(await codeOf(() => store.stat('/x'))).toBe('FLYFS_ERR_NOT_FOUND');
    expect(store.gcEntries(10).map((e) => e.inodeId)).toEqual([y.inode.inodeId]);
  });

  it('replaces an empty directory by a directory, refuses the other cases', async () => {
    await store.mkdir('/d1/in', { recursive: true });
    await store.mkdir('/d2');
    await store.mkdir('/full/x', { recursive: true });
    await store.open('/f', { flags: W | C });
    expect(await codeOf(store.rename('/d1', '/full'))).toBe('FLYFS_ERR_NOT_EMPTY');
    expect(await codeOf(store.rename('/d1', '/f'))).toBe('FLYFS_ERR_NOT_DIR');
    expect(await codeOf(store.rename('/f', '/d2'))).toBe('FLYFS_ERR_IS_DIR');
    const d1 = store.stat('/d1');
    await store.rename('/d1', '/d2');
    expect(store.stat('/d2').inodeId).toBe(d1.inodeId);
    expect(store.stat('/d2/in').kind).toBe('dir');
    expect(store.stat('/').nlink).toBe(2 + 2); // d2 and full
  });

  it('refuses the root, a directory into its own subtree and missing sources', async () => {
    await store.mkdir('/a/b', { recursive: true });
    expect(await codeOf(store.rename('/', '/z'))).toBe('FLYFS_ERR_BUSY');
    expect(await codeOf(store.rename('/a', '/'))).toBe('FLYFS_ERR_BUSY');
    expect(await codeOf(store.rename('/a', '/a/b/c'))).toBe('FLYFS_ERR_INVALID_ARGUMENT');
    expect(await codeOf(store.rename('/a', '/a/c'))).toBe('FLYFS_ERR_INVALID_ARGUMENT');
    expect(await codeOf(store.rename('/nope', '/z'))).toBe('FLYFS_ERR_NOT_FOUND');
    expect(await codeOf(store.rename('/a', '/missing/z'))).toBe('FLYFS_ERR_NOT_FOUND');
    expect(await codeOf(store.rename('/a', '/a/../z'))).toBe('FLYFS_ERR_BAD_NAME');
    await store.rename('/a', '/a'); // the same entry: a no-op
    expect(store.stat('/a/b').kind).toBe('dir');
  });
});

describe('idempotent retries', () => {
  it('a retried request returns the first result', async () => {
    const ctx = { clientId: 'client-1', requestId: 1 };
    const first = await store.mkdir('/r', { ctx });
    const again = await store.mkdir('/r', { ctx });
    expect(again.inodeId).toBe(first.inodeId);
    expect(await codeOf(store.mkdir('/r', { ctx: { clientId: 'client-1', requestId: 2 } }))).toBe('FLYFS_ERR_EXISTS');

    const o1 = await store.open('/r/f', { flags: W | C | OpenFlags.exclusive, ctx: { clientId: 'client-1', requestId: 3 } });
    const o2 = await store.open('/r/f', { flags: W | C | OpenFlags.exclusive, ctx: { clientId: 'client-1', requestId: 3 } });
    expect(o2).toEqual(o1);
    await store.closeFile({ inodeId: o1.inode.inodeId, sessionId: o1.sessionId, length: 0, lengthSet: false });

    await store.unlink('/r/f', { ctx: { clientId: 'client-1', requestId: 4 } });
    await store.unlink('/r/f', { ctx: { clientId: 'client-1', requestId: 4 } });
    expect(store.gcCount()).toBe(1);
    expect(await codeOf(store.unlink('/r/f', { ctx: { clientId: 'client-2', requestId: 4 } }))).toBe('FLYFS_ERR_NOT_FOUND');
    // A permanent error is replayed too, even after the cause went away.
    const failCtx = { clientId: 'client-1', requestId: 5 };
    expect(await codeOf(store.rmdir('/q', { ctx: failCtx }))).toBe('FLYFS_ERR_NOT_FOUND');
    await store.mkdir('/q');
    expect(await codeOf(store.rmdir('/q', { ctx: failCtx }))).toBe('FLYFS_ERR_NOT_FOUND');
    expect(await codeOf(store.rename('/q', '/q2', { ctx })).then((c) => c)).toBe('FLYFS_ERR_INVALID_ARGUMENT'); // id used by mkdir
  });

  it('retries survive a restart of the store', async () => {
    const ctx = { clientId: 'c', requestId: 9 };
    const a = await store.mkdir('/p', { ctx });
    await store.close();
    store = await openStore();
    expect((await store.mkdir('/p', { ctx })).inodeId).toBe(a.inodeId);
  });
});

describe('group commit', () => {
  it('concurrent mutations in one batch succeed or fail each on their own, in order', async () => {
    const results = await Promise.allSettled([
      store.mkdir('/g1'), store.mkdir('/g1'), store.mkdir('/g2/x'), store.mkdir('/g2'), store.rename('/g1', '/g3'), store.rmdir('/g1'),
    ]);
    expect(results.map((r) => (r.status === 'fulfilled' ? 'ok' : (r.reason as { code: string }).code))).toEqual([
      'ok', 'FLYFS_ERR_EXISTS', 'FLYFS_ERR_NOT_FOUND', 'ok', 'ok', 'FLYFS_ERR_NOT_FOUND',
    ]);
    expect(store.readdir('/').entries.map((e) => e.name)).toEqual(['g2', 'g3']);
  });
});

describe('durability', () => {
  it('keeps the namespace across close and reopen', async () => {
    await store.mkdir('/keep/deep', { recursive: true });
    const w = await store.open('/keep/deep/file', { flags: W | C });
    await store.closeFile({ inodeId: w.inode.inodeId, sessionId: w.sessionId, length: 77, lengthSet: true });
    await store.unlink('/keep/deep/file').then(() => store.open('/keep/deep/file2', { flags: W | C }));
    await store.close();
    store = await openStore();
    expect(store.stat('/keep/deep').kind).toBe('dir');
    expect(store.stat('/keep/deep/file2').kind).toBe('file');
    expect(store.gcEntries(10).map((e) => e.inodeId)).toEqual([w.inode.inodeId]);
    const next = await store.open('/keep/n', { flags: W | C });
    expect(next.inode.inodeId).toBeGreaterThan(store.stat('/keep/deep/file2').inodeId); // counters persisted
  });
});
