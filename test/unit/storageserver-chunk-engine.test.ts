import { mkdtempSync, promises as fsp, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { inodeId } from '../../common/ids.js';
import { crc32c } from '../../storageserver/crc32c.js';
import { ChunkEngine } from '../../storageserver/chunk-engine.js';
import { createIoEngine, oDirect, type IoEngine, type IoEngineKind } from '../../storageserver/io-engine.js';

const CHUNK = 64 * 1024;
const key = (inode: number, index: number) => ({ inodeId: inodeId(inode), index });

// Every case runs on both I/O engines: io_uring, and the node:fs fallback forced.
describe.each<IoEngineKind>(['io_uring', 'fs'])('chunk engine on %s', (kind) => {
  let dir: string;
  let io: IoEngine;
  let store: ChunkEngine;
  const open = (verifyChecksums = true, diskFullRatio = 1) => ChunkEngine.open({ dir, verifyChecksums, diskFullRatio, io });
  /** The data file of a chunk's committed version. */
  const fileOf = (inode: number, index: number, version: number) => join(dir, 'data', String(inode), `${index}.${version}`);

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'flyfs-chunkstore-'));
    io = createIoEngine(kind);
    expect(io.kind).toBe(kind);
    store = await open();
  });
  afterEach(async () => {
    await store.close();
    await io.shutdown();
    rmSync(dir, { recursive: true, force: true });
  });

  it('round-trips a chunk and reads short at its end; a missing chunk is undefined', async () => {
    const data = Buffer.from('hello chunk');
    const meta = await store.write(key(5, 0), 0, data, CHUNK);
    expect(meta).toEqual({ length: data.length, version: 1, crc32c: crc32c(data) });
    const got = await store.read(key(5, 0), 6, 100);
    expect(got?.data.toString()).toBe('chunk');
    expect(got?.meta.length).toBe(data.length);
    expect((await store.read(key(5, 0), 50, 10))?.data.length).toBe(0);
    expect(await store.read(key(5, 1), 0, 10)).toBeUndefined();
    expect(await store.stat(key(5, 1))).toBeUndefined();
    expect(await store.stat(key(5, 0))).toEqual(meta);
  });

  it('patches a partial overwrite inside a chunk and zero-fills gaps', async () => {
    await store.write(key(1, 0), 0, Buffer.from('aaaaaaaaaa'), CHUNK);
    const m = await store.write(key(1, 0), 3, Buffer.from('BBB'), CHUNK);
    expect(m.version).toBe(2);
    expect((await store.read(key(1, 0), 0, 100))?.data.toString()).toBe('aaaBBBaaaa');
    const m3 = await store.write(key(1, 0), 12, Buffer.from('z'), CHUNK);
    expect(m3.length).toBe(13);
    expect((await store.read(key(1, 0), 0, 100))?.data).toEqual(Buffer.from('aaaBBBaaaa\0\0z'));
  });

  it('refuses writes beyond the chunk size', async () => {
    await expect(store.write(key(1, 0), CHUNK - 2, Buffer.alloc(3), CHUNK)).rejects.toMatchObject({ code: 'FLYFS_ERR_CHUNK_RANGE' });
    await expect(store.write(key(1, 0), -1, Buffer.alloc(1), CHUNK)).rejects.toMatchObject({ code: 'FLYFS_ERR_CHUNK_RANGE' });
    await expect(store.write(key(1, 0), 0, Buffer.alloc(1), 100)).rejects.toMatchObject({ code: 'FLYFS_ERR_CHUNK_RANGE' });
    const m = await store.write(key(1, 0), CHUNK - 3, Buffer.alloc(3, 1), CHUNK);
    expect(m.length).toBe(CHUNK);
  });

  it('removes chunks from an index on', async () => {
    for (let i = 0; i < 5; i++) await store.write(key(9, i), 0, Buffer.from([i]), CHUNK);
    await store.write(key(10, 0), 0, Buffer.from('other'), CHUNK);
    expect(await store.removeFrom(inodeId(9), 2)).toBe(3);
    expect(await store.stat(key(9, 1))).toBeDefined();
    expect(await store.stat(key(9, 2))).toBeUndefined();
    expect(await store.removeFrom(inodeId(9), 0)).toBe(2);
    expect(await store.removeFrom(inodeId(9), 0)).toBe(0);
    expect(await store.stat(key(10, 0))).toBeDefined();
  });

  it('keeps committed chunks across a restart and sweeps the files of torn writes', async () => {
    await store.write(key(3, 7), 0, Buffer.from('persist me'), CHUNK);
    await store.write(key(3, 7), 0, Buffer.from('P'), CHUNK);
    await store.close();
    // A write that died before its commit left version 3 aside; an old version's unlink was lost.
    await fsp.writeFile(fileOf(3, 7, 3), 'torn half-written chunk');
    await fsp.writeFile(fileOf(3, 7, 1), 'persist me');
    store = await open();
    const got = await store.read(key(3, 7), 0, 100);
    expect(got?.data.toString()).toBe('Persist me');
    expect(got?.meta.version).toBe(2);
    expect(await fsp.readdir(join(dir, 'data', '3'))).toEqual(['7.2']);
    // The next write takes version 3 again, cleanly.
    expect((await store.write(key(3, 7), 0, Buffer.from('third'), CHUNK)).version).toBe(3);
    expect((await store.read(key(3, 7), 0, 100))?.data.toString()).toBe('thirdst me');
  });

  it('detects a corrupted or missing data file on read, on the write that would patch it, and in a scrub', async () => {
    await store.write(key(4, 0), 0, Buffer.alloc(10_000, 7), CHUNK);
    await store.write(key(4, 1), 0, Buffer.alloc(100, 8), CHUNK);
    const fh = await fsp.open(fileOf(4, 0, 1), 'r+');
    await fh.write(Buffer.from([0x55]), 0, 1, 5000);
    await fh.close();
    // Reads are checked block by block: bytes far from the damage still read, the damaged block does not.
    expect((await store.read(key(4, 0), 0, 10))?.data).toEqual(Buffer.alloc(10, 7));
    await expect(store.read(key(4, 0), 4990, 20)).rejects.toMatchObject({ code: 'FLYFS_ERR_CHECKSUM' });
    await expect(store.read(key(4, 0), 0, 10_000)).rejects.toMatchObject({ code: 'FLYFS_ERR_CHECKSUM' });
    await expect(store.write(key(4, 0), 0, Buffer.from('x'), CHUNK)).rejects.toMatchObject({ code: 'FLYFS_ERR_CHECKSUM' });
    expect(await store.scrub()).toEqual([key(4, 0)]);
    // A truncated file is caught even without data checksums.
    await fsp.truncate(fileOf(4, 0, 1), 100);
    const lax = await open(false);
    await expect(lax.read(key(4, 0), 0, 1000)).rejects.toMatchObject({ code: 'FLYFS_ERR_CHECKSUM' });
    expect((await lax.read(key(4, 0), 0, 50))?.data).toEqual(Buffer.alloc(50, 7));
    await lax.close();
    await fsp.rm(fileOf(4, 1, 1));
    await expect(store.read(key(4, 1), 0, 10)).rejects.toMatchObject({ code: 'FLYFS_ERR_CHECKSUM' });
    expect(await store.scrub()).toEqual([key(4, 0), key(4, 1)]);
    // A whole rewrite replaces the damaged version.
    await store.write(key(4, 1), 0, Buffer.alloc(100, 9), CHUNK);
    expect(await store.scrub()).toEqual([key(4, 0)]);
  });

  it('reads ranges at unaligned offsets of large chunks exactly', async () => {
    const big = Buffer.alloc(CHUNK);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31 + 7) & 0xff;
    await store.write(key(8, 0), 0, big, CHUNK);
    for (const [off, len] of [[0, CHUNK], [1, 4095], [4095, 2], [4096, 4096], [12_345, 20_000], [CHUNK - 1, 10]] as const) {
      const got = await store.read(key(8, 0), off, len);
      expect(got?.data.equals(big.subarray(off, Math.min(CHUNK, off + len))), `${off}+${len}`).toBe(true);
    }
    const lax = await open(false);
    expect((await lax.read(key(8, 0), 12_345, 20_000))?.data.equals(big.subarray(12_345, 32_345))).toBe(true);
    await lax.close();
  });

  it('truncates a chunk to a new committed version', async () => {
    await store.write(key(11, 0), 0, Buffer.from('0123456789'), CHUNK);
    const m = await store.truncate(key(11, 0), 4);
    expect(m).toEqual({ version: 2, length: 4, crc32c: crc32c(Buffer.from('0123')) });
    expect((await store.read(key(11, 0), 0, 100))?.data.toString()).toBe('0123');
    expect(await store.truncate(key(11, 0), 8)).toEqual(m);
    expect(await store.truncate(key(11, 1), 0)).toBeUndefined();
  });

  it('serializes concurrent writes to one chunk without losing any', async () => {
    const n = 32;
    const metas = await Promise.all(Array.from({ length: n }, (_, i) => store.write(key(2, 0), i * 10, Buffer.alloc(10, i + 1), CHUNK)));
    expect(metas.map((m) => m.version).sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    const got = await store.read(key(2, 0), 0, CHUNK);
    expect(got?.data.length).toBe(n * 10);
    for (let i = 0; i < n; i++) expect(got?.data.subarray(i * 10, i * 10 + 10)).toEqual(Buffer.alloc(10, i + 1));
  });

  it('writes version files with O_DIRECT in aligned pieces; each file holds exactly its content; buffered without direct I/O', async () => {
    // The engine's I/O, recorded on the way through: open flags by fd, and every write.
    const flagsOf = new Map<number, number>();
    const writes: Array<{ direct: boolean; offset: number; length: number; position: number; aligned: boolean }> = [];
    const truncates: number[] = [];
    const recording: IoEngine = Object.assign(Object.create(io) as IoEngine, {
      open: async (path: string, flags: number, mode?: number) => { const fd = await io.open(path, flags, mode); flagsOf.set(fd, flags); return fd; },
      write: (fd: number, buf: Uint8Array, offset: number, length: number, position: number) => {
        writes.push({ direct: ((flagsOf.get(fd) ?? 0) & oDirect) !== 0, offset, length, position, aligned: (buf.byteOffset + offset) % io.alignment === 0 });
        return io.write(fd, buf, offset, length, position);
      },
      truncate: (fd: number, length: number) => { truncates.push(length); return io.truncate(fd, length); },
    });
    await store.close();
    store = await ChunkEngine.open({ dir, verifyChecksums: true, diskFullRatio: 1, io: recording });
    const data = Buffer.alloc(3 * 4096 + 1234);
    for (let i = 0; i < data.length; i++) data[i] = (i * 13 + 5) & 0xff;
    await store.write(key(21, 0), 0, data, CHUNK);
    await store.write(key(21, 0), 100, Buffer.from('patch'), CHUNK);
    await store.write(key(21, 1), 0, Buffer.alloc(2 * 4096, 9), CHUNK);
    const want = Buffer.from(data);
    want.write('patch', 100);
    expect((await store.read(key(21, 0), 0, CHUNK))?.data.equals(want)).toBe(true);
    expect((await fsp.stat(fileOf(21, 0, 2))).size).toBe(want.length);
    expect((await fsp.stat(fileOf(21, 1, 1))).size).toBe(2 * 4096);
    expect(writes.length).toBeGreaterThanOrEqual(3);
    for (const w of writes) expect(w).toMatchObject({ direct: true, aligned: true });
    for (const w of writes) expect([w.position % io.alignment, w.length % io.alignment]).toEqual([0, 0]);
    // Only the unaligned contents were padded and cut back.
    expect(truncates).toEqual([data.length, want.length]);
    await store.close();
    writes.length = 0;
    store = await ChunkEngine.open({ dir, verifyChecksums: true, diskFullRatio: 1, io: recording, directIo: false });
    await store.write(key(21, 2), 0, Buffer.from('buffered'), CHUNK);
    expect(writes.map((w) => w.direct)).toEqual([false]);
    expect((await store.read(key(21, 2), 0, CHUNK))?.data.toString()).toBe('buffered');
  });

  it('refuses new chunks above the disk-full ratio but still overwrites existing ones', async () => {
    await store.write(key(6, 0), 0, Buffer.from('x'), CHUNK);
    await store.close();
    const full = await ChunkEngine.open({ dir, verifyChecksums: true, diskFullRatio: 1e-9, io });
    await expect(full.write(key(6, 1), 0, Buffer.from('y'), CHUNK)).rejects.toMatchObject({ code: 'FLYFS_ERR_NO_SPACE' });
    expect((await full.write(key(6, 0), 0, Buffer.from('z'), CHUNK)).version).toBe(2);
    const u = await full.usage();
    expect(u.capacityBytes).toBeGreaterThan(0);
    await full.close();
    store = await open();
    expect((await store.read(key(6, 0), 0, 10))?.data.toString()).toBe('z');
  });
});
