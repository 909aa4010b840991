// A ChunkStore on node:fs. Each chunk is one file TARGET/chunks/<inode>/<index> that starts with a
// 32-byte header carrying the chunk's metadata (committed version, length, CRC32C), then the data.
//
// Why a header rather than a sidecar or LMDB: data and metadata then change in ONE atomic rename,
// so no crash can pair new data with old metadata. A write builds the whole new chunk aside
// (old content patched with the write) in a temp file, fsyncs it, renames it over the chunk and
// fsyncs the folder. A crash before the rename leaves the old committed chunk intact (plus a temp
// file, swept at open); after it, the new one. Torn temp files are never read.
//
// Header (little-endian): u32 magic 'FYCK', u16 format (1), u16 reserved, u64 version,
// u32 length, u32 crc32c of the data, u32 crc32c of header bytes 0..23, u32 reserved.
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { assert, flyfsError, FlyfsError } from '../common/errors.js';
import { chunkVersion, type ChunkKey, type InodeId } from '../common/ids.js';
import { limits } from '../common/limits.js';
import type { ChunkMeta, ChunkStore, TargetUsage } from './chunk-store.js';
import { crc32c } from './crc32c.js';

const HEADER_BYTES = 32;
const MAGIC = 0x4b435946; // 'FYCK'
const FORMAT = 1;
const TMP_MARK = '.tmp-';
/** How long one statfs answer is trusted for the disk-full check. */
const statfsCacheMs = 1000;

export interface FsChunkStoreOptions {
  /** The target's folder. */
  dir: string;
  verifyChecksums: boolean;
  /** New chunks are refused above this fill ratio of the target's file system. */
  diskFullRatio: number;
}

interface ChunkFile { meta: ChunkMeta; data: Buffer }

function encodeHeader(meta: ChunkMeta): Buffer {
  const h = Buffer.alloc(HEADER_BYTES);
  h.writeUInt32LE(MAGIC, 0);
  h.writeUInt16LE(FORMAT, 4);
  h.writeBigUInt64LE(BigInt(meta.version), 8);
  h.writeUInt32LE(meta.length, 16);
  h.writeUInt32LE(meta.crc32c, 20);
  h.writeUInt32LE(crc32c(h.subarray(0, 24)), 24);
  return h;
}

function decodeHeader(h: Buffer, where: string): ChunkMeta {
  if (h.length < HEADER_BYTES || h.readUInt32LE(0) !== MAGIC || h.readUInt16LE(4) !== FORMAT
    || h.readUInt32LE(24) !== crc32c(h.subarray(0, 24))) {
    throw flyfsError('FLYFS_ERR_CHECKSUM', `bad chunk header in ${where}`);
  }
  return { version: chunkVersion(Number(h.readBigUInt64LE(8))), length: h.readUInt32LE(16), crc32c: h.readUInt32LE(20) };
}

function isNotFound(err: unknown): boolean {
  return (err as NodeJS.ErrnoException).code === 'ENOENT';
}

async function readHeader(fh: fsp.FileHandle, path: string): Promise<ChunkMeta> {
  const h = Buffer.alloc(HEADER_BYTES);
  await fh.read(h, 0, HEADER_BYTES, 0);
  return decodeHeader(h, path);
}

/** The buffers left after the first `n` bytes were written (writev may write short). */
function skipBytes(parts: readonly Uint8Array[], n: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let left = n;
  for (const p of parts) {
    if (left >= p.byteLength) { left -= p.byteLength; continue; }
    out.push(left > 0 ? p.subarray(left) : p);
    left = 0;
  }
  return out;
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  try { await fh.sync(); } finally { await fh.close(); }
}

/** One promise chain per key: callers for one key run in order, different keys in parallel. */
class KeyedLock {
  private readonly tails = new Map<string, Promise<void>>();
  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => { release = r; });
    const tail = prev.then(() => mine);
    this.tails.set(key, tail);
    await prev;
    try {
      return await fn();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}

export class FsChunkStore implements ChunkStore {
  private readonly chunksDir: string;
  private readonly locks = new KeyedLock();
  private statfsCache: { atMs: number; usage: TargetUsage } | undefined;
  private closed = false;

  private constructor(private readonly options: FsChunkStoreOptions) {
    this.chunksDir = join(options.dir, 'chunks');
  }

  /** Opens (creating if needed) the store of one target and sweeps temp files of torn writes. */
  static async open(options: FsChunkStoreOptions): Promise<FsChunkStore> {
    const store = new FsChunkStore(options);
    await fsp.mkdir(store.chunksDir, { recursive: true });
    await store.sweepTempFiles();
    return store;
  }

  private async sweepTempFiles(): Promise<void> {
    for (const inode of await fsp.readdir(this.chunksDir)) {
      const dir = join(this.chunksDir, inode);
      let names: string[];
      try { names = await fsp.readdir(dir); } catch { continue; }
      for (const name of names) if (name.includes(TMP_MARK)) await fsp.rm(join(dir, name), { force: true });
    }
  }

  private inodeDir(inodeId: InodeId): string { return join(this.chunksDir, String(inodeId)); }
  private chunkPath(key: ChunkKey): string { return join(this.inodeDir(key.inodeId), String(key.index)); }
  private lockKey(key: ChunkKey): string { return `${key.inodeId}/${key.index}`; }

  private checkOpen(): void {
    if (this.closed) throw flyfsError('FLYFS_ERR_CLOSED', 'chunk store is closed');
  }

  private checkKey(key: ChunkKey): void {
    if (!Number.isSafeInteger(key.inodeId) || key.inodeId <= 0) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `inode id ${key.inodeId}`);
    if (!Number.isInteger(key.index) || key.index < 0 || key.index > 0xffffffff) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `chunk index ${key.index}`);
  }

  /** Reads the whole chunk file; verifies its data CRC when `verify`. */
  private async readWhole(key: ChunkKey, verify: boolean): Promise<ChunkFile | undefined> {
    const path = this.chunkPath(key);
    let buf: Buffer;
    try { buf = await fsp.readFile(path); } catch (err) { if (isNotFound(err)) return undefined; throw err; }
    const meta = decodeHeader(buf, path);
    if (buf.length !== HEADER_BYTES + meta.length) throw flyfsError('FLYFS_ERR_CHECKSUM', `chunk file ${path} has ${buf.length - HEADER_BYTES} bytes, header says ${meta.length}`);
    const data = buf.subarray(HEADER_BYTES);
    if (verify && crc32c(data) !== meta.crc32c) throw flyfsError('FLYFS_ERR_CHECKSUM', `chunk ${this.lockKey(key)}`);
    return { meta, data };
  }

  async write(key: ChunkKey, offset: number, data: Uint8Array, chunkSizeBytes: number): Promise<ChunkMeta> {
    this.checkOpen();
    this.checkKey(key);
    if (!Number.isInteger(chunkSizeBytes) || chunkSizeBytes < limits.chunkSizeBytesMin || chunkSizeBytes > limits.chunkSizeBytesMax) {
      throw flyfsError('FLYFS_ERR_CHUNK_RANGE', `chunk size ${chunkSizeBytes}`);
    }
    if (!Number.isInteger(offset) || offset < 0 || offset + data.length > chunkSizeBytes) {
      throw flyfsError('FLYFS_ERR_CHUNK_RANGE', `write [${offset}, ${offset + data.length}) in a chunk of ${chunkSizeBytes}`);
    }
    return this.locks.run(this.lockKey(key), async () => {
      const oldMeta = await this.readMeta(key);
      if (oldMeta === undefined) await this.checkSpace();
      // A write from offset 0 that covers the old length replaces the whole chunk: nothing of the
      // old content survives, so neither it nor a patched copy is needed (header + data go out
      // with one writev, no copy).
      if (offset === 0 && data.length >= (oldMeta?.length ?? 0)) {
        const meta: ChunkMeta = { length: data.length, version: chunkVersion((oldMeta?.version ?? 0) + 1), crc32c: crc32c(data) };
        await this.commit(key, [encodeHeader(meta), data], oldMeta === undefined);
        return meta;
      }
      // The old content is verified even when reads skip it, so a write never launders corruption.
      const old = await this.readWhole(key, true);
      const oldLength = old?.meta.length ?? 0;
      const length = Math.max(oldLength, offset + data.length);
      const next = Buffer.allocUnsafe(HEADER_BYTES + length);
      if (old) old.data.copy(next, HEADER_BYTES);
      // Bytes between the old end and the write's start are a hole: zeros.
      if (offset > oldLength) next.fill(0, HEADER_BYTES + oldLength, HEADER_BYTES + offset);
      next.set(data, HEADER_BYTES + offset);
      const body = next.subarray(HEADER_BYTES);
      const meta: ChunkMeta = { length, version: chunkVersion((old?.meta.version ?? 0) + 1), crc32c: crc32c(body) };
      encodeHeader(meta).copy(next, 0);
      assert(next.length === HEADER_BYTES + meta.length, 'chunk file holds header + length bytes');
      await this.commit(key, [next], old === undefined);
      return meta;
    });
  }

  /** The chunk's header only, or undefined for a missing chunk. */
  private async readMeta(key: ChunkKey): Promise<ChunkMeta | undefined> {
    const path = this.chunkPath(key);
    let fh: fsp.FileHandle;
    try { fh = await fsp.open(path, 'r'); } catch (err) { if (isNotFound(err)) return undefined; throw err; }
    try {
      return await readHeader(fh, path);
    } finally {
      await fh.close();
    }
  }

  /** Temp file, fsync, rename over, fsync the folder: the atomic step of every write. */
  private async commit(key: ChunkKey, content: readonly Uint8Array[], isNew: boolean): Promise<void> {
    const dir = this.inodeDir(key.inodeId);
    if (isNew) {
      const made = await fsp.mkdir(dir, { recursive: true });
      if (made !== undefined) await fsyncDir(this.chunksDir);
    }
    const path = this.chunkPath(key);
    const tmp = `${dir}/.${key.index}${TMP_MARK}${randomBytes(6).toString('hex')}`;
    const fh = await fsp.open(tmp, 'w');
    try {
      const total = content.reduce((n, b) => n + b.byteLength, 0);
      let done = 0;
      let parts = [...content];
      while (done < total) {
        const { bytesWritten } = await fh.writev(parts as NodeJS.ArrayBufferView[]);
        done += bytesWritten;
        parts = skipBytes(parts, bytesWritten);
      }
      await fh.sync();
    } catch (err) {
      await fh.close();
      await fsp.rm(tmp, { force: true });
      throw mapIoError(err);
    }
    await fh.close();
    await fsp.rename(tmp, path);
    await fsyncDir(dir);
  }

  async read(key: ChunkKey, offset: number, length: number): Promise<{ data: Buffer; meta: ChunkMeta } | undefined> {
    this.checkOpen();
    this.checkKey(key);
    if (!Number.isInteger(offset) || offset < 0 || !Number.isInteger(length) || length < 0 || offset + length > limits.chunkSizeBytesMax) {
      throw flyfsError('FLYFS_ERR_CHUNK_RANGE', `read [${offset}, ${offset + length})`);
    }
    if (this.options.verifyChecksums) {
      const whole = await this.readWhole(key, true);
      if (!whole) return undefined;
      const start = Math.min(offset, whole.meta.length);
      return { meta: whole.meta, data: whole.data.subarray(start, Math.min(whole.meta.length, offset + length)) };
    }
    return this.readRange(key, offset, length);
  }

  /** Reads only the header and the asked range (no checksum to verify). */
  private async readRange(key: ChunkKey, offset: number, length: number): Promise<{ data: Buffer; meta: ChunkMeta } | undefined> {
    const path = this.chunkPath(key);
    let fh: fsp.FileHandle;
    try { fh = await fsp.open(path, 'r'); } catch (err) { if (isNotFound(err)) return undefined; throw err; }
    try {
      const meta = await readHeader(fh, path);
      const n = Math.max(0, Math.min(meta.length, offset + length) - offset);
      const data = Buffer.allocUnsafe(n);
      let got = 0;
      while (got < n) {
        const { bytesRead } = await fh.read(data, got, n - got, HEADER_BYTES + offset + got);
        if (bytesRead === 0) throw flyfsError('FLYFS_ERR_CHECKSUM', `chunk file ${path} is shorter than its header says`);
        got += bytesRead;
      }
      return { data, meta };
    } finally {
      await fh.close();
    }
  }

  async stat(key: ChunkKey): Promise<ChunkMeta | undefined> {
    this.checkOpen();
    this.checkKey(key);
    return this.readMeta(key);
  }

  async truncate(key: ChunkKey, lengthBytes: number): Promise<ChunkMeta | undefined> {
    this.checkOpen();
    this.checkKey(key);
    if (!Number.isInteger(lengthBytes) || lengthBytes < 0 || lengthBytes > limits.chunkSizeBytesMax) {
      throw flyfsError('FLYFS_ERR_CHUNK_RANGE', `truncate to ${lengthBytes}`);
    }
    return this.locks.run(this.lockKey(key), async () => {
      const old = await this.readWhole(key, true);
      if (old === undefined || old.meta.length <= lengthBytes) return old?.meta;
      const data = old.data.subarray(0, lengthBytes);
      const meta: ChunkMeta = { length: lengthBytes, version: chunkVersion(old.meta.version + 1), crc32c: crc32c(data) };
      await this.commit(key, [encodeHeader(meta), data], false);
      return meta;
    });
  }

  async removeFrom(inodeId: InodeId, fromIndex: number): Promise<number> {
    this.checkOpen();
    this.checkKey({ inodeId, index: fromIndex });
    const dir = this.inodeDir(inodeId);
    let names: string[];
    try { names = await fsp.readdir(dir); } catch (err) { if (isNotFound(err)) return 0; throw err; }
    let removed = 0;
    for (const name of names) {
      if (!/^\d+$/.test(name)) continue;
      const index = Number(name);
      if (index < fromIndex) continue;
      const key = { inodeId, index };
      await this.locks.run(this.lockKey(key), async () => {
        try { await fsp.unlink(this.chunkPath(key)); removed++; } catch (err) { if (!isNotFound(err)) throw err; }
      });
    }
    if (removed > 0) await fsyncDir(dir);
    if (fromIndex === 0) {
      // Only succeeds when empty: a concurrent write that recreated a chunk keeps the folder.
      try { await fsp.rmdir(dir); await fsyncDir(this.chunksDir); } catch { /* not empty or gone */ }
    }
    return removed;
  }

  async usage(): Promise<TargetUsage> {
    const now = Date.now();
    if (this.statfsCache && now - this.statfsCache.atMs < statfsCacheMs) return this.statfsCache.usage;
    const s = await fsp.statfs(this.options.dir);
    const usage: TargetUsage = {
      capacityBytes: s.blocks * s.bsize,
      usedBytes: (s.blocks - s.bfree) * s.bsize,
      freeBytes: s.bavail * s.bsize,
    };
    this.statfsCache = { atMs: now, usage };
    return usage;
  }

  private async checkSpace(): Promise<void> {
    const u = await this.usage();
    if (u.capacityBytes === 0) return;
    const fullRatio = (u.capacityBytes - u.freeBytes) / u.capacityBytes;
    if (fullRatio > this.options.diskFullRatio) {
      throw flyfsError('FLYFS_ERR_NO_SPACE', `target ${this.options.dir} is ${(fullRatio * 100).toFixed(1)}% full`);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

function mapIoError(err: unknown): unknown {
  if (err instanceof FlyfsError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return flyfsError('FLYFS_ERR_NO_SPACE', String(code), { cause: err });
  return err;
}
