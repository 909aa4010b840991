// Domain types of the CRAQ core: chain configuration, durable chunk records, the messages
// replicas exchange, and what goes into and comes out of one step.
import type { ChainId, ChainVersion, ChunkKey, ChunkVersion, TargetId } from '../../common/ids.js';
import type { ErrorCode } from '../../common/errors.js';

declare const clientBrand: unique symbol;
/** The client's identity for idempotent writes (one per client process/session). */
export type ClientId = number & { readonly [clientBrand]: 'ClientId' };
export const clientId = (n: number): ClientId => n as ClientId;

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

export interface CommittedChunk {
  readonly version: ChunkVersion;
  readonly content: Uint8Array;
  /** The write that produced this version (null only for chunks of unknown origin). */
  readonly writeId: WriteId | null;
  /** Chain version under which this replica stored it (guards resync removals). */
  readonly chainVersion: ChainVersion;
}

export interface PendingChunk {
  readonly version: ChunkVersion;
  readonly content: Uint8Array;
  readonly writeId: WriteId;
}

/** What a replica keeps durably per chunk. Records are immutable; a change is a new record. */
export interface ChunkRecord {
  readonly chunk: ChunkKey;
  readonly committed: CommittedChunk | null;
  readonly pending: PendingChunk | null;
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

export interface DurableState {
  readonly chunks: readonly ChunkRecord[];
  readonly clients: readonly ClientEntry[];
}

export type DurableWrite =
  | { readonly kind: 'putChunk'; readonly record: ChunkRecord }
  | { readonly kind: 'deleteChunk'; readonly chunk: ChunkKey }
  | { readonly kind: 'putClient'; readonly entry: ClientEntry }
  | { readonly kind: 'deleteClient'; readonly clientId: ClientId; readonly requestId: number };

// ---- requests from clients ----

export interface WriteRequest {
  readonly clientId: ClientId;
  readonly requestId: number;
  readonly chainVersion: ChainVersion;
  readonly chunk: ChunkKey;
  /** The update: `bytes` written at `offsetBytes`; the chunk grows (zero-filled) as needed. */
  readonly offsetBytes: number;
  readonly bytes: Uint8Array;
  readonly chunkSizeBytes: number;
}

export interface ReadRequest {
  readonly clientId: ClientId;
  readonly requestId: number;
  readonly chainVersion: ChainVersion;
  readonly chunk: ChunkKey;
}

export type ReplyResult =
  | { readonly ok: true; readonly version: ChunkVersion; readonly content?: Uint8Array }
  | { readonly ok: false; readonly code: ErrorCode; readonly detail: string };

export interface ClientReply {
  readonly kind: 'write' | 'read';
  readonly clientId: ClientId;
  readonly requestId: number;
  readonly from: TargetId;
  readonly result: ReplyResult;
}

// ---- messages between replicas ----

export interface SyncChunk {
  readonly chunk: ChunkKey;
  readonly version: ChunkVersion;
  readonly content: Uint8Array;
  readonly writeId: WriteId | null;
}

export type PeerBody =
  /** Predecessor → successor: store this full chunk content as pending (commit it if tail). */
  | { readonly kind: 'update'; readonly chunk: ChunkKey; readonly version: ChunkVersion; readonly content: Uint8Array; readonly writeId: WriteId }
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
    readonly chunks: readonly SyncChunk[];
    readonly pendings: readonly PendingSync[];
    readonly removes: readonly ChunkKey[];
    readonly clients: readonly ClientEntry[];
    readonly done: boolean;
  };

export interface PendingSync {
  readonly chunk: ChunkKey;
  readonly version: ChunkVersion;
  readonly content: Uint8Array;
  readonly writeId: WriteId;
}

export interface PeerMessage {
  readonly from: TargetId;
  readonly to: TargetId;
  readonly chainId: ChainId;
  readonly chainVersion: ChainVersion;
  readonly body: PeerBody;
}

// ---- one step ----

export type CraqInput =
  | { readonly kind: 'write'; readonly request: WriteRequest }
  | { readonly kind: 'read'; readonly request: ReadRequest }
  | { readonly kind: 'peer'; readonly message: PeerMessage }
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
export interface CraqOutput {
  readonly persist: DurableWrite[];
  readonly messages: PeerMessage[];
  readonly replies: ClientReply[];
  readonly events: SyncDoneEvent[];
}

export interface CraqOptions {
  /** Committed writes remembered for idempotence (all clients); the oldest goes first when full. */
  readonly clientsMax: number;
  /** Retries of one write that may wait on the same pending version at once. */
  readonly waitersPerChunkMax: number;
  /** Chunks one syncData message carries. */
  readonly syncBatchChunksMax: number;
}

export const craqOptionsDefault: CraqOptions = {
  clientsMax: 65_536,
  waitersPerChunkMax: 8,
  syncBatchChunksMax: 64,
};
