// Namespace operations and their Node error codes, through the SDK against a real cluster.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FileSystem } from '../../client/index.js';
import { connect } from '../../client/index.js';
import { startTestCluster } from '../helpers/cluster.js';

describe('namespace over a local cluster', () => {
  let fs: FileSystem;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    const c = await startTestCluster('namespace', { storageServers: 1, targetsPerServer: 2 });
    cleanup = c.cleanup;
    fs = await connect(c.cluster.clusterAddress);
  });
  afterAll(async () => { await fs?.close(); await cleanup?.(); });

  it('makes directories, recursively, and lists them with types', async () => {
    expect(await fs.mkdir('/a/b/c', { recursive: true })).toBe('/a');
    await fs.mkdir('/a/b/c', { recursive: true });
    await fs.writeFile('/a/f', 'hello');
    expect(await fs.readdir('/a')).toEqual(['b', 'f']);
    const typed = await fs.readdir('/a', { withFileTypes: true });
    expect(typed.map((d) => [d.name, d.isDirectory(), d.isFile()])).toEqual([['b', true, false], ['f', false, true]]);
    expect((await fs.stat('/a')).isDirectory()).toBe(true);
    expect(await fs.readFile('/a/f', 'utf8')).toBe('hello');
  });

  it('renames within and across directories, replacing a file', async () => {
    await fs.mkdir('/r1');
    await fs.mkdir('/r2');
    await fs.writeFile('/r1/x', 'x');
    await fs.rename('/r1/x', '/r1/y');
    await fs.rename('/r1/y', '/r2/z');
    expect(await fs.readdir('/r1')).toEqual([]);
    await fs.writeFile('/r2/old', 'old');
    await fs.rename('/r2/z', '/r2/old');
    expect(await fs.readFile('/r2/old', 'utf8')).toBe('x');
    expect(await fs.readdir('/r2')).toEqual(['old']);
    await fs.rename('/r2', '/r3');
    expect(await fs.readFile('/r3/old', 'utf8')).toBe('x');
  });

  it('reports Node error codes', async () => {
    await fs.mkdir('/e');
    await fs.writeFile('/e/file', 'data');
    await fs.mkdir('/e/full');
    await fs.writeFile('/e/full/x', '');
    const code = async (p: Promise<unknown>): Promise<string | undefined> => {
      try { await p; return undefined; } catch (e) { return (e as { code?: string }).code; }
    };
    expect(await code(fs.stat('/e/missing'))).toBe('ENOENT');
    expect(await code(fs.readFile('/e/missing'))).toBe('ENOENT');
    expect(await code(fs.mkdir('/e/file'))).toBe('EEXIST');
    expect(await code(fs.mkdir('/e/full'))).toBe('EEXIST');
    expect(await code(fs.open('/e/file', 'wx'))).toBe('EEXIST');
    expect(await code(fs.mkdir('/e/file/sub'))).toBe('ENOTDIR');
    expect(await code(fs.readdir('/e/file'))).toBe('ENOTDIR');
    expect(await code(fs.unlink('/e/full'))).toBe('EISDIR');
    expect(await code(fs.open('/e/full', 'w'))).toBe('EISDIR');
    expect(await code(fs.rmdir('/e/full'))).toBe('ENOTEMPTY');
    expect(await code(fs.rmdir('/e/file'))).toBe('ENOTDIR');
    expect(await code(fs.rename('/e', '/e/full/inside'))).toBe('EINVAL');
    expect(await code(fs.rename('/e/missing', '/e/other'))).toBe('ENOENT');
    expect(await code(fs.open('/e/file', 'bogus'))).toBe('EINVAL');
    const err = await fs.stat('/e/missing').catch((e: unknown) => e as { syscall: string; path: string; message: string });
    expect(err).toMatchObject({ syscall: 'stat', path: '/e/missing' });
    expect((err as { message: string }).message).toMatch(/^ENOENT: /);
  });

  it('removes files and empty directories', async () => {
    await fs.mkdir('/d');
    await fs.writeFile('/d/f', 'x');
    await fs.unlink('/d/f');
    await fs.rmdir('/d');
    await expect(fs.stat('/d')).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('answers many stats issued at once (one StatBatch) each with its own result or error', async () => {
    await fs.mkdir('/stats');
    await Promise.all(Array.from({ length: 40 }, (_, i) => fs.writeFile(`/stats/f${i}`, 'x'.repeat(i))));
    const paths = Array.from({ length: 700 }, (_, i) => (i % 7 === 3 ? `/stats/missing${i}` : `/stats/f${i % 40}`));
    const results = await Promise.allSettled(paths.map((p) => fs.stat(p)));
    results.forEach((r, i) => {
      if (i % 7 === 3) {
        expect(r.status).toBe('rejected');
        expect((r as PromiseRejectedResult).reason).toMatchObject({ code: 'ENOENT', syscall: 'stat', path: paths[i] });
      } else {
        expect(r.status).toBe('fulfilled');
        expect((r as PromiseFulfilledResult<{ size: number }>).value.size).toBe(i % 40);
      }
    });
  });

  it('lists a directory larger than one readdir page', async () => {
    await fs.mkdir('/big');
    const names = Array.from({ length: 1100 }, (_, i) => `n${String(i).padStart(5, '0')}`);
    for (let i = 0; i < names.length; i += 100) {
      await Promise.all(names.slice(i, i + 100).map((n) => fs.mkdir(`/big/${n}`)));
    }
    expect(await fs.readdir('/big')).toEqual(names);
  });
});
