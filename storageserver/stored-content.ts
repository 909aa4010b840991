// What the CRAQ core's content is inside a storage server (ContentModel, storageserver/craq):
// a reference to one version of a chunk, by length and CRC32C. Its bytes ride along only while
// the version is in flight (a client's write at the head, an update or sync batch from a peer);
// once the chunk engine has written them to the version's file, reads and retransmissions go to
// that file. A removed chunk is a version too (a tombstone: no bytes, no file), so removal
// travels down the chain like any write and resync can tell "deleted" from "never written".
import type { ChunkVersion } from '../common/ids.js';
import type { ContentModel } from './craq/index.js';

export interface StoredContent {
  readonly length: number;
  readonly crc32c: number;
  readonly removed: boolean;
  /** The version's bytes while they are not (yet) in its file; dropped once written. */
  bytes: Buffer | undefined;
  /**
   * The CRC32C of each 4 KiB block of `bytes` (u32 LE), computed in the same pass that computed
   * or checked `crc32c` (the head's write, a peer message's decode), so the file's block checksums
   * cost no second pass. Dropped with the bytes.
   */
  blockSums?: Buffer | undefined;
}

/** A write, truncate or remove as the head's shell prepared it: the next version's full content,
 * built over the committed version `baseVersion` (0: none). */
export interface PreparedUpdate {
  readonly baseVersion: number;
  readonly next: StoredContent;
}

export const tombstone = (): StoredContent => ({ length: 0, crc32c: 0, removed: true, bytes: undefined });

export const storedContentModel: ContentModel<StoredContent, PreparedUpdate> = {
  empty: tombstone(),
  apply(base: { version: ChunkVersion; content: StoredContent } | null, u: PreparedUpdate) {
    if ((base?.version ?? 0) !== u.baseVersion) {
      return { refused: 'FLYFS_ERR_UNAVAILABLE', detail: `chunk moved from v${u.baseVersion} to v${base?.version ?? 0} while the write was prepared` };
    }
    return u.next;
  },
  bytesOf: (c) => c.length,
};
