// The I/O shell of one target's CRAQ replica (docs/craq.md): the pure core
// (storageserver/craq) decides, the chunk engine stores, the peer transport carries messages.
//
// - Every step's output is queued; one drain loop at a time persists everything queued as one
//   group (ChunkEngine.persistReplica: version files, then one durable LMDB transaction), and
//   only then sends its messages, answers its clients and reports its events, in step order.
// - If persisting fails (ENOSPC, EIO), the shell does what a crash would: it drops the unsent
//   outputs, rebuilds the core from what is durable, and fails the requests that were waiting.
// - Writes at the head are prepared here, one at a time per chunk (so they queue instead of
//   being refused): the committed version is read (and verified: a write never launders a
//   damaged chunk into a fresh checksum), the update is applied, and the full next version goes
//   to the core with the version it was built on.
// - Reads ask the core which version is committed and read that version's file.
import { randomUUID } from 'node:crypto';
import { flyfsError, FlyfsError } from '../common/errors.js';
import { type ChainVersion, type ChunkKey, type InodeId, type TargetId } from '../common/ids.js';
import { limits } from '../common/limits.js';
import type { Logger } from '../common/log.js';
import { blockSumsOf, KeyedLock, type ChunkEngine } from './chunk-engine.js';
import type { ChunkMeta, ChunkStore, TargetUsage, WriteIdentity } from './chunk-store.js';
import { crc32c } from './crc32c.js';
import {
  chunkName, clientId as toClientId, CraqReplica,
  type ChainConfig, type ClientReply, type CraqInput, type CraqOutput, type MemberState, type PeerMessage,
} from './craq/index.js';
import { storedContentModel, tombstone, type PreparedUpdate, type StoredContent } from './stored-content.js';

export type StoredMessage = PeerMessage<StoredContent>;

export interface ReplicatedTargetOptions {
  readonly self: TargetId;
  readonly engine: ChunkEngine;
  /** Hands a message to the peer transport; bytes are captured before this returns. */
  readonly send: (message: StoredMessage, payload: (content: StoredContent, chunk: ChunkKey, version: number) => Buffer | Promise<Buffer>) => void;
  /** This target holds everything its predecessor had (the manager may make it serving). */
  readonly onSyncDone: (target: TargetId) => void;
  readonly logger: Logger;
  /** Retransmission (and sync retry) period. */
  readonly tickMs: number;
  /** How long a client write waits for its chain before failing as retryable. */
  readonly replyTimeoutMs: number;
  /** Reads a chunk's committed bytes from another member of the chain (for scrub repair). */
  readonly readFromPeer: (target: TargetId, chunk: ChunkKey, chainId: number, chainVersion: number, length: number) => Promise<Buffer>;
}

interface Waiter { resolve: (r: ClientReply<StoredContent>) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }

interface Queued { generation: number; out: CraqOutput<StoredContent> }

export class ReplicatedTarget implements ChunkStore {
  private replica: CraqReplica<StoredContent, PreparedUpdate>;
  private generation = 0;
  private config: ChainConfig | null = null;
  private readonly queue: Queued[] = [];
  /** Whether the drain loop runs (one at a time), and its end. */
  private draining = false;
  private drained: Promise<void> = Promise.resolve();
  private readonly waiters = new Map<string, Waiter[]>();
  private readonly locks = new KeyedLock();
  /** Identity of writes this target starts itself (removes and truncates from the manager). */
  private readonly ownClient = toClientId(`target:${randomUUID()}`);
  private ownRequestId = 1;
  private readonly timer: NodeJS.Timeout;
  private closed = false;

  constructor(private readonly options: ReplicatedTargetOptions) {
    this.replica = this.rebuild();
    this.timer = setInterval(() => this.step({ kind: 'tick' }), options.tickMs);
    this.timer.unref();
  }

  private rebuild(): CraqReplica<StoredContent, PreparedUpdate> {
    return new CraqReplica({ self: this.options.self, durable: this.options.engine.replicaState(), model: storedContentModel, options: { clientsMax: limits.craqClientsMax } });
  }

  get self(): TargetId { return this.options.self; }
  get state(): MemberState { return this.replica.state; }
  get chainVersion(): ChainVersion | null { return this.replica.chainVersion; }

  // ---- inputs ----

  applyConfig(config: ChainConfig): void {
    if (this.config !== null && config.version <= this.config.version) return;
    this.config = config;
    this.step({ kind: 'config', config });
  }

  onPeer(message: StoredMessage): void {
    this.step({ kind: 'peer', message });
  }

  private step(input: CraqInput<StoredContent, PreparedUpdate>): void {
    if (this.closed) return;
    const out = this.replica.step(input);
    if (out.persist.length === 0 && out.messages.length === 0 && out.replies.length === 0 && out.events.length === 0) return;
    this.queue.push({ generation: this.generation, out });
    this.drain();
  }

  private drain(): void {
    if (this.draining) return;
    this.draining = true;
    this.drained = this.drainQueue();
  }

  private async drainQueue(): Promise<void> {
    try {
      while (this.queue.length > 0 && !this.closed) {
        const batch = this.queue.splice(0).filter((q) => q.generation === this.generation);
        try {
          await this.options.engine.persistReplica(batch.flatMap((q) => q.out.persist));
        } catch (err) {
          this.crash(err);
          continue;
        }
        for (const q of batch) this.dispatch(q.out);
      }
    } finally {
      // Cleared in the same turn the loop sees an empty queue: a step after it starts a new loop.
      this.draining = false;
    }
  }

  /** A failed persist is a crash of this replica: start again from what is durable. */
  private crash(err: unknown): void {
    this.options.logger.error({ err, target: this.options.self }, 'replica could not persist: restarting it from its durable state');
    this.generation++;
    this.queue.length = 0;
    const fe = err instanceof FlyfsError && err.code === 'FLYFS_ERR_NO_SPACE' ? err : flyfsError('FLYFS_ERR_UNAVAILABLE', `target ${this.options.self} failed to persist: ${String(err)}`);
    for (const list of this.waiters.values()) for (const w of list) { clearTimeout(w.timer); w.reject(fe); }
    this.waiters.clear();
    this.replica = this.rebuild();
    if (this.config !== null) this.step({ kind: 'config', config: this.config });
  }

  private dispatch(out: CraqOutput<StoredContent>): void {
    for (const m of out.messages) this.options.send(m, (content, chunk, version) => this.payload(content, chunk, version));
    for (const r of out.replies) {
      const key = waiterKey(r.kind, r.clientId, r.requestId);
      const list = this.waiters.get(key);
      if (list === undefined) continue;
      this.waiters.delete(key);
      for (const w of list) { clearTimeout(w.timer); w.resolve(r); }
    }
    for (const e of out.events) this.options.onSyncDone(e.target);
    // Committed versions are in their files now: their bytes need not stay in memory.
    for (const w of out.persist) {
      if (w.kind === 'putChunk' && w.record.committed !== null) { w.record.committed.content.bytes = undefined; w.record.committed.content.blockSums = undefined; }
    }
  }

  private payload(content: StoredContent, chunk: ChunkKey, version: number): Buffer | Promise<Buffer> {
    if (content.removed) return Buffer.alloc(0);
    if (content.bytes !== undefined) return content.bytes;
    return this.options.engine.readVersion(chunk, version, content, 0, content.length);
  }

  private await(kind: 'write' | 'read', clientId: string, requestId: number): Promise<ClientReply<StoredContent>> {
    return new Promise((resolve, reject) => {
      const key = waiterKey(kind, clientId, requestId);
      const list = this.waiters.get(key) ?? [];
      const timer = setTimeout(() => {
        const l = this.waiters.get(key);
        if (l !== undefined) {
          const rest = l.filter((w) => w.timer !== timer);
          if (rest.length === 0) this.waiters.delete(key); else this.waiters.set(key, rest);
        }
        reject(flyfsError('FLYFS_ERR_UNAVAILABLE', `chain did not commit write ${clientId}:${requestId} within ${this.options.replyTimeoutMs} ms`));
      }, this.options.replyTimeoutMs);
      list.push({ resolve, reject, timer });
      this.waiters.set(key, list);
    });
  }

  private checkOpen(): void {
    if (this.closed) throw flyfsError('FLYFS_ERR_CLOSED', `target ${this.options.self} is closed`);
  }

  private routedVersion(): ChainVersion {
    const v = this.replica.chainVersion;
    if (v === null) throw flyfsError('FLYFS_ERR_NOT_SERVING', 'no chain configuration yet');
    return v;
  }

  /** Runs one prepared update of a chunk through the chain; resolves once it is committed on every member. */
  private async submit(key: ChunkKey, update: PreparedUpdate, id: WriteIdentity | undefined): Promise<number> {
    const clientId = toClientId(id?.clientId ?? this.ownClient);
    const requestId = id?.requestId ?? this.ownRequestId++;
    const answer = this.await('write', clientId, requestId);
    this.step({ kind: 'write', request: { clientId, requestId, chainVersion: this.routedVersion(), chunk: key, update } });
    const r = await answer;
    if (!r.result.ok) throw flyfsError(r.result.code, r.result.detail);
    return r.result.version;
  }

  /** The committed content of a chunk, read whole and always verified (the base of a new version). */
  private async committedBytes(key: ChunkKey): Promise<{ version: number; bytes: Buffer } | null> {
    const c = this.replica.committedOf(key);
    if (c === null || c.content.removed) return c === null ? null : { version: c.version, bytes: Buffer.alloc(0) };
    if (c.content.bytes !== undefined) return { version: c.version, bytes: c.content.bytes };
    const bytes = await this.options.engine.readVersion(key, c.version, c.content, 0, c.content.length, true);
    return { version: c.version, bytes };
  }

  /**
   * Repairs this replica's damaged copy of a committed chunk from another serving member: the
   * copy must be the same version (same length and CRC32C). Resolves to whether it was repaired.
   */
  async repair(key: ChunkKey): Promise<boolean> {
    this.checkOpen();
    const config = this.config;
    const c = this.replica.committedOf(key);
    if (config === null || c === null || c.content.removed) return false;
    const others = config.members.filter((m) => m.state === 'serving' && m.target !== this.options.self);
    for (const m of others) {
      try {
        const bytes = await this.options.readFromPeer(m.target, key, config.chainId, config.version, c.content.length);
        if (bytes.length !== c.content.length || crc32c(bytes) !== c.content.crc32c) continue;
        if (await this.options.engine.repairCommitted(key, c.version, bytes)) {
          this.options.logger.info({ target: this.options.self, chunk: chunkName(key), version: c.version, from: m.target }, 'repaired a damaged chunk from a replica');
          return true;
        }
      } catch (err) {
        this.options.logger.warn({ err, target: this.options.self, chunk: chunkName(key), from: m.target }, 'repair from this replica failed');
      }
    }
    return false;
  }

  // ---- ChunkStore ----

  async write(key: ChunkKey, offset: number, data: Uint8Array, chunkSizeBytes: number, id?: WriteIdentity): Promise<ChunkMeta> {
    this.checkOpen();
    this.options.engine.checkWrite(key, offset, data.length, chunkSizeBytes);
    return this.locks.run(chunkName(key), async () => {
      const base = this.replica.committedOf(key);
      if (base === null || base.content.removed) await this.options.engine.checkRoom();
      const baseVersion = base?.version ?? 0;
      const input = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      let next: Buffer;
      if ((base === null || base.content.removed || data.length >= base.content.length) && offset === 0) {
        next = input;
      } else {
        const old = await this.committedBytes(key);
        next = Buffer.alloc(Math.max(old?.bytes.length ?? 0, offset + data.length));
        old?.bytes.copy(next, 0);
        if (old !== null) this.options.engine.releaseRead(old.bytes);
        next.set(input, offset);
      }
      // One pass gives the version's CRC32C and its block checksums (for its file, on this replica).
      const { sums, crc32c: crc } = blockSumsOf(next);
      const version = await this.submit(key, { baseVersion, next: { length: next.length, crc32c: crc, removed: false, bytes: next, blockSums: sums } }, id);
      // A retry of a write committed before is answered with that write's version: describe it.
      const now = this.replica.committedOf(key);
      if (now !== null && now.version === version && !now.content.removed) return { version: now.version, length: now.content.length, crc32c: now.content.crc32c };
      return { version: version as ChunkMeta['version'], length: next.length, crc32c: crc };
    });
  }

  async read(key: ChunkKey, offset: number, length: number): Promise<{ data: Buffer; meta: ChunkMeta } | undefined> {
    this.checkOpen();
    this.options.engine.checkRead(key, offset, length);
    for (let attempt = 0; ; attempt++) {
      const out = this.replica.step({ kind: 'read', request: { clientId: this.ownClient, requestId: 0, chainVersion: this.routedVersion(), chunk: key } });
      const r = out.replies[0];
      if (r === undefined) throw flyfsError('FLYFS_ERR_INTERNAL', 'a read step gave no reply');
      if (!r.result.ok) throw flyfsError(r.result.code, r.result.detail);
      const content = r.result.content;
      if (r.result.version === 0 || content === undefined || content.removed) return undefined;
      const meta: ChunkMeta = { version: r.result.version, length: content.length, crc32c: content.crc32c };
      try {
        return { meta, data: await this.options.engine.readVersion(key, r.result.version, content, offset, offset + length) };
      } catch (err) {
        // A newer commit replaced that version's file between the lookup and the read: again.
        const moved = this.replica.committedOf(key)?.version !== r.result.version;
        if (!(moved && attempt < 3 && err instanceof FlyfsError && err.code === 'FLYFS_ERR_CHECKSUM')) throw err;
      }
    }
  }

  async stat(key: ChunkKey): Promise<ChunkMeta | undefined> {
    this.checkOpen();
    const c = this.replica.committedOf(key);
    if (c === null || c.content.removed) return undefined;
    return { version: c.version, length: c.content.length, crc32c: c.content.crc32c };
  }

  async truncate(key: ChunkKey, lengthBytes: number): Promise<ChunkMeta | undefined> {
    this.checkOpen();
    this.options.engine.checkRead(key, 0, lengthBytes);
    return this.locks.run(chunkName(key), async () => {
      const c = this.replica.committedOf(key);
      if (c === null || c.content.removed) return undefined;
      if (c.content.length <= lengthBytes) return { version: c.version, length: c.content.length, crc32c: c.content.crc32c };
      // Only a chunk that gets shorter is read (whole, verified) to build the cut version.
      const old = (await this.committedBytes(key))!;
      const next = Buffer.from(old.bytes.subarray(0, lengthBytes));
      this.options.engine.releaseRead(old.bytes);
      const { sums, crc32c: crc } = blockSumsOf(next);
      const version = await this.submit(key, { baseVersion: old.version, next: { length: next.length, crc32c: crc, removed: false, bytes: next, blockSums: sums } }, undefined);
      return { version: version as ChunkMeta['version'], length: next.length, crc32c: crc };
    });
  }

  /** Removes chunks as tombstone versions that travel down the chain like writes. */
  async removeFrom(inodeId: InodeId, fromIndex: number): Promise<number> {
    this.checkOpen();
    this.options.engine.checkRead({ inodeId, index: fromIndex }, 0, 0);
    let removed = 0;
    for (const key of this.replica.chunksOf(inodeId, fromIndex)) {
      await this.locks.run(chunkName(key), async () => {
        const c = this.replica.committedOf(key);
        if (c === null || c.content.removed) return;
        await this.submit(key, { baseVersion: c.version, next: tombstone() }, undefined);
        removed++;
      });
    }
    return removed;
  }

  usage(): Promise<TargetUsage> { return this.options.engine.usage(); }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    for (const list of this.waiters.values()) for (const w of list) { clearTimeout(w.timer); w.reject(flyfsError('FLYFS_ERR_CLOSED', 'target is closing')); }
    this.waiters.clear();
    await this.locks.idle().catch(() => undefined);
    await this.drained;
  }
}

function waiterKey(kind: string, clientId: string, requestId: number): string {
  return `${kind}:${clientId}:${requestId}`;
}
