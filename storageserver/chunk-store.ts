// The interface every chunk engine of a storage target implements: the node:fs store today,
// the io_uring engine and CRAQ's pending/committed versions later. Callers see committed data only.
import type { ChunkKey, ChunkVersion, InodeId } from '../common/ids.js';

export interface ChunkMeta {
  /** Bytes of the chunk (the highest byte ever written + 1). */
  readonly length: number;
  /** Committed version: 1 after the first write, +1 on each write. */
  readonly version: ChunkVersion;
  /** CRC32C of the chunk's `length` bytes. */
  readonly crc32c: number;
}

export interface TargetUsage {
  /** Size of the file system the target lives on. */
  readonly capacityBytes: number;
  /** Bytes in use on that file system (by anyone). */
  readonly usedBytes: number;
  /** Bytes still available to this process. */
  readonly freeBytes: number;
}

/** A client write's identity: a retry with the same pair is answered, not applied again. */
export interface WriteIdentity { readonly clientId: string; readonly requestId: number }

export interface ChunkStore {
  /**
   * Writes `data` at `offset` of the chunk and commits it durably before resolving.
   * Refuses offset + data.length > chunkSizeBytes (FLYFS_ERR_CHUNK_RANGE) and a new chunk when
   * the disk is full (FLYFS_ERR_NO_SPACE). Writes to one chunk apply one at a time.
   */
  write(key: ChunkKey, offset: number, data: Uint8Array, chunkSizeBytes: number, id?: WriteIdentity): Promise<ChunkMeta>;
  /** Committed bytes [offset, offset+length), short at the chunk's end; undefined for a missing chunk. */
  read(key: ChunkKey, offset: number, length: number): Promise<{ data: Buffer; meta: ChunkMeta } | undefined>;
  stat(key: ChunkKey): Promise<ChunkMeta | undefined>;
  /**
   * Cuts the chunk to `lengthBytes` (a truncate of its file), committing a new version with its
   * CRC durably; a missing chunk, or one no longer than that, is left as it is. Resolves to the
   * chunk's metadata after the cut (undefined for a missing chunk).
   */
  truncate(key: ChunkKey, lengthBytes: number): Promise<ChunkMeta | undefined>;
  /** Removes every chunk of the inode with index >= fromIndex; resolves to how many went. */
  removeFrom(inodeId: InodeId, fromIndex: number): Promise<number>;
  usage(): Promise<TargetUsage>;
  close(): Promise<void>;
}
