// One CRAQ replica of one chain as a pure state machine: step(input) → output. It does no I/O,
// reads no clock and draws no randomness; the shell persists `persist` before it sends anything.
// A crash is modelled by dropping the object and building a new one from the durable state.
import type { ChainVersion, ChunkKey, ChunkVersion, TargetId } from '../../common/ids.js';
import { chunkVersion } from '../../common/ids.js';
import { assert, type ErrorCode } from '../../common/errors.js';
import { bytesModel } from './chunk-content.js';
import { chunkName, writeName } from './chunk-name.js';
import {
  craqOptionsDefault, isRefusal,
  type ByteUpdate, type ChainConfig, type ChunkRecord, type ClientEntry, type CommittedChunk, type ClientId, type ContentModel, type CraqInput,
  type CraqOptions, type CraqOutput, type DurableState, type MemberState, type PeerBody, type PeerMessage, type PendingSync,
  type ReadRequest, type ReplyResult, type SyncChunk, type WriteId, type WriteRequest,
} from './types.js';

interface Role {
  readonly state: MemberState;
  readonly predecessor: TargetId | null;
  readonly successor: TargetId | null;
  readonly isHead: boolean;
}

interface Waiter {
  readonly clientId: ClientId;
  readonly requestId: number;
}

type SyncPhase = 'idle' | 'requested' | 'done';

const noRole: Role = { state: 'offline', predecessor: null, successor: null, isHead: false };

export interface CraqReplicaInit<C, U> {
  readonly self: TargetId;
  /** What survived: empty for a new target. */
  readonly durable?: DurableState<C>;
  readonly options?: Partial<CraqOptions>;
  /** What content is and how updates apply; the simulator's byte model when left out. */
  readonly model?: ContentModel<C, U>;
}

export class CraqReplica<C = Uint8Array, U = ByteUpdate> {
  readonly self: TargetId;
  private readonly options: CraqOptions;
  private readonly model: ContentModel<C, U>;
  private readonly chunks = new Map<string, ChunkRecord<C>>();
  /** Ticks seen, and the tick at which each pending version was last forwarded (not durable). */
  private ticks = 0;
  private readonly sentAt = new Map<string, number>();
  private readonly clients = new Map<string, ClientEntry>();
  // In memory only: lost on a crash, rebuilt from retries and retransmissions.
  private config: ChainConfig | null = null;
  private role: Role = noRole;
  private readonly waiters = new Map<string, Waiter[]>();
  private syncPhase: SyncPhase = 'idle';

  constructor(init: CraqReplicaInit<C, U>) {
    this.self = init.self;
    this.options = { ...craqOptionsDefault, ...init.options };
    this.model = init.model ?? (bytesModel as unknown as ContentModel<C, U>);
    for (const r of init.durable?.chunks ?? []) this.chunks.set(chunkName(r.chunk), r);
    for (const c of init.durable?.clients ?? []) this.clients.set(writeName(c.clientId, c.requestId), c);
  }

  step(input: CraqInput<C, U>): CraqOutput<C> {
    const out: CraqOutput<C> = { persist: [], messages: [], replies: [], events: [] };
    switch (input.kind) {
      case 'write': this.onWrite(out, input.request); break;
      case 'read': this.onRead(out, input.request); break;
      case 'peer': this.onPeer(out, input.message); break;
      case 'config': this.onConfig(out, input.config); break;
      case 'tick': this.onTick(out); break;
    }
    return out;
  }

  /** For tests and the shell's status page: the chain version this replica routes with. */
  get chainVersion(): ChainVersion | null {
    return this.config?.version ?? null;
  }

  get state(): MemberState {
    return this.role.state;
  }

  /** The committed version of a chunk (read-only: the shell prepares head writes against it). */
  committedOf(chunk: ChunkKey): CommittedChunk<C> | null {
    return this.chunks.get(chunkName(chunk))?.committed ?? null;
  }

  /** Whether a version of the chunk is on its way down the chain. */
  hasPending(chunk: ChunkKey): boolean {
    return (this.chunks.get(chunkName(chunk))?.pending ?? null) !== null;
  }

  /** Chunks of an inode with index >= fromIndex that this replica holds (read-only). */
  chunksOf(inodeId: number, fromIndex: number): ChunkKey[] {
    const out: ChunkKey[] = [];
    for (const r of this.chunks.values()) if (r.chunk.inodeId === inodeId && r.chunk.index >= fromIndex) out.push(r.chunk);
    return out;
  }

  /** A copy of the durable state as this replica sees it (equals what it asked to persist). */
  durableState(): DurableState<C> {
    return { chunks: [...this.chunks.values()], clients: [...this.clients.values()] };
  }

  // ---- configuration ----

  private onConfig(out: CraqOutput<C>, config: ChainConfig): void {
    if (this.config !== null && (config.chainId !== this.config.chainId || config.version <= this.config.version)) return;
    this.config = config;
    this.sentAt.clear();
    this.role = roleOf(config, this.self);
    this.syncPhase = 'idle';
    if (this.role.state === 'offline') return;
    if (this.role.state === 'syncing') {
      // A returning replica's pending versions may be from writes the chain has since dropped;
      // whatever is still live its predecessor forwards again.
      this.rollBackPending(out);
      this.syncPhase = 'requested';
      this.sendSyncRequest(out);
      return;
    }
    this.resolvePending(out);
  }

  private onTick(out: CraqOutput<C>): void {
    if (this.role.state === 'offline') return;
    this.ticks++;
    this.resolvePending(out);
    if (this.syncPhase === 'requested') this.sendSyncRequest(out);
    if (this.syncPhase === 'done') this.reportSyncDone(out);
  }

  /**
   * Push every pending version one hop on: commit it when this is the tail, else forward it
   * again — only when it was last sent before the previous tick, so a write that is merely slow
   * (a large one behind others) is not sent again and again while its first copy is on its way.
   */
  private resolvePending(out: CraqOutput<C>): void {
    for (const [name, record] of this.chunks) {
      if (record.pending === null) continue;
      if (this.role.successor === null) this.commitPending(out, record);
      else if ((this.sentAt.get(name) ?? Number.NEGATIVE_INFINITY) < this.ticks - 1) this.forward(out, record);
    }
  }

  private rollBackPending(out: CraqOutput<C>): void {
    for (const record of [...this.chunks.values()]) {
      if (record.pending !== null) this.put(out, { ...record, pending: null });
    }
    this.waiters.clear();
  }

  // ---- client requests ----

  private onWrite(out: CraqOutput<C>, req: WriteRequest<U>): void {
    const refused = this.refuse(req.chainVersion, 'write');
    if (refused !== null) return this.reply(out, 'write', req, refused);
    const seen = this.clients.get(writeName(req.clientId, req.requestId));
    if (seen !== undefined) {
      if (chunkName(seen.chunk) !== chunkName(req.chunk)) {
        return this.reply(out, 'write', req, failure('FLYFS_ERR_INVALID_ARGUMENT', `request ${req.requestId} of client ${req.clientId} was a write of chunk ${chunkName(seen.chunk)}`));
      }
      return this.reply(out, 'write', req, { ok: true, version: seen.version });
    }
    const name = chunkName(req.chunk);
    const record = this.chunks.get(name) ?? { chunk: req.chunk, committed: null, pending: null };
    if (record.pending !== null) {
      if (!sameWrite(record.pending.writeId, req)) {
        return this.reply(out, 'write', req, failure('FLYFS_ERR_UNAVAILABLE', 'another write of the chunk is in flight'));
      }
      return this.wait(out, name, req);
    }
    const base = record.committed;
    const content = this.model.apply(base, req.update);
    if (isRefusal(content)) return this.reply(out, 'write', req, failure(content.refused, content.detail));
    const pending = {
      version: chunkVersion((base?.version ?? 0) + 1),
      content,
      writeId: { clientId: req.clientId, requestId: req.requestId },
    };
    const next = { ...record, pending };
    this.wait(out, name, req);
    if (this.role.successor === null) {
      this.commitPending(out, next);
    } else {
      this.put(out, next);
      this.forward(out, next);
    }
  }

  private onRead(out: CraqOutput<C>, req: ReadRequest): void {
    const refused = this.refuse(req.chainVersion, 'read');
    if (refused !== null) return this.reply(out, 'read', req, refused);
    // Committed only: a pending version is never served. Every write acknowledged to a client
    // is committed on every member already (the ack walks back to the head before the reply).
    const committed = this.chunks.get(chunkName(req.chunk))?.committed ?? null;
    this.reply(out, 'read', req, { ok: true, version: committed?.version ?? chunkVersion(0), content: committed?.content ?? this.model.empty });
  }

  private refuse(routed: ChainVersion, kind: 'write' | 'read'): ReplyResult<C> | null {
    if (this.config === null) return failure('FLYFS_ERR_NOT_SERVING', 'no chain configuration yet');
    if (routed !== this.config.version) return failure('FLYFS_ERR_STALE_CHAIN_VERSION', `routed ${routed}, chain is at ${this.config.version}`);
    if (this.role.state !== 'serving') return failure('FLYFS_ERR_NOT_SERVING', `target is ${this.role.state}`);
    if (kind === 'write' && !this.role.isHead) return failure('FLYFS_ERR_NOT_SERVING', 'writes go to the head');
    return null;
  }

  private wait(out: CraqOutput<C>, name: string, req: WriteRequest<U>): void {
    const list = this.waiters.get(name) ?? [];
    if (list.length >= this.options.waitersPerChunkMax) {
      return this.reply(out, 'write', req, failure('FLYFS_ERR_UNAVAILABLE', 'too many retries waiting'));
    }
    list.push({ clientId: req.clientId, requestId: req.requestId });
    this.waiters.set(name, list);
  }

  // ---- peer messages ----

  private onPeer(out: CraqOutput<C>, msg: PeerMessage<C>): void {
    // Anything routed under another chain version is dropped; its sender retransmits.
    if (this.config === null || msg.chainId !== this.config.chainId || msg.chainVersion !== this.config.version) return;
    if (msg.to !== this.self || this.role.state === 'offline') return;
    const body = msg.body;
    const fromPredecessor = msg.from === this.role.predecessor;
    const fromSuccessor = msg.from === this.role.successor;
    switch (body.kind) {
      case 'update': if (fromPredecessor) this.onUpdate(out, body); break;
      case 'ack': if (fromSuccessor) this.onAck(out, body); break;
      case 'syncRequest': if (fromSuccessor) this.onSyncRequest(out, body, msg.from); break;
      case 'syncData': if (fromPredecessor) this.onSyncData(out, body); break;
    }
  }

  private onUpdate(out: CraqOutput<C>, body: Extract<PeerBody<C>, { kind: 'update' }>): void {
    const name = chunkName(body.chunk);
    const record = this.chunks.get(name) ?? { chunk: body.chunk, committed: null, pending: null };
    if ((record.committed?.version ?? 0) >= body.version) return this.sendAck(out, body.chunk, body.version);
    if (record.pending !== null && record.pending.version > body.version) return;
    // A copy of the pending version this replica holds already (the predecessor sent it again):
    // nothing to persist; pass it on again, the successor may not have it.
    if (record.pending !== null && record.pending.version === body.version && sameWrite(record.pending.writeId, body.writeId)) {
      if (this.role.successor === null) this.commitPending(out, record);
      else if ((this.sentAt.get(name) ?? Number.NEGATIVE_INFINITY) < this.ticks - 1) this.forward(out, record);
      return;
    }
    const next = { ...record, pending: { version: body.version, content: body.content, writeId: body.writeId } };
    if (this.role.successor === null) {
      this.commitPending(out, next);
    } else {
      this.put(out, next);
      this.forward(out, next);
    }
  }

  private onAck(out: CraqOutput<C>, body: Extract<PeerBody<C>, { kind: 'ack' }>): void {
    const record = this.chunks.get(chunkName(body.chunk));
    if (record?.pending?.version !== body.version) return;
    this.commitPending(out, record);
  }

  private onSyncRequest(out: CraqOutput<C>, body: Extract<PeerBody<C>, { kind: 'syncRequest' }>, to: TargetId): void {
    const config = this.config;
    assert(config !== null, 'a sync request is answered under a configuration');
    const successorState = config.members.find((m) => m.target === to)?.state;
    if (successorState !== 'syncing') return;
    const theirs = new Map<string, ChunkVersion>();
    for (const [chunk, version] of body.versions) theirs.set(chunkName(chunk), version);
    const chunks: SyncChunk<C>[] = [];
    const pendings: PendingSync<C>[] = [];
    const removes: ChunkKey[] = [];
    let bytes = 0;
    const room = (content?: C): boolean => {
      const n = chunks.length + pendings.length + removes.length;
      if (n >= this.options.syncBatchChunksMax) return false;
      const size = content === undefined ? 0 : this.model.bytesOf(content);
      if (n > 0 && bytes + size > this.options.syncBatchBytesMax) return false;
      bytes += size;
      return true;
    };
    let left = 0;
    for (const [name, record] of this.chunks) {
      const c = record.committed;
      if (c !== null && (theirs.get(name) ?? 0) < c.version) {
        if (room(c.content)) chunks.push({ chunk: record.chunk, version: c.version, content: c.content, writeId: c.writeId });
        else left++;
      }
      const p = record.pending;
      if (p !== null) {
        if (room(p.content)) pendings.push({ chunk: record.chunk, version: p.version, content: p.content, writeId: p.writeId });
        else left++;
      }
    }
    for (const [chunk] of body.versions) {
      if (this.chunks.has(chunkName(chunk))) continue;
      if (room()) removes.push(chunk);
      else left++;
    }
    const done = left === 0;
    this.send(out, to, { kind: 'syncData', chunks, pendings, removes, clients: done ? [...this.clients.values()] : [], done });
  }

  private onSyncData(out: CraqOutput<C>, body: Extract<PeerBody<C>, { kind: 'syncData' }>): void {
    if (this.role.state !== 'syncing' || this.syncPhase !== 'requested') return;
    const config = this.config;
    assert(config !== null, 'sync data is applied under a configuration');
    for (const s of body.chunks) {
      const record = this.chunks.get(chunkName(s.chunk)) ?? { chunk: s.chunk, committed: null, pending: null };
      // Versions only go up: live writes may have brought this replica further already.
      if ((record.committed?.version ?? 0) >= s.version) continue;
      const pending = record.pending !== null && record.pending.version > s.version ? record.pending : null;
      this.put(out, { chunk: s.chunk, committed: { version: s.version, content: s.content, writeId: s.writeId, chainVersion: config.version }, pending });
    }
    for (const chunk of body.removes) {
      const record = this.chunks.get(chunkName(chunk));
      // What a live write of this chain version stored is newer than the predecessor's view.
      if (record === undefined || record.pending !== null || (record.committed !== null && record.committed.chainVersion >= config.version)) continue;
      this.chunks.delete(chunkName(chunk));
      out.persist.push({ kind: 'deleteChunk', chunk });
    }
    for (const p of body.pendings) this.onUpdate(out, { kind: 'update', ...p });
    for (const entry of body.clients) this.noteClient(out, entry);
    if (!body.done) return this.sendSyncRequest(out);
    this.syncPhase = 'done';
    this.reportSyncDone(out);
  }

  // ---- the write path ----

  private forward(out: CraqOutput<C>, record: ChunkRecord<C>): void {
    const successor = this.role.successor;
    const p = record.pending;
    assert(successor !== null && p !== null, 'forward a pending version to a successor');
    this.send(out, successor, { kind: 'update', chunk: record.chunk, version: p.version, content: p.content, writeId: p.writeId });
    this.sentAt.set(chunkName(record.chunk), this.ticks);
  }

  private commitPending(out: CraqOutput<C>, record: ChunkRecord<C>): void {
    const p = record.pending;
    const config = this.config;
    assert(p !== null && config !== null, 'commit a pending version under a configuration');
    assert((record.committed?.version ?? 0) < p.version, 'committed versions only go up');
    this.put(out, { chunk: record.chunk, committed: { version: p.version, content: p.content, writeId: p.writeId, chainVersion: config.version }, pending: null });
    this.noteClient(out, { clientId: p.writeId.clientId, requestId: p.writeId.requestId, chunk: record.chunk, version: p.version });
    this.sendAck(out, record.chunk, p.version);
    const name = chunkName(record.chunk);
    this.sentAt.delete(name);
    for (const w of this.waiters.get(name) ?? []) {
      out.replies.push({ kind: 'write', clientId: w.clientId, requestId: w.requestId, from: this.self, result: { ok: true, version: p.version } });
    }
    this.waiters.delete(name);
  }

  private sendAck(out: CraqOutput<C>, chunk: ChunkKey, version: ChunkVersion): void {
    if (this.role.predecessor !== null) this.send(out, this.role.predecessor, { kind: 'ack', chunk, version });
  }

  private noteClient(out: CraqOutput<C>, entry: ClientEntry): void {
    const key = writeName(entry.clientId, entry.requestId);
    if (this.clients.has(key)) return;
    if (this.clients.size >= this.options.clientsMax) {
      // Map order is insertion order: the oldest write goes.
      const oldest = this.clients.values().next();
      if (!oldest.done) {
        this.clients.delete(writeName(oldest.value.clientId, oldest.value.requestId));
        out.persist.push({ kind: 'deleteClient', clientId: oldest.value.clientId, requestId: oldest.value.requestId });
      }
    }
    this.clients.set(key, entry);
    out.persist.push({ kind: 'putClient', entry });
  }

  // ---- sync ----

  private sendSyncRequest(out: CraqOutput<C>): void {
    if (this.role.predecessor === null) return;
    const versions: (readonly [ChunkKey, ChunkVersion])[] = [];
    for (const r of this.chunks.values()) versions.push([r.chunk, r.committed?.version ?? chunkVersion(0)]);
    this.send(out, this.role.predecessor, { kind: 'syncRequest', versions });
  }

  private reportSyncDone(out: CraqOutput<C>): void {
    const config = this.config;
    assert(config !== null, 'sync is done under a configuration');
    out.events.push({ kind: 'syncDone', target: this.self, chainId: config.chainId, chainVersion: config.version });
  }

  // ---- plumbing ----

  private put(out: CraqOutput<C>, record: ChunkRecord<C>): void {
    const name = chunkName(record.chunk);
    if (record.committed === null && record.pending === null) {
      if (!this.chunks.delete(name)) return;
      out.persist.push({ kind: 'deleteChunk', chunk: record.chunk });
      return;
    }
    this.chunks.set(name, record);
    out.persist.push({ kind: 'putChunk', record });
  }

  private send(out: CraqOutput<C>, to: TargetId, body: PeerBody<C>): void {
    const config = this.config;
    assert(config !== null, 'messages go out under a configuration');
    out.messages.push({ from: this.self, to, chainId: config.chainId, chainVersion: config.version, body });
  }

  private reply(out: CraqOutput<C>, kind: 'write' | 'read', req: { clientId: ClientId; requestId: number }, result: ReplyResult<C>): void {
    out.replies.push({ kind, clientId: req.clientId, requestId: req.requestId, from: this.self, result });
  }
}

function roleOf(config: ChainConfig, self: TargetId): Role {
  const active = config.members.filter((m) => m.state !== 'offline');
  const index = active.findIndex((m) => m.target === self);
  const me = active[index];
  if (me === undefined) return noRole;
  return {
    state: me.state,
    predecessor: active[index - 1]?.target ?? null,
    successor: active[index + 1]?.target ?? null,
    isHead: index === 0,
  };
}

function sameWrite(a: WriteId, b: { clientId: ClientId; requestId: number }): boolean {
  return a.clientId === b.clientId && a.requestId === b.requestId;
}

function failure<C>(code: ErrorCode, detail: string): ReplyResult<C> {
  return { ok: false, code, detail };
}
