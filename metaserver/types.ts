// Domain types of the metaserver's namespace, as stored in LMDB.
import type { FileLayout } from '../common/layout.js';
import type { InodeId, SessionId } from '../common/ids.js';

export type InodeKind = 'file' | 'dir' | 'symlink';

export interface LayoutPolicy {
  /** 0 = inherit from the parent directory. */
  readonly chunkSizeBytes: number;
  readonly stripe: number;
  readonly chainTableId: number;
}

export interface InodeRecord {
  readonly inodeId: InodeId;
  readonly kind: InodeKind;
  readonly mode: number;
  readonly nlink: number;
  readonly length: number;
  readonly ctimeMs: number;
  readonly mtimeMs: number;
  readonly atimeMs: number;
  readonly birthtimeMs: number;
  /** Owner ids: recorded, never enforced (flyfs does no permission checks). */
  readonly uid: number;
  readonly gid: number;
  /** Files: open write sessions; an inode whose nlink reached 0 stays until this is 0. */
  readonly writeSessions: number;
  /** Symlinks: the target, as given. */
  readonly target?: string;
  /** Files. */
  readonly layout?: FileLayout;
  /** Directories. */
  readonly layoutPolicy?: LayoutPolicy;
  /** Directories: the one parent (root is its own parent). */
  readonly parentId?: InodeId;
}

export interface DirentRecord { readonly inodeId: InodeId; readonly kind: InodeKind }

export interface DirEntry { readonly name: string; readonly inodeId: InodeId; readonly kind: InodeKind }

export interface SessionRecord { readonly sessionId: SessionId; readonly inodeId: InodeId; readonly clientId: string; readonly openedMs: number }

/** A pending chunk removal of a removed (or truncated) file. */
export interface GcEntry {
  readonly seq: number;
  readonly inodeId: InodeId;
  /** Chains still to be cleaned. */
  readonly chains: readonly number[];
  readonly fromIndex: number;
  readonly enqueuedMs: number;
  readonly attempts: number;
  readonly nextAttemptMs: number;
}

/** Removes every chunk of `inodeId` with index >= fromIndex on one chain. */
export type ChunkRemover = (job: { inodeId: InodeId; chainId: number; fromIndex: number }) => Promise<void>;

/** Trims one chunk (on the chain that holds it) to `lengthBytes`; a missing or shorter chunk is left as it is. */
export type ChunkTrimmer = (job: { inodeId: InodeId; chainId: number; index: number; lengthBytes: number }) => Promise<void>;

/** Attribute changes of setattr; an absent field is left as it is. */
export interface AttrChange {
  readonly mode?: number;
  readonly uid?: number;
  readonly gid?: number;
  readonly atimeMs?: number;
  readonly mtimeMs?: number;
}

/** Where new files find their chains. */
export interface ChainTableSource {
  chainTable(tableId: number): { version: number; chains: readonly number[] } | undefined;
}

export interface RequestContext { readonly clientId: string; readonly requestId: number }

export const OpenFlags = { read: 1, write: 2, create: 4, exclusive: 8, truncate: 16, append: 32 } as const;
export const openFlagsAll = 63;
