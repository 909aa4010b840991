// A deterministic simulation of the metaserver chain: ChainCore replicas inside a miniature of
// the real I/O shell (group commit with a sync delay, apply on commit, the head executing
// requests against committed state plus its uncommitted log), a network that drops, delays,
// duplicates and reorders, crashes with and without loss of unsynced writes, replica partitions,
// and clients appending to and reading lists. Everything random comes from one seed.
import { ChainCore, initialDurableState } from '../../../metaserver/replication/chain-core.js';
import type { CoreOptions, DurableState, DurableWrite, Entry, Epoch, LogIndex, Message, Ready, ReplicaId } from '../../../metaserver/replication/types.js';
import { EventQueue } from './event-queue.js';
import { checkListHistory, type ListOp } from './list-append-checker.js';
import { Prng } from './prng.js';

/** What the log carries: the head's computed new lists and the request it answers. */
interface Payload {
  readonly writes: ReadonlyArray<readonly [string, readonly number[]]>;
  readonly dedup: { readonly clientId: number; readonly requestId: number } | undefined;
}

interface AppliedState { lists: Map<string, readonly number[]>; dedup: Map<number, number>; index: LogIndex; epoch: Epoch }

interface Durable { core: DurableState<Payload>; state: AppliedState }

type Request =
  | { kind: 'append'; clientId: number; requestId: number; key: string; value: number }
  | { kind: 'read'; clientId: number; requestId: number; key: string };
type Reply = { clientId: number; requestId: number; ok: boolean; list?: readonly number[]; hint?: ReplicaId };

interface Batch { ready: Ready<Payload>; snapshot: AppliedState | undefined; syncAtMs: number }

export interface SimConfig {
  readonly seed: number;
  readonly replicas: number;
  readonly clients: number;
  readonly keys: number;
  readonly loadMs: number;
  readonly settleMs: number;
}

export interface SimResult {
  readonly seed: number;
  readonly failure: string | undefined;
  readonly stats: { ops: number; acked: number; reads: number; epochs: number; crashes: number; partitions: number; snapshots: number; events: number };
}

type Timing = Pick<CoreOptions, 'heartbeatMs' | 'suspectMs' | 'leaseMs' | 'candidateStaggerMs' | 'proposalTimeoutMs' | 'retransmitMs'>;

/** Timings vary by seed: leases both shorter and longer than the time to suspect a failure. */
function drawTiming(rng: Prng): Timing {
  const heartbeatMs = rng.int(10, 30);
  const suspectMs = heartbeatMs * rng.int(3, 6);
  return {
    heartbeatMs, suspectMs, leaseMs: rng.int(heartbeatMs * 2, suspectMs * 3), candidateStaggerMs: rng.int(20, 50),
    proposalTimeoutMs: rng.int(200, 400), retransmitMs: rng.int(20, 40),
  };
}

const coreOptions = (self: ReplicaId, members: readonly ReplicaId[], timing: Timing): CoreOptions => ({
  self, members, ...timing, appendEntriesMax: 4, inflightEntriesMax: 8, catchupLagMax: 4, logRetainMax: 10,
});

const tickMs = 5;

class SimError extends Error {}

function fail(message: string): never { throw new SimError(message); }

function cloneState(s: AppliedState): AppliedState {
  return { lists: new Map(s.lists), dedup: new Map(s.dedup), index: s.index, epoch: s.epoch };
}

function cloneDurable(d: DurableState<Payload>): DurableState<Payload> {
  return { ...d, entries: [...d.entries] };
}

/** Applies one durable write to the persisted core state, as the LMDB shell does. */
function persist(d: DurableState<Payload>, w: DurableWrite<Payload>): DurableState<Payload> {
  switch (w.kind) {
    case 'promise': return { ...d, promised: Math.max(d.promised, w.epoch) };
    case 'config': return { ...d, config: w.config };
    case 'append': {
      if (w.truncateAfter < d.commitIndex) fail(`append truncates committed entries (after ${w.truncateAfter}, commit ${d.commitIndex})`);
      const keep = d.entries.filter((e) => e.index <= w.truncateAfter);
      const last = keep.length > 0 ? keep[keep.length - 1]!.index : d.logStart;
      if (last !== w.truncateAfter) fail(`append after ${w.truncateAfter} leaves a gap (log ends at ${last})`);
      return { ...d, entries: [...keep, ...w.entries] };
    }
    case 'commit': return { ...d, commitIndex: Math.max(d.commitIndex, w.index) };
    case 'compact': return { ...d, entries: d.entries.filter((e) => e.index > w.through), logStart: w.through, logStartEpoch: w.epoch };
    case 'install': return { ...d, entries: [], logStart: w.index, logStartEpoch: w.epoch, commitIndex: w.index };
  }
}

class Replica {
  core!: ChainCore<Payload>;
  durable: Durable;
  applied!: AppliedState;
  alive = true;
  incarnation = 0;
  private pending: Batch[] = [];
  private waiters = new Map<LogIndex, { r: Request; epoch: Epoch }>();
  private nextSnapshot: AppliedState | undefined;
  private reads: Array<{ r: Request; barrier: LogIndex }> = [];

  private serveReads(): void {
    const keep: Array<{ r: Request; barrier: LogIndex }> = [];
    for (const q of this.reads) {
      if (q.barrier > this.applied.index) { keep.push(q); continue; }
      this.reply({ clientId: q.r.clientId, requestId: q.r.requestId, ok: true, list: this.applied.lists.get(q.r.key) ?? [] });
    }
    this.reads = keep;
  }

  constructor(readonly id: ReplicaId, private readonly sim: MetaChainSim) {
    this.durable = { core: initialDurableState<Payload>(), state: { lists: new Map(), dedup: new Map(), index: 0, epoch: 0 } };
    this.boot();
  }

  boot(): void {
    this.core = new ChainCore<Payload>(coreOptions(this.id, this.sim.members, this.sim.timing), cloneDurable(this.durable.core), this.sim.q.nowMs);
    this.applied = cloneState(this.durable.state);
    this.pending = [];
    this.waiters.clear();
    this.reads = [];
    this.alive = true;
    this.incarnation++;
    this.flush();
  }

  crash(loseUnsynced: boolean): void {
    if (!loseUnsynced) while (this.pending.length > 0) this.syncOne();
    this.pending = [];
    this.alive = false;
    this.incarnation++;
  }

  tick(): void { this.core.tick(this.sim.q.nowMs); this.flush(); }

  receive(m: Message<Payload>): void { this.core.receive(m, this.sim.q.nowMs); this.flush(); }

  /** The latest value of a list on the head: committed state, then pending commits, then the uncommitted log. */
  private overlay(key: string): { list: readonly number[]; dedup: (c: number) => number } {
    let list = this.applied.lists.get(key) ?? [];
    const dedups = new Map(this.applied.dedup);
    const take = (e: Entry<Payload>): void => {
      if (e.payload === null) return;
      for (const [k, v] of e.payload.writes) if (k === key) list = v;
      if (e.payload.dedup !== undefined) dedups.set(e.payload.dedup.clientId, e.payload.dedup.requestId);
    };
    for (const b of this.pending) for (const e of b.ready.commits) take(e);
    const st = this.core.status();
    for (let i = st.commitIndex + 1; i <= st.lastIndex; i++) take(this.core.entryAt(i)!);
    return { list, dedup: (c) => dedups.get(c) ?? 0 };
  }

  request(r: Request): void {
    const now = this.sim.q.nowMs;
    if (r.kind === 'read') {
      if (!this.core.canServeRead(now)) { this.reply({ clientId: r.clientId, requestId: r.requestId, ok: false, hint: this.core.chainConfig().chain.at(-1) }); return; }
      // Served once the state applied holds everything the core knew committed when it said yes.
      this.reads.push({ r, barrier: this.core.status().commitIndex });
      this.serveReads();
      return;
    }
    const can = this.core.canPropose(now);
    if (!can.ok) { this.reply({ clientId: r.clientId, requestId: r.requestId, ok: false, hint: this.core.chainConfig().chain[0] }); return; }
    const view = this.overlay(r.key);
    const payload: Payload = view.dedup(r.clientId) >= r.requestId
      ? { writes: [], dedup: undefined } // a retry: answered once everything before it commits
      : { writes: [[r.key, [...view.list, r.value]]], dedup: { clientId: r.clientId, requestId: r.requestId } };
    const res = this.core.propose(payload, now);
    if (!res.ok) fail('propose refused after canPropose');
    this.sim.noteAppend(this.id, this.core.chainConfig().epoch);
    this.waiters.set(res.index, { r, epoch: this.core.chainConfig().epoch });
    this.flush();
  }

  snapshotArrived(s: AppliedState, incarnation: number): void {
    if (!this.alive || incarnation !== this.incarnation) return;
    this.nextSnapshot = s;
    this.core.snapshotInstalled(s.index, s.epoch, this.sim.q.nowMs);
    this.flush();
  }

  /** Group commit: what one step produced becomes durable after the sync delay, in order. */
  flush(): void {
    const ready = this.core.drain();
    const snapshot = ready.writes.some((w) => w.kind === 'install') ? this.nextSnapshot : undefined;
    this.nextSnapshot = undefined;
    if (ready.writes.length === 0 && ready.commits.length === 0 && ready.messages.length === 0 && ready.effects.length === 0) return;
    const prev = this.pending.length > 0 ? this.pending[this.pending.length - 1]!.syncAtMs : 0;
    const syncAtMs = Math.max(prev, this.sim.q.nowMs + (ready.writes.length > 0 ? this.sim.syncDelayMs() : 0));
    this.pending.push({ ready, snapshot, syncAtMs });
    const inc = this.incarnation;
    this.sim.q.at(syncAtMs, () => { if (this.alive && this.incarnation === inc && this.pending.length > 0 && this.pending[0]!.syncAtMs <= this.sim.q.nowMs) this.syncOne(); });
  }

  private syncOne(): void {
    const b = this.pending.shift()!;
    let d = this.durable.core;
    for (const w of b.ready.writes) d = persist(d, w);
    let state = this.durable.state;
    if (b.snapshot !== undefined) state = cloneState(b.snapshot);
    else if (b.ready.commits.length > 0) state = cloneState(state);
    for (const e of b.ready.commits) {
      if (e.index !== state.index + 1) fail(`replica ${this.id} applies ${e.index} after ${state.index}`);
      this.sim.noteCommit(this.id, e);
      if (e.payload !== null) {
        for (const [k, v] of e.payload.writes) state.lists.set(k, v);
        if (e.payload.dedup !== undefined) state.dedup.set(e.payload.dedup.clientId, e.payload.dedup.requestId);
      }
      state.index = e.index;
      state.epoch = e.epoch;
    }
    if (state.index !== d.commitIndex) fail(`replica ${this.id}: applied ${state.index} but commit index ${d.commitIndex}`);
    this.durable = { core: d, state };
    this.applied = cloneState(state);
    if (!this.alive) return; // flushing at a crash: durable, but nothing leaves the node
    this.serveReads();
    for (const m of b.ready.messages) this.sim.sendReplica(m);
    for (const e of b.ready.commits) {
      const w = this.waiters.get(e.index);
      if (w === undefined) continue;
      this.waiters.delete(e.index);
      // The entry committed at this index may be another head's (ours was replaced): that is no answer.
      this.reply({ clientId: w.r.clientId, requestId: w.r.requestId, ok: w.epoch === e.epoch });
    }
    for (const ef of b.ready.effects) {
      if (ef.kind === 'role') this.sim.trace(`replica ${this.id} role ${ef.role} epoch ${ef.epoch} ${JSON.stringify(this.core.chainConfig())}`);
      if (ef.kind === 'role' && ef.role !== 'head' && ef.role !== 'candidate') {
        for (const w of this.waiters.values()) this.reply({ clientId: w.r.clientId, requestId: w.r.requestId, ok: false, hint: this.core.chainConfig().chain[0] });
        this.waiters.clear();
      }
      if (ef.kind === 'fetchSnapshot') this.sim.fetchSnapshot(this.id, ef.from);
    }
  }

  private reply(r: Reply): void { this.sim.sendClient(this.id, r); }
}

class Client {
  private requestId = 0;
  private seq = 0;
  private target: ReplicaId;
  private inflight: { req: Request; invokeMs: number; deadlineMs: number; attempt: number } | undefined;
  readonly history = new Map<string, ListOp[]>();
  stopped = false;

  constructor(readonly id: number, private readonly sim: MetaChainSim) {
    this.target = sim.rng.pick(sim.members);
  }

  start(): void { this.sim.q.after(this.sim.rng.int(0, 20), () => this.next()); }

  private next(): void {
    if (this.stopped || this.sim.q.nowMs >= this.sim.cfg.loadMs) return;
    const key = `k${this.sim.rng.int(0, this.sim.cfg.keys - 1)}`;
    this.requestId++;
    const req: Request = this.sim.rng.chance(0.6)
      ? { kind: 'append', clientId: this.id, requestId: this.requestId, key, value: this.id * 1_000_000 + ++this.seq }
      : { kind: 'read', clientId: this.id, requestId: this.requestId, key };
    this.issue(req, 1_000);
  }

  /** Sends `req` until it is answered or `budgetMs` passes; retries keep the request id. */
  issue(req: Request, budgetMs: number): void {
    const now = this.sim.q.nowMs;
    this.inflight = { req, invokeMs: now, deadlineMs: now + budgetMs, attempt: 0 };
    this.attempt();
  }

  private attempt(): void {
    const f = this.inflight;
    if (f === undefined) return;
    if (this.sim.q.nowMs >= f.deadlineMs) { this.finish(undefined); return; }
    const attempt = ++f.attempt;
    this.sim.sendRequest(this.target, f.req);
    this.sim.q.after(60, () => {
      if (this.inflight === f && f.attempt === attempt) { this.target = this.nextTarget(); this.attempt(); }
    });
  }

  private nextTarget(hint?: ReplicaId): ReplicaId {
    if (hint !== undefined && hint !== this.target && this.sim.rng.chance(0.8)) return hint;
    const i = this.sim.members.indexOf(this.target);
    return this.sim.members[(i + 1) % this.sim.members.length]!;
  }

  onReply(from: ReplicaId, r: Reply): void {
    const f = this.inflight;
    if (f === undefined || r.requestId !== f.req.requestId) return;
    if (r.ok) { this.finish(r); return; }
    this.target = this.nextTarget(r.hint);
    const attempt = f.attempt;
    this.sim.q.after(5, () => { if (this.inflight === f && f.attempt === attempt) this.attempt(); });
    void from;
  }

  private finish(r: Reply | undefined): void {
    const f = this.inflight!;
    this.inflight = undefined;
    const now = this.sim.q.nowMs;
    const ops = this.history.get(f.req.key) ?? [];
    this.history.set(f.req.key, ops);
    if (f.req.kind === 'append') ops.push({ kind: 'append', value: f.req.value, invokeMs: f.invokeMs, completeMs: r === undefined ? undefined : now });
    else if (r !== undefined) { ops.push({ kind: 'read', list: r.list ?? [], invokeMs: f.invokeMs, completeMs: now }); this.sim.reads++; }
    if (r !== undefined) this.sim.acked++;
    this.sim.ops++;
    if (this.finalKey !== undefined) { this.finalDone(r); return; }
    this.sim.q.after(this.sim.rng.int(0, 15), () => this.next());
  }

  private finalKey: string | undefined;
  private finalDone: (r: Reply | undefined) => void = () => undefined;

  readFinal(key: string, done: (list: readonly number[] | undefined) => void): void {
    this.finalKey = key;
    this.finalDone = (r) => { this.finalKey = undefined; done(r?.list); };
    this.requestId++;
    this.issue({ kind: 'read', clientId: this.id, requestId: this.requestId, key }, 3_000);
  }
}

export class MetaChainSim {
  readonly q = new EventQueue();
  readonly rng: Prng;
  readonly members: ReplicaId[];
  private readonly replicas = new Map<ReplicaId, Replica>();
  private readonly clients = new Map<number, Client>();
  private readonly committed = new Map<LogIndex, string>();
  private readonly headOfEpoch = new Map<Epoch, ReplicaId>();
  private readonly isolated = new Set<ReplicaId>();
  private readonly net: { drop: number; dup: number; delayMaxMs: number; syncMaxMs: number };
  readonly timing: Timing;
  private healed = false;
  ops = 0; acked = 0; reads = 0;
  private crashes = 0; private partitions = 0; private snapshots = 0;

  constructor(readonly cfg: SimConfig) {
    this.rng = new Prng(cfg.seed);
    this.members = Array.from({ length: cfg.replicas }, (_, i) => i + 1);
    this.net = { drop: this.rng.float() * 0.08, dup: this.rng.float() * 0.04, delayMaxMs: this.rng.int(1, 12), syncMaxMs: this.rng.int(0, 4) };
    this.timing = drawTiming(this.rng);
    for (const id of this.members) this.replicas.set(id, new Replica(id, this));
    for (let c = 1; c <= cfg.clients; c++) this.clients.set(c, new Client(c, this));
  }

  trace(line: string): void {
    if (process.env.FLYFS_SIM_TRACE !== undefined) console.log(`${this.q.nowMs.toFixed(0).padStart(5)} ${line}`);
  }

  syncDelayMs(): number { return this.net.syncMaxMs === 0 ? 0 : this.rng.int(0, this.net.syncMaxMs); }

  private delay(): number { return this.rng.int(1, this.net.delayMaxMs); }

  private deliver(run: () => void): void {
    if (!this.healed && this.rng.chance(this.net.drop)) return;
    this.q.after(this.delay(), run);
    if (!this.healed && this.rng.chance(this.net.dup)) this.q.after(this.delay(), run);
  }

  sendReplica(m: Message<Payload>): void {
    if (this.isolated.has(m.from) || this.isolated.has(m.to)) return;
    this.deliver(() => {
      const r = this.replicas.get(m.to)!;
      if (process.env.FLYFS_SIM_TRACE === 'msgs' && m.kind !== 'ping' && m.kind !== 'pong') this.trace(`msg ${JSON.stringify({ ...m, config: m.config.epoch, entries: m.kind === 'append' ? m.entries.map((e) => `${e.index}@${e.epoch}`) : undefined })}`);
      if (r.alive && !this.isolated.has(m.to)) r.receive(m);
    });
  }

  sendRequest(to: ReplicaId, req: Request): void {
    this.deliver(() => { const r = this.replicas.get(to)!; if (r.alive) r.request(req); });
  }

  sendClient(from: ReplicaId, r: Reply): void {
    this.deliver(() => this.clients.get(r.clientId)?.onReply(from, r));
  }

  fetchSnapshot(to: ReplicaId, from: ReplicaId): void {
    const target = this.replicas.get(to)!;
    const inc = target.incarnation;
    this.deliver(() => {
      const src = this.replicas.get(from)!;
      if (!src.alive || this.isolated.has(from) || this.isolated.has(to)) return;
      const snap = cloneState(src.applied);
      this.snapshots++;
      this.deliver(() => target.snapshotArrived(snap, inc));
    });
  }

  noteAppend(id: ReplicaId, epoch: Epoch): void {
    const prior = this.headOfEpoch.get(epoch);
    if (prior !== undefined && prior !== id) fail(`two heads in epoch ${epoch}: ${prior} and ${id}`);
    this.headOfEpoch.set(epoch, id);
  }

  noteCommit(id: ReplicaId, e: Entry<Payload>): void {
    const sig = `${e.epoch}:${JSON.stringify(e.payload)}`;
    const prior = this.committed.get(e.index);
    if (prior === undefined) this.committed.set(e.index, sig);
    else if (prior !== sig) fail(`replica ${id} commits ${sig} at ${e.index}, others committed ${prior}`);
  }

  private scheduleTicks(r: Replica): void {
    const loop = (): void => { if (r.alive) r.tick(); this.q.after(tickMs, loop); };
    this.q.after(this.rng.int(0, tickMs), loop);
  }

  /** Crashes and partitions during the load, never more than one replica out at once. */
  private scheduleFaults(): void {
    let t = this.rng.int(50, 300);
    while (t < this.cfg.loadMs - 100) {
      const id = this.rng.pick(this.members);
      const outMs = this.rng.int(30, 500);
      const start = t;
      if (this.rng.chance(0.6)) {
        const lose = this.rng.chance(0.5);
        this.q.at(start, () => { this.crashes++; this.trace(`crash ${id} lose=${lose}`); this.replicas.get(id)!.crash(lose); });
        this.q.at(start + outMs, () => { const r = this.replicas.get(id)!; if (!r.alive) { this.trace(`boot ${id}`); r.boot(); } });
      } else {
        this.q.at(start, () => { this.partitions++; this.trace(`isolate ${id}`); this.isolated.add(id); });
        this.q.at(start + outMs, () => { this.trace(`rejoin ${id}`); this.isolated.delete(id); });
      }
      t = start + outMs + this.rng.int(20, 400);
    }
  }

  run(): SimResult {
    let failure: string | undefined;
    let events = 0;
    try {
      for (const r of this.replicas.values()) this.scheduleTicks(r);
      this.scheduleFaults();
      for (const c of this.clients.values()) c.start();
      events += this.q.runUntil(this.cfg.loadMs);
      // Heal: every replica up, no partition, a perfect network; then the chain must settle.
      this.healed = true;
      this.isolated.clear();
      for (const r of this.replicas.values()) if (!r.alive) r.boot();
      for (const c of this.clients.values()) c.stopped = true;
      events += this.q.runUntil(this.cfg.loadMs + this.cfg.settleMs);
      failure = this.finalCheck(() => { events += this.q.runUntil(this.q.nowMs + 4_000); });
      if (failure !== undefined && process.env.FLYFS_SIM_TRACE !== undefined) {
        for (const r of this.replicas.values()) this.trace(`final ${r.id} alive=${r.alive} ${JSON.stringify(r.core.status())}`);
      }
    } catch (err) {
      if (!(err instanceof SimError)) throw err;
      failure = err.message;
    }
    return {
      seed: this.cfg.seed, failure,
      stats: { ops: this.ops, acked: this.acked, reads: this.reads, epochs: this.headOfEpoch.size, crashes: this.crashes, partitions: this.partitions, snapshots: this.snapshots, events },
    };
  }

  private finalCheck(runMore: () => void): string | undefined {
    const finals = new Map<string, readonly number[] | undefined>();
    const reader = new Client(this.cfg.clients + 1, this);
    this.clients.set(reader.id, reader);
    const keys = Array.from({ length: this.cfg.keys }, (_, i) => `k${i}`);
    const readNext = (i: number): void => {
      if (i >= keys.length) return;
      reader.readFinal(keys[i]!, (list) => { finals.set(keys[i]!, list); readNext(i + 1); });
    };
    readNext(0);
    runMore();
    for (const key of keys) {
      const final = finals.get(key);
      if (final === undefined) return `no final read of ${key} succeeded after the chain healed (liveness)`;
      const ops: ListOp[] = [];
      for (const c of this.clients.values()) if (c !== reader) ops.push(...(c.history.get(key) ?? []));
      const problem = checkListHistory(key, ops, final);
      if (problem !== undefined) return problem;
    }
    return undefined;
  }
}

export function runMetaChainSim(cfg: Partial<SimConfig> & { seed: number }): SimResult {
  return new MetaChainSim({ replicas: 3, clients: 3, keys: 2, loadMs: 1_500, settleMs: 800, ...cfg }).run();
}
