// The I/O shell around ChainCore in a metaserver. Each batch of the core's output is handled in
// the order the protocol needs: persist the durable writes and apply the committed entries in
// one synced LMDB transaction (group commit: every mutation of an event turn shares it), then
// send the messages, then answer the callers whose entries committed. On the head a mutation
// runs against committed state plus the uncommitted log (overlay.ts) and proposes its write set.
import { performance } from 'node:perf_hooks';
import { flyfsError } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import { applyWrites, metaDb, type MetaDb, type MetaEnv } from '../db.js';
import { tableNames, type MetaTables, type TableName } from '../tables.js';
import { ChainCore, type CoreStatus } from './chain-core.js';
import { appliedPosition, loadDurable, persistApplied, persistWrite, type MetaPayload } from './log-store.js';
import { Overlay, WriteSetTables, type Write } from './overlay.js';
import type { CoreOptions, Entry, Epoch, LogIndex, Message, ReplicaId, Role } from './types.js';

export type ReplicaTiming = Pick<CoreOptions, 'heartbeatMs' | 'suspectMs' | 'leaseMs' | 'candidateStaggerMs' | 'proposalTimeoutMs' | 'retransmitMs'>;

export interface SnapshotData {
  readonly index: LogIndex;
  readonly epoch: Epoch;
  readonly rows: ReadonlyArray<readonly [TableName, unknown, unknown]>;
}

export interface ReplicaTransport {
  /** Best effort: the protocol survives loss, delay, duplication and reordering. */
  send(to: ReplicaId, messages: Message<MetaPayload>[]): void;
  fetchSnapshot(from: ReplicaId): Promise<SnapshotData>;
  /** The gRPC address of a replica, for redirect hints. */
  addressOf(id: ReplicaId): string | undefined;
}

export interface ReplicaOptions {
  readonly env: MetaEnv;
  readonly self: ReplicaId;
  readonly members: readonly ReplicaId[];
  readonly timing: ReplicaTiming;
  readonly transport: ReplicaTransport;
  readonly logger: Logger;
  /** Monotonic milliseconds (leases must not jump with the wall clock). */
  readonly now?: () => number;
}

/** Bounds of the shell. */
export const replicaLimits = {
  appendEntriesMax: 512,
  inflightEntriesMax: 8192,
  catchupLagMax: 64,
  logRetainMax: 20_000,
  /** Client mutations waiting for their entry to commit. */
  waitersMax: 65_536,
} as const;

interface Waiter { resolve: (v: unknown) => void; reject: (e: unknown) => void; value: unknown; epoch: Epoch }

export class MetaReplica {
  readonly db: MetaDb;
  private readonly core: ChainCore<MetaPayload>;
  private readonly env: MetaEnv;
  private readonly o: ReplicaOptions;
  private readonly now: () => number;
  private readonly overlay = new Overlay();
  private overlayEpoch = -1;
  private applied: LogIndex;
  private storedLast: LogIndex;
  private readonly waiters = new Map<LogIndex, Waiter>();
  private reads: Array<{ barrier: LogIndex; resolve: () => void }> = [];
  private flushScheduled = false;
  private ticker: NodeJS.Timeout | undefined;
  private servingEpoch = -1;
  private stopped = false;
  private fetching = false;
  private readonly headListeners: Array<(epoch: Epoch) => void> = [];
  private readonly roleListeners: Array<(role: Role, epoch: Epoch) => void> = [];

  constructor(o: ReplicaOptions) {
    this.o = o;
    this.env = o.env;
    this.now = o.now ?? (() => performance.now());
    const durable = loadDurable(o.env);
    this.applied = durable.commitIndex;
    this.storedLast = durable.logStart + durable.entries.length;
    this.core = new ChainCore<MetaPayload>({
      self: o.self, members: o.members, ...o.timing,
      appendEntriesMax: replicaLimits.appendEntriesMax, inflightEntriesMax: replicaLimits.inflightEntriesMax,
      catchupLagMax: replicaLimits.catchupLagMax, logRetainMax: replicaLimits.logRetainMax,
    }, durable, this.now());
    this.db = metaDb(o.env, (fn) => this.mutate(fn));
  }

  start(): void {
    const tickMs = Math.max(5, Math.min(50, Math.floor(this.o.timing.heartbeatMs / 2)));
    this.ticker = setInterval(() => this.tick(), tickMs);
    this.tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.ticker !== undefined) clearInterval(this.ticker);
    this.failWaiters('metaserver stopping');
  }

  /** Called once each time this replica becomes a head that accepts writes (a new epoch). */
  onServingHead(fn: (epoch: Epoch) => void): void { this.headListeners.push(fn); }
  onRole(fn: (role: Role, epoch: Epoch) => void): void { this.roleListeners.push(fn); }

  status(): CoreStatus & { applied: LogIndex; overlayKeys: number } {
    return { ...this.core.status(), applied: this.applied, overlayKeys: this.overlay.size() };
  }

  /** True when this replica may take writes now. */
  isServingHead(): boolean { return this.core.canPropose(this.now()).ok; }

  headAddress(): string | undefined {
    const head = this.core.chainConfig().chain[0];
    return head === undefined ? undefined : this.o.transport.addressOf(head);
  }

  private readAddress(): string | undefined {
    const chain = this.core.chainConfig().chain;
    const tail = chain[chain.length - 1];
    return tail === undefined ? undefined : this.o.transport.addressOf(tail);
  }

  // ---- mutations and reads ----

  /** Runs `fn` on the head against the latest state; resolves with its result once its entry commits. */
  mutate<T>(fn: (t: MetaTables) => T): Promise<T> {
    if (this.stopped) return Promise.reject(flyfsError('FLYFS_ERR_UNAVAILABLE', 'metaserver stopping'));
    const can = this.core.canPropose(this.now());
    if (!can.ok) {
      return Promise.reject(flyfsError('FLYFS_ERR_NOT_HEAD', can.reason === 'not-head' ? undefined : `head is ${can.reason}`, { hint: this.headAddress() }));
    }
    if (this.waiters.size >= replicaLimits.waitersMax) return Promise.reject(flyfsError('FLYFS_ERR_UNAVAILABLE', 'too many mutations in flight'));
    if (this.overlayEpoch !== this.core.chainConfig().epoch) this.rebuildOverlay();
    const ws = new WriteSetTables(this.env.tables, this.overlay);
    let value: T;
    try { value = fn(ws.tables); } catch (err) { return Promise.reject(err); }
    const res = this.core.propose({ writes: ws.writes }, this.now());
    if (!res.ok) return Promise.reject(flyfsError('FLYFS_ERR_NOT_HEAD', res.reason, { hint: this.headAddress() }));
    this.overlay.add(res.index, ws.writes);
    this.scheduleFlush();
    return new Promise<T>((resolve, reject) => {
      this.waiters.set(res.index, { resolve: resolve as (v: unknown) => void, reject, value, epoch: this.core.chainConfig().epoch });
    });
  }

  /**
   * Settles when committed state may be read here linearizably: undefined at once, or a promise
   * when what the core knows committed is not applied yet. Throws NOT_READABLE otherwise.
   */
  readBarrier(): Promise<void> | undefined {
    if (!this.core.canServeRead(this.now())) throw flyfsError('FLYFS_ERR_NOT_READABLE', undefined, { hint: this.readAddress() });
    const barrier = this.core.status().commitIndex;
    if (this.applied >= barrier) return undefined;
    return new Promise((resolve) => { this.reads.push({ barrier, resolve }); this.scheduleFlush(); });
  }

  // ---- from peers ----

  receive(messages: readonly Message<MetaPayload>[]): void {
    if (this.stopped) return;
    const now = this.now();
    for (const m of messages) this.core.receive(m, now);
    this.scheduleFlush();
  }

  /** The applied state, read in one synchronous pass (no write can interleave). */
  snapshot(): SnapshotData {
    const rows: Array<readonly [TableName, unknown, unknown]> = [];
    for (const t of tableNames) for (const { key, value } of this.env.tables[t].getRange({})) rows.push([t, key, value]);
    const pos = appliedPosition(this.env);
    return { index: pos.index, epoch: pos.epoch, rows };
  }

  // ---- the loop ----

  private tick(): void {
    if (this.stopped) return;
    const now = this.now();
    this.core.tick(now);
    const epoch = this.core.chainConfig().epoch;
    if (this.servingEpoch !== epoch && this.core.canPropose(now).ok) {
      this.servingEpoch = epoch;
      for (const fn of this.headListeners) fn(epoch);
    }
    this.flush();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => { this.flushScheduled = false; this.flush(); });
  }

  private flush(): void {
    const ready = this.core.drain();
    if (ready.writes.length > 0 || ready.commits.length > 0) {
      // Persist, and apply what committed, in one durable transaction.
      this.env.env.transactionSync(() => {
        for (const w of ready.writes) this.storedLast = persistWrite(this.env, w, this.storedLast);
        for (const e of ready.commits) this.applyEntry(e);
        // The epoch of the last applied entry, once per transaction (a snapshot names it).
        const last = ready.commits[ready.commits.length - 1];
        if (last !== undefined) persistApplied(this.env, last);
      });
      for (const w of ready.writes) if (w.kind === 'install') this.applied = w.index;
      for (const e of ready.commits) {
        this.applied = e.index;
        if (e.payload !== null) this.overlay.applied(e.index, e.payload.writes);
      }
    }
    if (this.stopped) return;
    const byPeer = new Map<ReplicaId, Message<MetaPayload>[]>();
    for (const m of ready.messages) {
      const list = byPeer.get(m.to) ?? [];
      list.push(m);
      byPeer.set(m.to, list);
    }
    for (const [to, list] of byPeer) this.o.transport.send(to, list);
    for (const e of ready.commits) {
      const w = this.waiters.get(e.index);
      if (w === undefined) continue;
      this.waiters.delete(e.index);
      // Another head's entry committed at this index (ours was replaced): ours did not happen.
      if (w.epoch === e.epoch) w.resolve(w.value);
      else w.reject(flyfsError('FLYFS_ERR_NOT_HEAD', 'the mutation was superseded by a new chain head', { hint: this.headAddress() }));
    }
    if (this.reads.length > 0) {
      const waiting = this.reads;
      this.reads = [];
      for (const r of waiting) {
        if (r.barrier <= this.applied) r.resolve(); else this.reads.push(r);
      }
    }
    for (const ef of ready.effects) {
      if (ef.kind === 'role') {
        this.o.logger.info({ role: ef.role, epoch: ef.epoch, chain: this.core.chainConfig().chain }, 'replica role');
        if (ef.role !== 'head' && ef.role !== 'candidate') this.failWaiters('this metaserver is no longer the chain head');
        for (const fn of this.roleListeners) fn(ef.role, ef.epoch);
      } else if (ef.kind === 'fetchSnapshot') {
        void this.fetchSnapshot(ef.from);
      }
    }
  }

  private applyEntry(e: Entry<MetaPayload>): void {
    if (e.index !== this.applied + 1 && e.index !== this.applied) {
      // Applies run in order with no gaps; anything else is a shell bug.
      throw new Error(`assertion failed: applying ${e.index} after ${this.applied}`);
    }
    if (e.payload !== null) applyWrites(this.env.tables, e.payload.writes as Write[]);
    this.applied = e.index;
  }

  private rebuildOverlay(): void {
    this.overlay.clear();
    const st = this.core.status();
    for (let i = this.applied + 1; i <= st.lastIndex; i++) {
      const e = this.core.entryAt(i);
      if (e?.payload) this.overlay.add(i, e.payload.writes);
    }
    this.overlayEpoch = st.epoch;
  }

  private failWaiters(reason: string): void {
    if (this.waiters.size === 0) return;
    const err = flyfsError('FLYFS_ERR_NOT_HEAD', reason, { hint: this.headAddress() });
    for (const w of this.waiters.values()) w.reject(err);
    this.waiters.clear();
    this.overlayEpoch = -1;
  }

  private async fetchSnapshot(from: ReplicaId): Promise<void> {
    if (this.fetching) return;
    this.fetching = true;
    try {
      const snap = await this.o.transport.fetchSnapshot(from);
      if (this.stopped || snap.index <= this.core.status().commitIndex) return;
      this.env.env.transactionSync(() => {
        for (const t of tableNames) this.env.tables[t].clearSync();
        for (const [t, key, value] of snap.rows) this.env.tables[t].putSync(key as never, value);
        this.storedLast = persistWrite(this.env, { kind: 'install', index: snap.index, epoch: snap.epoch }, this.storedLast);
      });
      this.applied = snap.index;
      this.overlay.clear();
      this.overlayEpoch = -1;
      this.o.logger.info({ from, index: snap.index, rows: snap.rows.length }, 'installed a snapshot');
      this.core.snapshotInstalled(snap.index, snap.epoch, this.now());
      this.scheduleFlush();
    } catch (err) {
      this.o.logger.warn({ from, err: (err as Error).message }, 'snapshot fetch failed');
    } finally {
      this.fetching = false;
    }
  }
}
