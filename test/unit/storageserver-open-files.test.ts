import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { constants as fsConstants } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createIoEngine, type IoEngine } from '../../storageserver/io-engine.js';
import { OpenFileCache } from '../../storageserver/open-files.js';

describe('open-file cache', () => {
  let dir: string;
  let io: IoEngine;
  let opens: number;
  let closes: number;
  let counted: IoEngine;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'flyfs-open-files-'));
    io = createIoEngine('auto');
    opens = 0; closes = 0;
    counted = Object.assign(Object.create(io) as IoEngine, {
      open: (p: string, f: number) => { opens++; return io.open(p, f); },
      close: (fd: number) => { closes++; return io.close(fd); },
    });
    for (const n of ['a', 'b', 'c']) writeFileSync(join(dir, n), n);
  });
  afterEach(async () => { await io.shutdown(); rmSync(dir, { recursive: true, force: true }); });

  const read = async (cache: OpenFileCache, name: string): Promise<string> => {
    const f = await cache.acquire(join(dir, name), fsConstants.O_RDONLY);
    try {
      const b = Buffer.alloc(8);
      return b.subarray(0, await io.read(f.fd, b, 0, 8, 0)).toString();
    } finally { f.release(); }
  };

  it('opens a file once for many reads, concurrent ones too', async () => {
    const cache = new OpenFileCache(counted, 4);
    expect(await Promise.all([read(cache, 'a'), read(cache, 'a'), read(cache, 'a')])).toEqual(['a', 'a', 'a']);
    expect(await read(cache, 'a')).toBe('a');
    expect(opens).toBe(1);
    expect(closes).toBe(0);
    cache.closeAll();
    await new Promise((r) => setTimeout(r, 10));
    expect(closes).toBe(1);
  });

  it('keeps at most max open, closing the least recently used, and a descriptor in use only once released', async () => {
    const cache = new OpenFileCache(counted, 2);
    const held = await cache.acquire(join(dir, 'a'), fsConstants.O_RDONLY);
    await read(cache, 'b');
    await read(cache, 'c'); // evicts a, which is still held
    expect(cache.size).toBe(2);
    await new Promise((r) => setTimeout(r, 10));
    expect(closes).toBe(0);
    const b = Buffer.alloc(1);
    expect(await io.read(held.fd, b, 0, 1, 0)).toBe(1);
    held.release();
    held.release(); // once only
    await new Promise((r) => setTimeout(r, 10));
    expect(closes).toBe(1);
  });

  it('reopens a path after it is invalidated (the file was replaced)', async () => {
    const cache = new OpenFileCache(counted, 4);
    expect(await read(cache, 'a')).toBe('a');
    writeFileSync(join(dir, 'a.new'), 'A2');
    const { renameSync } = await import('node:fs');
    renameSync(join(dir, 'a.new'), join(dir, 'a'));
    expect(await read(cache, 'a')).toBe('a'); // the old file, still open
    cache.invalidate(join(dir, 'a'));
    expect(await read(cache, 'a')).toBe('A2');
    expect(opens).toBe(2);
  });

  it('forgets a failed open', async () => {
    const cache = new OpenFileCache(counted, 4);
    await expect(read(cache, 'missing')).rejects.toMatchObject({ code: 'ENOENT' });
    expect(cache.size).toBe(0);
    writeFileSync(join(dir, 'missing'), 'm');
    expect(await read(cache, 'missing')).toBe('m');
  });
});
