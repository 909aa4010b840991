// Domain types of the CRAQ core: chain configuration, durable chunk records, the messages
// replicas exchange, and what goes into and comes out of one step.
import type { ChainId, ChainVersion, ChunkKey, ChunkVersion, TargetId } from '../../common/ids.js';
import type { ErrorCode } from '../../common/errors.js';

declare const clientBrand: unique symbol;
/** The client's identity for idempotent writes (one per client process/session). */
export type ClientId = string & { readonly [clientBrand]: 'ClientId' };
export const clientId = (id: string | number): ClientId => String(id) as ClientId;

/**
 * What a chunk's content is to the core, and how an update makes the next version. The core never
 * looks inside either: the simulator's content is the bytes themselves; the storage server's is a
 * reference to a version's file (length, CRC32C) with its bytes attached only while in flight.
 */
export interface ContentModel<C, U> {
  readonly empty: C;
  /**
   * The next version's full content: `update` over the committed version (null: none yet), or a
   * refusal (FLYFS_ERR_CHUNK_RANGE for an update outside the chunk; a retryable code when the
   * update was prepared against another version than `base`).
   */
  apply(base: { readonly version: ChunkVersion; readonly content: C } | null, update: U): C | Refusal;
  /** Bytes a content moves over the wire (bounds sync batches). */
  bytesOf(content: C): number;
}

export interface Refusal { readonly refused: ErrorCode; readonly detail: string }

export function isRefusal(v: unknown): v is Refusal {
  return typeof v === 'object' && v !== null && 'refused' in v;
}

/** The simulator's update: bytes at an offset; the chunk grows (zero-filled) as needed. */
export interface ByteUpdate {
  readonly offsetBytes: number;
  readonly bytes: Uint8Array;
  readonly chunkSizeBytes: number;
}

export type MemberState = 'serving' | 'syncing' | 'offline';

export interface ChainMember {
  readonly target: TargetId;
  readonly state: MemberState;
}

/**
 * A chain as the cluster manager publishes it: members in order head → tail. Members that are
 * not offline take part in writes (syncing ones included); only serving ones answer reads.
 * The manager keeps offline members behind the others and at most one syncing member, right
 * after the last serving one.
 */
export interface ChainConfig {
  readonly chainId: ChainId;
  readonly version: ChainVersion;
  readonly members: readonly ChainMember[];
}

/** A client write's identity: a retry carries the same pair. */
export interface WriteId {
  readonly clientId: ClientId;
  readonly requestId: number;
}

export interface CommittedChunk<C = Uint8Array> {
  readonly version: ChunkVersion;
  readonly content: C;
  /** The write that produced this version (null only for chunks of unknown origin). */
  readonly writeId: WriteId | null;
  /** Chain version under which this replica stored it (guards resync removals). */
  readonly chainVersion: ChainVersion;
}

export interface PendingChunk<C = Uint8Array> {
  readonly version: ChunkVersion;
  readonly content: C;
  readonly writeId: WriteId;
}

/** What a replica keeps durably per chunk. Records are immutable; a change is a new record. */
export interface ChunkRecord<C = Uint8Array> {
  readonly chunk: ChunkKey;
  readonly committed: CommittedChunk<C> | null;
  readonly pending: PendingChunk<C> | null;
}

/**
 * A client write committed on this replica (idempotence across heads): a retry with the same
 * (client id, request id) is answered with its version, not applied again. One entry per write,
 * so a client may have many writes in flight; the oldest entries go first past `clientsMax`.
 */
export interface ClientEntry {
  readonly clientId: ClientId;
  readonly requestId: number;
  readonly chunk: ChunkKey;
  readonly version: ChunkVersion;
}

export interface DurableState<C = Uint8Array> {
  readonly chunks: readonly ChunkRecord<C>[];
  readonly clients: readonly ClientEntry[];
}

export type DurableWrite<C = Uint8Array> =
  | { readonly kind: 'putChunk'; readonly record: ChunkRecord<C> }
  | { readonly kind: 'deleteChunk'; readonly chunk: ChunkKey }
  | { readonly kind: 'putClient'; readonly entry: ClientEntry }
  | { readonly kind: 'deleteClient'; readonly clientId: ClientId; readonly requestId: number };

// ---- requests from clients ----

export interface WriteRequest<U = ByteUpdate> {
  readonly clientId: ClientId;
  readonly requestId: number;
  readonly chainVersion: ChainVersion;
  readonly chunk: ChunkKey;
  /** How the next version is made from the committed one (ContentModel.apply). */
  readonly update: U;
}

export interface ReadRequest {
  readonly clientId: ClientId;
  readonly requestId: number;
  readonly chainVersion: ChainVersion;
  readonly chunk: ChunkKey;
}

export type ReplyResult<C = Uint8Array> =
  | { readonly ok: true; readonly version: ChunkVersion; readonly content?: C }
  | { readonly ok: false; readonly code: ErrorCode; readonly detail: string };

export interface ClientReply<C = Uint8Array> {
  readonly kind: 'write' | 'read';
  readonly clientId: ClientId;
  readonly requestId: number;
  readonly from: TargetId;
  readonly result: ReplyResult<C>;
}

// ---- messages between replicas ----

export interface SyncChunk<C = Uint8Array> {
  readonly chunk: ChunkKey;
  readonly version: ChunkVersion;
  readonly content: C;
  readonly writeId: WriteId | null;
}

export type PeerBody<C = Uint8Array> =
  /** Predecessor → successor: store this full chunk content as pending (commit it if tail). */
  | { readonly kind: 'update'; readonly chunk: ChunkKey; readonly version: ChunkVersion; readonly content: C; readonly writeId: WriteId }
  /** Successor → predecessor: `version` of `chunk` is committed downstream. */
  | { readonly kind: 'ack'; readonly chunk: ChunkKey; readonly version: ChunkVersion }
  /** Syncing successor → predecessor: my committed version per chunk; send me what I lack. */
  | { readonly kind: 'syncRequest'; readonly versions: readonly (readonly [ChunkKey, ChunkVersion])[] }
  /**
   * Predecessor → syncing successor: newer committed chunks, chunks to delete, and the
   * predecessor's pending versions (handled as updates, so that the successor holds everything
   * the predecessor holds once `done`: a version some former tail committed is never lost).
   */
  | {
    readonly kind: 'syncData';
    readonly chunks: readonly SyncChunk<C>[];
    readonly pendings: readonly PendingSync<C>[];
    readonly removes: readonly ChunkKey[];
    readonly clients: readonly ClientEntry[];
    readonly done: boolean;
  };

export interface PendingSync<C = Uint8Array> {
  readonly chunk: ChunkKey;
  readonly version: ChunkVersion;
  readonly content: C;
  readonly writeId: WriteId;
}

export interface PeerMessage<C = Uint8Array> {
  readonly from: TargetId;
  readonly to: TargetId;
  readonly chainId: ChainId;
  readonly chainVersion: ChainVersion;
  readonly body: PeerBody<C>;
}

// ---- one step ----

export type CraqInput<C = Uint8Array, U = ByteUpdate> =
  | { readonly kind: 'write'; readonly request: WriteRequest<U> }
  | { readonly kind: 'read'; readonly request: ReadRequest }
  | { readonly kind: 'peer'; readonly message: PeerMessage<C> }
  | { readonly kind: 'config'; readonly config: ChainConfig }
  | { readonly kind: 'tick' };

/** For the cluster manager: this syncing replica holds everything its predecessor had. */
export interface SyncDoneEvent {
  readonly kind: 'syncDone';
  readonly target: TargetId;
  readonly chainId: ChainId;
  readonly chainVersion: ChainVersion;
}

/**
 * What one step asks of the I/O shell, in this order: make `persist` durable, then send
 * `messages` and `replies` and report `events`. A crash after persisting loses only the sends.
 */
export interface CraqOutput<C = Uint8Array> {
  readonly persist: DurableWrite<C>[];
  readonly messages: PeerMessage<C>[];
  readonly replies: ClientReply<C>[];
  readonly events: SyncDoneEvent[];
}

export interface CraqOptions {
  /** Committed writes remembered for idempotence (all clients); the oldest goes first when full. */
  readonly clientsMax: number;
  /** Retries of one write that may wait on the same pending version at once. */
  readonly waitersPerChunkMax: number;
  /** Chunks one syncData message carries. */
  readonly syncBatchChunksMax: number;
  /** Content bytes one syncData message carries (at least one chunk goes, whatever its size). */
  readonly syncBatchBytesMax: number;
}

export const craqOptionsDefault: CraqOptions = {
  clientsMax: 65_536,
  waitersPerChunkMax: 8,
  syncBatchChunksMax: 64,
  syncBatchBytesMax: 16 * 1024 * 1024,
};
