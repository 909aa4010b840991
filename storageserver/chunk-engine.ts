// The chunk engine of one storage target (docs/chunk-engine.md): per-chunk metadata (version,
// length, CRC32C, data file) in the target's own LMDB, chunk data in one file per version under
// data/<inode>/<index>.<version>, all file I/O through the I/O engine (io_uring, or node:fs).
//
// A write never touches the committed version's file: it writes the next version aside
// (fdatasync, and the folder fsynced when the file is new), then commits by one durable LMDB put
// that points the chunk at the new file, then unlinks the old one. A crash before the put leaves
// the old version committed and an orphan file; after it, the new version. Orphans (files no
// record points at) are swept at open. Reads return committed data only, verified against its
// CRC32C when configured; scrub() verifies every chunk.
import { promises as fsp, constants as fsConstants } from 'node:fs';
import { join } from 'node:path';
import { open as openLmdb, type Database, type RootDatabase } from 'lmdb';
import { flyfsError, FlyfsError } from '../common/errors.js';
import { chainVersion as toChainVersionNumber, chunkVersion, type ChunkKey, type InodeId } from '../common/ids.js';
import { limits } from '../common/limits.js';
import type { ChunkMeta, ChunkStore, TargetUsage } from './chunk-store.js';
import { chunkName, clientId as toClientId, type ChunkRecord as ReplicaRecord, type ClientEntry, type DurableState, type DurableWrite, type WriteId } from './craq/index.js';
import type { StoredContent } from './stored-content.js';
import { crc32c, crc32cBlocks, crc32cCheckBlocks } from './crc32c.js';
import { errnoError, oDirect, type IoEngine } from './io-engine.js';
import { OpenFileCache } from './open-files.js';
import type { IoBufferPool } from './io-buffers.js';

/** How long one statfs answer is trusted for the disk-full check. */
const statfsCacheMs = 1000;

export const chunkEngineLimits = {
  /** Read-only descriptors of version files one target keeps open between reads. */
  openFilesPerTargetMax: 256,
} as const;

export interface ChunkEngineOptions {
  /** The target's folder. */
  dir: string;
  verifyChecksums: boolean;
  /** New chunks are refused above this fill ratio of the target's file system. */
  diskFullRatio: number;
  io: IoEngine;
  /** Read and write with O_DIRECT (aligned buffers) where the file system allows it. Default true. */
  directIo?: boolean;
  /** Aligned I/O buffers shared by the server's targets; without it each O_DIRECT read or write allocates. */
  ioBuffers?: IoBufferPool;
}

/** What LMDB keeps per chunk: its committed version. */
interface ChunkRecord {
  readonly version: number;
  readonly length: number;
  readonly crc32c: number;
}

type RecordKey = [inodeId: number, index: number];
type BlocksKey = [inodeId: number, index: number, version: number];

/**
 * Reads are verified block by block: each version file's CRC32C per `checkBlockBytes` block is
 * kept (in the `blocks` table, written in the transaction that records the version), so a read
 * of a few bytes reads and checks the blocks around them, not the whole chunk.
 */
export const checkBlockBytes = 4096;

/** The CRC32C of every checkBlockBytes block of `data` (u32 LE each) and of all of it, in one pass. */
export function blockSumsOf(data: Uint8Array): { sums: Buffer; crc32c: number } {
  const sums = Buffer.allocUnsafe(4 * Math.ceil(data.length / checkBlockBytes));
  return { sums, crc32c: crc32cBlocks(data, checkBlockBytes, sums) };
}

/** What LMDB keeps per chunk for its CRAQ replica beside the committed record: the pending
 * version, who wrote the committed one and under which chain version, and tombstones. */
interface ReplicaExtra {
  readonly committed: { readonly removed: boolean; readonly version: number; readonly writeId: WriteId | null; readonly chainVersion: number } | null;
  readonly pending: { readonly version: number; readonly length: number; readonly crc32c: number; readonly removed: boolean; readonly writeId: WriteId } | null;
}

type ClientKey = [clientId: string, requestId: number];
interface ClientValue { readonly inodeId: number; readonly index: number; readonly version: number }

/** One promise chain per key: callers for one key run in order, different keys in parallel. */
export class KeyedLock {
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

  /** Settles once everything queued now has run. */
  async idle(): Promise<void> {
    await Promise.all([...this.tails.values()]);
  }
}

function metaOf(r: ChunkRecord): ChunkMeta {
  return { version: chunkVersion(r.version), length: r.length, crc32c: r.crc32c };
}

function isErrno(err: unknown, ...codes: string[]): boolean {
  return codes.includes((err as NodeJS.ErrnoException).code ?? '');
}

function mapIoError(err: unknown): unknown {
  if (err instanceof FlyfsError) return err;
  if (isErrno(err, 'ENOSPC', 'EDQUOT')) return flyfsError('FLYFS_ERR_NO_SPACE', (err as Error).message, { cause: err });
  return err;
}

export class ChunkEngine implements ChunkStore {
  private readonly dataDir: string;
  private readonly locks = new KeyedLock();
  private statfsCache: { atMs: number; usage: TargetUsage } | undefined;
  private closed = false;
  /** Versions whose bytes are in their files already (a pending version that commits keeps its file). */
  private readonly onDisk = new WeakSet<StoredContent>();
  /** Cleared when the file system refuses O_DIRECT (tmpfs, some overlays). */
  private direct: boolean;
  /** Descriptors of committed and pending version files, kept between reads. */
  private readonly openFiles: OpenFileCache;
  /** Inode folders known to exist (made or seen by this engine), so a write need not mkdir. */
  private readonly inodeDirs = new Set<number>();

  private constructor(
    private readonly options: ChunkEngineOptions,
    private readonly env: RootDatabase,
    private readonly chunks: Database<ChunkRecord, RecordKey>,
    private readonly replica: Database<ReplicaExtra, RecordKey>,
    private readonly clients: Database<ClientValue, ClientKey>,
    private readonly blocks: Database<Buffer, BlocksKey>,
  ) {
    this.dataDir = join(options.dir, 'data');
    this.direct = (options.directIo ?? true) && oDirect !== 0 && options.io.allocAligned(0) !== undefined;
    this.openFiles = new OpenFileCache(options.io, chunkEngineLimits.openFilesPerTargetMax);
  }

  /** Opens (creating if needed) the engine of one target and sweeps orphan files of torn writes. */
  static async open(options: ChunkEngineOptions): Promise<ChunkEngine> {
    await fsp.mkdir(join(options.dir, 'data'), { recursive: true });
    // Sync on, not overlapped: a put is on disk when it resolves.
    const env = openLmdb({ path: join(options.dir, 'meta'), maxDbs: 8, overlappingSync: false });
    const chunks = env.openDB<ChunkRecord, RecordKey>({ name: 'chunks', sharedStructuresKey: Symbol.for('flyfs.structures') });
    const replica = env.openDB<ReplicaExtra, RecordKey>({ name: 'replica', sharedStructuresKey: Symbol.for('flyfs.structures') });
    const clients = env.openDB<ClientValue, ClientKey>({ name: 'clients', sharedStructuresKey: Symbol.for('flyfs.structures') });
    const blocks = env.openDB<Buffer, BlocksKey>({ name: 'blocks', encoding: 'binary' });
    const engine = new ChunkEngine(options, env, chunks, replica, clients, blocks);
    await engine.sweepOrphans();
    return engine;
  }

  /** Removes data files that no committed record points at (writes a crash cut short, old versions). */
  private async sweepOrphans(): Promise<void> {
    for (const inode of await fsp.readdir(this.dataDir)) {
      const dir = join(this.dataDir, inode);
      let names: string[];
      try { names = await fsp.readdir(dir); } catch { continue; }
      for (const name of names) {
        const m = /^(\d+)\.(\d+)$/.exec(name);
        const key: RecordKey | undefined = m === null ? undefined : [Number(inode), Number(m[1])];
        const version = m === null ? -1 : Number(m[2]);
        const keep = key !== undefined && (this.chunks.get(key)?.version === version || this.replica.get(key)?.pending?.version === version);
        if (!keep) await fsp.rm(join(dir, name), { force: true });
      }
    }
    // Block checksums of versions no record names any more.
    const stale: BlocksKey[] = [];
    for (const k of this.blocks.getKeys({})) {
      const key: RecordKey = [k[0], k[1]];
      if (this.chunks.get(key)?.version !== k[2] && this.replica.get(key)?.pending?.version !== k[2]) stale.push(k);
    }
    if (stale.length > 0) await this.env.transaction(() => { for (const k of stale) this.blocks.remove(k); });
  }

  /**
   * Removes a version's file; its block checksums go in the transaction that stopped naming it
   * (an entry left by a crash between the two is harmless and swept at open).
   */
  private async dropFile(key: ChunkKey, version: number): Promise<void> {
    const path = this.filePath(key, version);
    this.openFiles.invalidate(path);
    await fsp.rm(path, { force: true });
  }

  /**
   * Bytes [from, to) of a version, verified (when checksums are on) by the blocks around them
   * when the version has block checksums, else by the whole content's CRC32C.
   */
  private async readRange(key: ChunkKey, rec: ChunkRecord, from: number, to: number, verify: boolean): Promise<Buffer> {
    if (!verify || to <= from) return this.readFile(key, rec, from, to);
    const sums = this.blocks.get([key.inodeId, key.index, rec.version]);
    if (sums === undefined || sums.length !== 4 * Math.ceil(rec.length / checkBlockBytes)) return (await this.readVerified(key, rec)).subarray(from, to);
    const b0 = Math.floor(from / checkBlockBytes);
    const b1 = Math.ceil(to / checkBlockBytes);
    const lo = b0 * checkBlockBytes;
    const data = await this.readFile(key, rec, lo, Math.min(rec.length, b1 * checkBlockBytes));
    const bad = crc32cCheckBlocks(data, checkBlockBytes, sums.subarray(4 * b0, 4 * b1));
    if (bad >= 0) {
      this.options.ioBuffers?.give(data);
      throw flyfsError('FLYFS_ERR_CHECKSUM', `chunk ${this.lockKey(key)} v${rec.version}: CRC32C mismatch in block ${b0 + bad}`);
    }
    return data.subarray(from - lo, to - lo);
  }

  private inodeDir(inodeId: InodeId): string { return join(this.dataDir, String(inodeId)); }
  private filePath(key: ChunkKey, version: number): string { return join(this.inodeDir(key.inodeId), `${key.index}.${version}`); }
  private lockKey(key: ChunkKey): string { return `${key.inodeId}/${key.index}`; }

  private checkOpen(): void {
    if (this.closed) throw flyfsError('FLYFS_ERR_CLOSED', 'chunk store is closed');
  }

  private checkKey(key: ChunkKey): void {
    if (!Number.isSafeInteger(key.inodeId) || key.inodeId <= 0) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `inode id ${key.inodeId}`);
    if (!Number.isInteger(key.index) || key.index < 0 || key.index > 0xffffffff) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `chunk index ${key.index}`);
  }

  private record(key: ChunkKey): ChunkRecord | undefined {
    return this.chunks.get([key.inodeId, key.index]);
  }

  // ---- file I/O through the engine ----

  /**
   * Reads [from, to) of a committed version's file: exactly that many bytes, or a checksum error.
   * The file's descriptor comes from the open-file cache unless `cached` is false (the scrub, which
   * visits every chunk once, would only push the hot ones out). With a read buffer pool the bytes
   * are a view of a pooled buffer: a caller that copies them out may give it back.
   */
  private async readFile(key: ChunkKey, rec: ChunkRecord, from: number, to: number, cached = true): Promise<Buffer> {
    const io = this.options.io;
    const path = this.filePath(key, rec.version);
    const n = to - from;
    if (n <= 0) return Buffer.alloc(0);
    const useDirect = this.direct;
    const flags = fsConstants.O_RDONLY | (useDirect ? oDirect : 0);
    let file: { fd: number; release(): void };
    try {
      if (cached) {
        file = await this.openFiles.acquire(path, flags);
      } else {
        const fd = await io.open(path, flags);
        file = { fd, release: () => { io.close(fd).catch(() => undefined); } };
      }
    } catch (err) {
      if (useDirect && isErrno(err, 'EINVAL')) { this.direct = false; return this.readFile(key, rec, from, to, cached); }
      if (isErrno(err, 'ENOENT')) throw flyfsError('FLYFS_ERR_CHECKSUM', `chunk ${this.lockKey(key)} v${rec.version}: its data file is missing`);
      throw err;
    }
    const pool = this.options.ioBuffers;
    let buf: Buffer | undefined;
    try {
      // O_DIRECT: an aligned window around the range, into aligned memory; short only at the end.
      const a = useDirect ? io.alignment : 1;
      const start = Math.floor(from / a) * a;
      const end = Math.ceil(to / a) * a;
      buf = useDirect ? (pool?.take(end - start) ?? io.allocAligned(end - start)!) : Buffer.allocUnsafe(end - start);
      let got = 0;
      while (start + got < to) {
        const r = await io.read(file.fd, buf, got, end - start - got, start + got);
        if (r === 0) break;
        got += r;
      }
      if (start + got < to) throw flyfsError('FLYFS_ERR_CHECKSUM', `chunk ${this.lockKey(key)} v${rec.version}: data file shorter than ${rec.length} bytes`);
      return buf.subarray(from - start, to - start);
    } catch (err) {
      if (buf !== undefined) pool?.give(buf);
      throw err;
    } finally {
      file.release();
    }
  }

  /** The whole committed content, its CRC verified. */
  private async readVerified(key: ChunkKey, rec: ChunkRecord, cached = true): Promise<Buffer> {
    const data = await this.readFile(key, rec, 0, rec.length, cached);
    if (crc32c(data) !== rec.crc32c) {
      this.options.ioBuffers?.give(data);
      throw flyfsError('FLYFS_ERR_CHECKSUM', `chunk ${this.lockKey(key)} v${rec.version}: CRC32C mismatch`);
    }
    return data;
  }

  /**
   * Writes the version's file aside, durably (data and, for a new file, its folder entry);
   * resolves to its block checksums, for the transaction that records the version.
   */
  private async writeFile(key: ChunkKey, version: number, parts: readonly Uint8Array[], o: { sums?: Buffer; syncDir?: boolean } = {}): Promise<Buffer> {
    const io = this.options.io;
    const dir = this.inodeDir(key.inodeId);
    if (!this.inodeDirs.has(key.inodeId)) {
      const made = await fsp.mkdir(dir, { recursive: true });
      if (made !== undefined) await this.fsyncDir(this.dataDir);
      this.inodeDirs.add(key.inodeId);
    }
    const path = this.filePath(key, version);
    // A descriptor kept for an earlier file of this name must not outlive it.
    this.openFiles.invalidate(path);
    const total = parts.reduce((n, p) => n + p.byteLength, 0);
    // O_DIRECT unless the file system refuses it: buffered writes copy every byte into the page
    // cache, which on the machines measured cost ~10x the write itself (BENCHMARKS.md, file-rw).
    const useDirect = this.direct && total > 0;
    const flags = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_TRUNC | (useDirect ? oDirect : 0);
    let fd: number;
    try {
      fd = await io.open(path, flags, 0o644);
    } catch (err) {
      if (useDirect && isErrno(err, 'EINVAL')) { this.direct = false; return this.writeFile(key, version, parts, o); }
      // The folder went (removeFrom's rmdir) after this engine last saw it: make it again.
      if (!isErrno(err, 'ENOENT')) throw mapIoError(err);
      this.inodeDirs.delete(key.inodeId);
      if ((await fsp.mkdir(dir, { recursive: true })) !== undefined) await this.fsyncDir(this.dataDir);
      this.inodeDirs.add(key.inodeId);
      fd = await io.open(path, flags, 0o644);
    }
    let sums: Buffer;
    let staged: Buffer | undefined;
    try {
      if (useDirect) {
        // One aligned copy of the parts, zero-padded to the alignment; one write of it; the
        // padding cut off again by ftruncate, so the file holds exactly the content.
        const a = io.alignment;
        const padded = Math.ceil(total / a) * a;
        staged = this.options.ioBuffers?.take(padded) ?? io.allocAligned(padded)!;
        let at = 0;
        for (const p of parts) { staged.set(p, at); at += p.byteLength; }
        staged.fill(0, total, padded);
        sums = o.sums ?? blockSumsOf(staged.subarray(0, total)).sums;
        for (let done = 0; done < padded;) {
          const n = await io.write(fd, staged, done, padded - done, done);
          if (n === 0) throw errnoError(-5, 'write', path);
          done += n;
        }
        if (padded !== total) await io.truncate(fd, total);
      } else {
        // All parts at once: the ring takes them in one submission; the checksums are computed
        // while the writes are in flight.
        let position = 0;
        const writes: Array<Promise<void>> = [];
        for (const p of parts) {
          const at = position;
          writes.push((async () => {
            let done = 0;
            while (done < p.byteLength) done += await io.write(fd, p, done, p.byteLength - done, at + done);
          })());
          position += p.byteLength;
        }
        sums = o.sums ?? blockSumsOf(parts.length === 1 ? parts[0]! : Buffer.concat(parts)).sums;
        await Promise.all(writes);
      }
      await io.sync(fd, true);
    } catch (err) {
      await io.close(fd).catch(() => undefined);
      await fsp.rm(path, { force: true });
      // A file system that opens with O_DIRECT but refuses its writes (a larger block size): buffered from now on.
      if (useDirect && isErrno(err, 'EINVAL')) { this.direct = false; return this.writeFile(key, version, parts, o); }
      throw mapIoError(err);
    } finally {
      // Every write on `staged` has finished (or failed) by now: the kernel is done with it.
      if (staged !== undefined) this.options.ioBuffers?.give(staged);
    }
    await io.close(fd);
    if (o.syncDir ?? true) await this.fsyncDir(dir);
    return sums;
  }

  private async fsyncDir(dir: string): Promise<void> {
    const io = this.options.io;
    const fd = await io.open(dir, fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
    try { await io.sync(fd, false); } finally { await io.close(fd); }
  }

  /** Points the chunk at its new version (durable when it resolves), then drops the old file. */
  private async commit(key: ChunkKey, rec: ChunkRecord, old: ChunkRecord | undefined, sums: Buffer): Promise<void> {
    await this.env.transaction(() => {
      this.chunks.put([key.inodeId, key.index], rec);
      this.blocks.put([key.inodeId, key.index, rec.version], sums);
      if (old !== undefined) this.blocks.remove([key.inodeId, key.index, old.version]);
    });
    if (old !== undefined) await this.dropFile(key, old.version);
  }

  // ---- the ChunkStore interface ----

  /** Refuses a chunk write outside the chunk (FLYFS_ERR_CHUNK_RANGE) or with a bad key. */
  checkWrite(key: ChunkKey, offset: number, length: number, chunkSizeBytes: number): void {
    this.checkOpen();
    this.checkKey(key);
    if (!Number.isInteger(chunkSizeBytes) || chunkSizeBytes < limits.chunkSizeBytesMin || chunkSizeBytes > limits.chunkSizeBytesMax) {
      throw flyfsError('FLYFS_ERR_CHUNK_RANGE', `chunk size ${chunkSizeBytes}`);
    }
    if (!Number.isInteger(offset) || offset < 0 || offset + length > chunkSizeBytes) {
      throw flyfsError('FLYFS_ERR_CHUNK_RANGE', `write [${offset}, ${offset + length}) in a chunk of ${chunkSizeBytes}`);
    }
  }

  /** Refuses a read range beyond any chunk (FLYFS_ERR_CHUNK_RANGE) or a bad key. */
  checkRead(key: ChunkKey, offset: number, length: number): void {
    this.checkOpen();
    this.checkKey(key);
    if (!Number.isInteger(offset) || offset < 0 || !Number.isInteger(length) || length < 0 || offset + length > limits.chunkSizeBytesMax) {
      throw flyfsError('FLYFS_ERR_CHUNK_RANGE', `range [${offset}, ${offset + length})`);
    }
  }

  async write(key: ChunkKey, offset: number, data: Uint8Array, chunkSizeBytes: number): Promise<ChunkMeta> {
    this.checkWrite(key, offset, data.length, chunkSizeBytes);
    return this.locks.run(this.lockKey(key), async () => {
      const old = this.record(key);
      if (old === undefined) await this.checkSpace();
      const version = (old?.version ?? 0) + 1;
      let parts: Uint8Array[];
      let length: number;
      let crc: number;
      if (old === undefined || (offset === 0 && data.length >= old.length)) {
        // Nothing of the old content survives: the new version is the data alone.
        const gap = old === undefined && offset > 0 ? Buffer.alloc(offset) : undefined;
        parts = gap === undefined ? [data] : [Buffer.concat([gap, data])];
        length = offset + data.length;
      } else {
        // Copy on write. The old content is verified even when reads skip it, so a write never
        // launders corruption into a fresh checksum.
        const before = await this.readVerified(key, old);
        length = Math.max(old.length, offset + data.length);
        const next = Buffer.alloc(length);
        before.copy(next, 0);
        next.set(data, offset);
        parts = [next];
      }
      const summed = blockSumsOf(parts[0]!);
      crc = summed.crc32c;
      const sums = await this.writeFile(key, version, parts, { sums: summed.sums });
      const rec: ChunkRecord = { version, length, crc32c: crc };
      await this.commit(key, rec, old, sums);
      return metaOf(rec);
    });
  }

  async read(key: ChunkKey, offset: number, length: number): Promise<{ data: Buffer; meta: ChunkMeta } | undefined> {
    this.checkRead(key, offset, length);
    // The version read is the one committed when the read began; a write that commits meanwhile
    // unlinks that file only after the put, and an open file stays readable on Linux.
    const rec = this.record(key);
    if (rec === undefined) return undefined;
    const from = Math.min(offset, rec.length);
    const to = Math.min(rec.length, offset + length);
    try {
      return { meta: metaOf(rec), data: await this.readRange(key, rec, from, to, this.options.verifyChecksums) };
    } catch (err) {
      // The version was replaced (and its file removed) between the lookup and the open: read again.
      if (err instanceof FlyfsError && err.code === 'FLYFS_ERR_CHECKSUM' && this.record(key)?.version !== rec.version) return this.read(key, offset, length);
      throw err;
    }
  }

  async stat(key: ChunkKey): Promise<ChunkMeta | undefined> {
    this.checkOpen();
    this.checkKey(key);
    const rec = this.record(key);
    return rec === undefined ? undefined : metaOf(rec);
  }

  async truncate(key: ChunkKey, lengthBytes: number): Promise<ChunkMeta | undefined> {
    this.checkOpen();
    this.checkKey(key);
    if (!Number.isInteger(lengthBytes) || lengthBytes < 0 || lengthBytes > limits.chunkSizeBytesMax) {
      throw flyfsError('FLYFS_ERR_CHUNK_RANGE', `truncate to ${lengthBytes}`);
    }
    return this.locks.run(this.lockKey(key), async () => {
      const old = this.record(key);
      if (old === undefined || old.length <= lengthBytes) return old === undefined ? undefined : metaOf(old);
      const data = (await this.readVerified(key, old)).subarray(0, lengthBytes);
      const summed = blockSumsOf(data);
      const rec: ChunkRecord = { version: old.version + 1, length: lengthBytes, crc32c: summed.crc32c };
      const sums = await this.writeFile(key, rec.version, [data], { sums: summed.sums });
      await this.commit(key, rec, old, sums);
      return metaOf(rec);
    });
  }

  async removeFrom(inodeId: InodeId, fromIndex: number): Promise<number> {
    this.checkOpen();
    this.checkKey({ inodeId, index: fromIndex });
    const indexes = [...this.chunks.getKeys({ start: [inodeId, fromIndex], end: [inodeId + 1, 0] })].map((k) => k[1]);
    let removed = 0;
    for (const index of indexes) {
      const key = { inodeId, index };
      await this.locks.run(this.lockKey(key), async () => {
        const rec = this.record(key);
        if (rec === undefined) return;
        // Record first: a crash after it leaves an orphan file, swept at open, never a dangling record.
        await this.env.transaction(() => {
          this.chunks.remove([inodeId, index]);
          this.blocks.remove([inodeId, index, rec.version]);
        });
        await this.dropFile(key, rec.version);
        removed++;
      });
    }
    if (fromIndex === 0) {
      // Only succeeds when empty: a concurrent write that recreated a chunk keeps the folder.
      this.inodeDirs.delete(inodeId);
      try { await fsp.rmdir(this.inodeDir(inodeId)); } catch { /* not empty or gone */ }
    }
    return removed;
  }

  // ---- the durable store of the target's CRAQ replica (storageserver/replicated-target.ts) ----

  /** Everything the replica persisted: its chunk records (content by reference) and client entries. */
  replicaState(): DurableState<StoredContent> {
    const chunks: ReplicaRecord<StoredContent>[] = [];
    const keys = new Set<string>();
    const add = (key: RecordKey): void => {
      const name = `${key[0]}:${key[1]}`;
      if (keys.has(name)) return;
      keys.add(name);
      const r = this.replicaRecord({ inodeId: key[0] as InodeId, index: key[1] });
      if (r !== undefined) chunks.push(r);
    };
    for (const k of this.chunks.getKeys({})) add(k);
    for (const k of this.replica.getKeys({})) add(k);
    const clients: ClientEntry[] = [];
    for (const { key, value } of this.clients.getRange({})) {
      clients.push({ clientId: toClientId(key[0]), requestId: key[1], chunk: { inodeId: value.inodeId as InodeId, index: value.index }, version: chunkVersion(value.version) });
    }
    return { chunks, clients };
  }

  private replicaRecord(key: ChunkKey): ReplicaRecord<StoredContent> | undefined {
    const rec = this.record(key);
    const extra = this.replica.get([key.inodeId, key.index]);
    if (rec === undefined && extra === undefined) return undefined;
    const c = extra?.committed ?? null;
    const committed = rec !== undefined
      ? { version: chunkVersion(rec.version), content: { length: rec.length, crc32c: rec.crc32c, removed: false, bytes: undefined }, writeId: c?.writeId ?? null, chainVersion: toChainVersionNumber(c?.chainVersion ?? 0) }
      : c !== null && c.removed
        ? { version: chunkVersion(c.version), content: { length: 0, crc32c: 0, removed: true, bytes: undefined }, writeId: c.writeId, chainVersion: toChainVersionNumber(c.chainVersion) }
        : null;
    const p = extra?.pending ?? null;
    const pending = p === null ? null : { version: chunkVersion(p.version), content: { length: p.length, crc32c: p.crc32c, removed: p.removed, bytes: undefined }, writeId: p.writeId };
    if (committed === null && pending === null) return undefined;
    return { chunk: key, committed, pending };
  }

  /**
   * Makes the replica's writes durable, in order, as one group: first the bytes of every version
   * that carries them go to their files (in parallel, each fdatasync'd), then one durable LMDB
   * transaction applies all records, then files no record names any more are unlinked. A crash
   * anywhere leaves either the old records (and orphan files, swept at open) or the new ones.
   */
  async persistReplica(writes: readonly DurableWrite<StoredContent>[]): Promise<void> {
    this.checkOpen();
    if (writes.length === 0) return;
    const files: Promise<void>[] = [];
    const sums: Array<{ key: BlocksKey; sums: Buffer }> = [];
    // The folders of new files are fsynced once per group, after every file of it is written.
    const dirs = new Set<InodeId>();
    const writeOut = (key: ChunkKey, version: number, content: StoredContent): void => {
      if (content.removed || content.bytes === undefined || this.onDisk.has(content)) return;
      this.onDisk.add(content);
      const bytes = content.bytes;
      dirs.add(key.inodeId);
      const given = content.blockSums !== undefined && content.blockSums.length === 4 * Math.ceil(bytes.length / checkBlockBytes) ? content.blockSums : undefined;
      files.push(this.writeFile(key, version, [bytes], { ...(given === undefined ? {} : { sums: given }), syncDir: false }).then(
        (s) => { sums.push({ key: [key.inodeId, key.index, version], sums: s }); },
        (err: unknown) => { this.onDisk.delete(content); throw err; },
      ));
    };
    for (const w of writes) {
      if (w.kind !== 'putChunk') continue;
      const r = w.record;
      if (r.committed !== null) writeOut(r.chunk, r.committed.version, r.committed.content);
      if (r.pending !== null) writeOut(r.chunk, r.pending.version, r.pending.content);
    }
    await Promise.all(files);
    await Promise.all([...dirs].map((inode) => this.fsyncDir(this.inodeDir(inode))));
    // Which versions each touched chunk names before and after: files of the dropped ones go.
    const before = new Map<string, { key: ChunkKey; versions: Set<number> }>();
    const after = new Map<string, Set<number>>();
    const versionsOf = (key: ChunkKey): Set<number> => {
      const v = new Set<number>();
      const rec = this.record(key);
      if (rec !== undefined) v.add(rec.version);
      const p = this.replica.get([key.inodeId, key.index])?.pending;
      if (p != null && !p.removed) v.add(p.version);
      return v;
    };
    for (const w of writes) {
      const key = w.kind === 'putChunk' ? w.record.chunk : w.kind === 'deleteChunk' ? w.chunk : undefined;
      if (key !== undefined && !before.has(chunkName(key))) before.set(chunkName(key), { key, versions: versionsOf(key) });
    }
    await this.env.transaction(() => {
      for (const b of sums) this.blocks.put(b.key, b.sums);
      for (const w of writes) {
        switch (w.kind) {
          case 'putChunk': {
            const r = w.record;
            const k: RecordKey = [r.chunk.inodeId, r.chunk.index];
            const c = r.committed;
            if (c !== null && !c.content.removed) this.chunks.put(k, { version: c.version, length: c.content.length, crc32c: c.content.crc32c });
            else this.chunks.remove(k);
            const p = r.pending;
            this.replica.put(k, {
              committed: c === null ? null : { removed: c.content.removed, version: c.version, writeId: c.writeId, chainVersion: c.chainVersion },
              pending: p === null ? null : { version: p.version, length: p.content.length, crc32c: p.content.crc32c, removed: p.content.removed, writeId: p.writeId },
            });
            const v = new Set<number>();
            if (c !== null && !c.content.removed) v.add(c.version);
            if (p !== null && !p.content.removed) v.add(p.version);
            after.set(chunkName(r.chunk), v);
            break;
          }
          case 'deleteChunk':
            this.chunks.remove([w.chunk.inodeId, w.chunk.index]);
            this.replica.remove([w.chunk.inodeId, w.chunk.index]);
            after.set(chunkName(w.chunk), new Set());
            break;
          case 'putClient':
            this.clients.put([w.entry.clientId, w.entry.requestId], { inodeId: w.entry.chunk.inodeId, index: w.entry.chunk.index, version: w.entry.version });
            break;
          case 'deleteClient':
            this.clients.remove([w.clientId, w.requestId]);
            break;
        }
      }
      // Versions no record names any more lose their block checksums here, their files below.
      for (const [name, { key, versions }] of before) {
        const keep = after.get(name) ?? versions;
        for (const v of versions) if (!keep.has(v)) this.blocks.remove([key.inodeId, key.index, v]);
      }
    });
    for (const [name, { key, versions }] of before) {
      const keep = after.get(name) ?? versions;
      for (const v of versions) if (!keep.has(v)) await this.dropFile(key, v);
    }
  }

  /**
   * Bytes [from, to) of one version of a chunk (committed or pending, as the replica names it),
   * verified against its CRC32C when checksums are on; FLYFS_ERR_CHECKSUM when damaged or gone.
   */
  async readVersion(key: ChunkKey, version: number, content: StoredContent, from: number, to: number, verify = this.options.verifyChecksums): Promise<Buffer> {
    this.checkOpen();
    const hi = Math.min(to, content.length);
    const lo = Math.min(from, hi);
    if (content.bytes !== undefined) return content.bytes.subarray(lo, hi);
    const rec: ChunkRecord = { version, length: content.length, crc32c: content.crc32c };
    return this.readRange(key, rec, lo, hi, verify);
  }

  /**
   * Replaces a damaged file of the committed version with good bytes of the same version (from
   * another replica): they must match the record's length and CRC32C. Written aside and renamed
   * over, so a crash leaves the damaged file or the good one. False when the chunk moved on.
   */
  async repairCommitted(key: ChunkKey, version: number, bytes: Buffer): Promise<boolean> {
    this.checkOpen();
    return this.locks.run(this.lockKey(key), async () => {
      const rec = this.record(key);
      if (rec === undefined || rec.version !== version) return false;
      if (bytes.length !== rec.length || crc32c(bytes) !== rec.crc32c) {
        throw flyfsError('FLYFS_ERR_CHECKSUM', `repair of chunk ${this.lockKey(key)} v${version}: the copy does not match the record`);
      }
      // A scratch version number no record names: the orphan sweep removes it after a crash.
      const scratch = Number.MAX_SAFE_INTEGER - version;
      const sums = await this.writeFile(key, scratch, [bytes]);
      await this.blocks.put([key.inodeId, key.index, version], sums);
      // Reads must open the good file, not keep reading the damaged one they hold open.
      this.openFiles.invalidate(this.filePath(key, version));
      await fsp.rename(this.filePath(key, scratch), this.filePath(key, version));
      this.openFiles.invalidate(this.filePath(key, version));
      await this.fsyncDir(this.inodeDir(key.inodeId));
      return true;
    });
  }

  /**
   * Hands back the buffer under bytes this engine read (readVersion) once the caller has copied
   * them out and keeps no view of them; bytes it did not read from a pooled buffer are ignored.
   */
  releaseRead(bytes: Uint8Array): void {
    this.options.ioBuffers?.give(bytes);
  }

  /** Throws FLYFS_ERR_NO_SPACE when the target is above its disk-full watermark. */
  async checkRoom(): Promise<void> {
    this.checkOpen();
    await this.checkSpace();
  }

  /**
   * Verifies every committed chunk against its CRC32C (the background scrub); resolves to the
   * chunks whose data is damaged or missing. Chunks written meanwhile are checked as they are.
   */
  async scrub(): Promise<ChunkKey[]> {
    this.checkOpen();
    const bad: ChunkKey[] = [];
    for (const k of this.chunks.getKeys({})) {
      const key = { inodeId: k[0] as InodeId, index: k[1] };
      await this.locks.run(this.lockKey(key), async () => {
        const rec = this.record(key);
        if (rec === undefined) return;
        try { await this.readVerified(key, rec, false); } catch (err) {
          if (err instanceof FlyfsError && err.code === 'FLYFS_ERR_CHECKSUM') bad.push(key); else throw err;
        }
      });
    }
    return bad;
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
    if (this.closed) return;
    this.closed = true;
    await this.locks.idle();
    this.openFiles.closeAll();
    await this.env.close();
  }
}
