// The chain-replication core of the metaservers: a pure state machine. Inputs are messages,
// ticks, proposals and installed snapshots, each with the time; outputs (drained with `drain`)
// are durable writes, commits to apply, messages to send and effects for the shell. It reads no
// clock, does no I/O and draws no random numbers. docs/metadata-replication.md gives the
// protocol and the argument for its safety; the names below follow it.
import { assert } from '../../common/errors.js';
import type {
  ChainConfig, CoreOptions, DurableState, DurableWrite, Effect, Entry, Epoch, LogIndex, Message, Ready, ReplicaId, Role,
} from './types.js';

type MessageOf<K extends Message<unknown>['kind'], P> = Extract<Message<P>, { kind: K }>;
type Body<M> = M extends unknown ? Omit<M, 'from' | 'to' | 'config'> : never;

interface PeerInfo { epoch: Epoch; promised: Epoch; lastIndex: LogIndex; lastEpoch: Epoch; commitIndex: LogIndex }

/** Sends a node's log to one receiver: its chain successor, or (from the tail) a member outside the chain. */
interface Forwarder {
  readonly to: ReplicaId;
  /** Outside the chain: only committed entries are sent. */
  readonly outside: boolean;
  nextIndex: LogIndex;
  matchIndex: LogIndex;
  lastSentMs: number;
  /** Send even with nothing new, so the receiver answers with where it stands. */
  probe: boolean;
  lastOfferMs: number;
  /** Where the last refusal rewound `nextIndex` to, and when. */
  rewoundTo: LogIndex;
  rewoundAtMs: number;
}

interface Proposal {
  readonly epoch: Epoch;
  phase: 'prepare' | 'accept';
  readonly promises: Map<ReplicaId, { lastIndex: LogIndex; lastEpoch: Epoch }>;
  readonly accepted: Set<ReplicaId>;
  readonly startedMs: number;
  quorumMs: number;
  lastSendMs: number;
  /** A member outside the chain this proposal exists to add back. */
  readonly include: ReplicaId | undefined;
  config: ChainConfig | undefined;
}

interface LeaseRound { readonly epoch: Epoch; readonly granters: Set<ReplicaId> }

const leaseRoundsMax = 8;

export const initialConfig: ChainConfig = { epoch: 0, chain: [], startIndex: 0 };

export function initialDurableState<P>(): DurableState<P> {
  return { promised: 0, config: initialConfig, logStart: 0, logStartEpoch: 0, entries: [], commitIndex: 0 };
}

export type ProposeResult = { readonly ok: true; readonly index: LogIndex } | { readonly ok: false; readonly reason: 'not-head' | 'not-ready' | 'no-lease' };

export interface CoreStatus {
  readonly self: ReplicaId;
  readonly role: Role;
  readonly epoch: Epoch;
  readonly promised: Epoch;
  readonly chain: readonly ReplicaId[];
  readonly startIndex: LogIndex;
  readonly lastIndex: LogIndex;
  readonly commitIndex: LogIndex;
  readonly logStart: LogIndex;
  readonly leaseUntilMs: number;
}

export class ChainCore<P> {
  private readonly o: CoreOptions;
  private readonly rank: number;
  private readonly quorum: number;

  // Durable (mirrors what the writes persist).
  private promised: Epoch;
  private config: ChainConfig;
  private logStart: LogIndex;
  private logStartEpoch: Epoch;
  private entries: Entry<P>[];
  private commitIndex: LogIndex;

  // Volatile.
  private nowMs: number;
  private readonly bootMs: number;
  /** This node's log matches the current epoch head's log through here. */
  private validThrough: LogIndex;
  private readonly lastHeardMs = new Map<ReplicaId, number>();
  private readonly peers = new Map<ReplicaId, PeerInfo>();
  private highestSeenEpoch: Epoch;
  private leaseUntilMs = 0;
  private readonly leaseRounds = new Map<number, LeaseRound>();
  private lastPingMs = Number.NEGATIVE_INFINITY;
  private forwarders = new Map<ReplicaId, Forwarder>();
  private proposal: Proposal | undefined;
  /** Head: its epoch was chosen by a majority and may start at readyAtMs. */
  private chosen = false;
  private readyAtMs = 0;
  private started = false;
  private nextCandidacyMs: number;
  private upstreamAckDue = false;
  /** The tail of a chain of 3 or more tells the head of new commits directly (one hop, not n−1). */
  private headNoticeDue = false;
  private snapshotFetchMs = Number.NEGATIVE_INFINITY;
  private role: Role = 'none';

  private writes: DurableWrite<P>[] = [];
  private commits: Entry<P>[] = [];
  private messages: Message<P>[] = [];
  private effects: Effect[] = [];

  constructor(options: CoreOptions, state: DurableState<P>, nowMs: number) {
    checkOptions(options);
    this.o = options;
    this.rank = options.members.indexOf(options.self);
    this.quorum = Math.floor(options.members.length / 2) + 1;
    this.promised = state.promised;
    this.config = state.config;
    this.logStart = state.logStart;
    this.logStartEpoch = state.logStartEpoch;
    this.entries = [...state.entries];
    this.commitIndex = state.commitIndex;
    assert(this.promised >= this.config.epoch, 'promised is at least the configured epoch');
    assert(this.commitIndex >= this.logStart && this.commitIndex <= this.lastIndex(), 'commit index inside the log');
    this.nowMs = nowMs;
    this.bootMs = nowMs;
    this.validThrough = this.commitIndex;
    this.highestSeenEpoch = this.promised;
    // Everybody gets one suspicion period of grace after a (re)start.
    for (const m of options.members) if (m !== options.self) this.lastHeardMs.set(m, nowMs);
    this.nextCandidacyMs = nowMs;
    this.resetForwarders();
    this.updateRole();
  }

  // ---- queries ----

  lastIndex(): LogIndex { return this.logStart + this.entries.length; }
  private lastEpoch(): Epoch { return this.entries.length === 0 ? this.logStartEpoch : this.entries[this.entries.length - 1]!.epoch; }

  private epochAt(index: LogIndex): Epoch | undefined {
    if (index === this.logStart) return this.logStartEpoch;
    if (index < this.logStart || index > this.lastIndex()) return undefined;
    return this.entries[index - this.logStart - 1]!.epoch;
  }

  entryAt(index: LogIndex): Entry<P> | undefined {
    if (index <= this.logStart || index > this.lastIndex()) return undefined;
    return this.entries[index - this.logStart - 1];
  }

  private position(): number { return this.config.chain.indexOf(this.o.self); }
  private isTail(): boolean { const p = this.position(); return p >= 0 && p === this.config.chain.length - 1; }
  private isHead(): boolean { return this.config.chain[0] === this.o.self; }

  status(): CoreStatus {
    return {
      self: this.o.self, role: this.role, epoch: this.config.epoch, promised: this.promised, chain: this.config.chain,
      startIndex: this.config.startIndex, lastIndex: this.lastIndex(), commitIndex: this.commitIndex, logStart: this.logStart,
      leaseUntilMs: this.leaseUntilMs,
    };
  }

  chainConfig(): ChainConfig { return this.config; }

  /** The head accepts proposals only in a started epoch it has not promised away, under a lease. */
  canPropose(nowMs: number): ProposeResult {
    if (!this.isHead() || this.promised !== this.config.epoch) return { ok: false, reason: 'not-head' };
    if (!this.started) return { ok: false, reason: 'not-ready' };
    if (nowMs >= this.leaseUntilMs) return { ok: false, reason: 'no-lease' };
    return { ok: true, index: this.lastIndex() + 1 };
  }

  /** Reads see committed state: at the tail, or at any member whose log holds nothing uncommitted. */
  canServeRead(nowMs: number): boolean {
    if (this.position() < 0 || this.promised !== this.config.epoch || nowMs >= this.leaseUntilMs) return false;
    if (this.commitIndex <= this.config.startIndex) return false; // the epoch's first entry is not committed yet
    return this.isTail() || (this.commitIndex === this.lastIndex() && this.validThrough === this.lastIndex());
  }

  // ---- inputs ----

  propose(payload: P, nowMs: number): ProposeResult {
    this.advanceTime(nowMs);
    const can = this.canPropose(this.nowMs);
    if (!can.ok) return can;
    this.appendOwn(payload);
    return can;
  }

  tick(nowMs: number): void {
    this.advanceTime(nowMs);
    if (this.nowMs - this.lastPingMs >= this.o.heartbeatMs) this.pingAll();
    this.retransmit();
    this.driveProposal();
    if (this.chosen && !this.started && this.nowMs >= this.readyAtMs) this.startEpoch();
    this.detectFailures();
    this.updateRole();
  }

  receive(msg: Message<P>, nowMs: number): void {
    this.advanceTime(nowMs);
    if (msg.to !== this.o.self || msg.from === this.o.self || !this.o.members.includes(msg.from)) return;
    this.lastHeardMs.set(msg.from, this.nowMs);
    this.highestSeenEpoch = Math.max(this.highestSeenEpoch, msg.config.epoch);
    this.adopt(msg.config);
    switch (msg.kind) {
      case 'ping': this.onPing(msg); break;
      case 'pong': this.onPong(msg); break;
      case 'prepare': this.onPrepare(msg); break;
      case 'promise': this.onPromise(msg); break;
      case 'accept': this.onAccept(msg); break;
      case 'accepted': this.onAccepted(msg); break;
      case 'append': this.onAppend(msg); break;
      case 'appendAck': this.onAppendAck(msg); break;
      case 'snapshotOffer': this.onSnapshotOffer(msg); break;
    }
    this.updateRole();
  }

  /** The shell installed a snapshot of committed state through `index`; the log restarts after it. */
  snapshotInstalled(index: LogIndex, epoch: Epoch, nowMs: number): void {
    this.advanceTime(nowMs);
    this.snapshotFetchMs = Number.NEGATIVE_INFINITY;
    if (index <= this.commitIndex) return;
    this.entries = [];
    this.logStart = index;
    this.logStartEpoch = epoch;
    this.commitIndex = index;
    this.validThrough = Math.max(this.validThrough, index);
    this.writes.push({ kind: 'install', index, epoch });
    this.upstreamAckDue = true;
  }

  drain(): Ready<P> {
    this.sendAppends();
    if (this.upstreamAckDue) this.ackUpstream();
    if (this.headNoticeDue) this.noticeHead();
    const ready: Ready<P> = { writes: this.writes, commits: this.commits, messages: this.messages, effects: this.effects };
    this.writes = []; this.commits = []; this.messages = []; this.effects = [];
    return ready;
  }

  // ---- time, pings and leases ----

  private advanceTime(nowMs: number): void { if (nowMs > this.nowMs) this.nowMs = nowMs; }

  private others(): ReplicaId[] { return this.o.members.filter((m) => m !== this.o.self); }

  private send(to: ReplicaId, body: Body<Message<P>>): void {
    this.messages.push({ ...body, from: this.o.self, to, config: this.config } as Message<P>);
  }

  private logInfo(): { lastIndex: LogIndex; lastEpoch: Epoch; commitIndex: LogIndex } {
    return { lastIndex: this.lastIndex(), lastEpoch: this.lastEpoch(), commitIndex: this.commitIndex };
  }

  private pingAll(): void {
    this.lastPingMs = this.nowMs;
    const round: LeaseRound = { epoch: this.config.epoch, granters: new Set() };
    if (this.promised <= this.config.epoch) round.granters.add(this.o.self);
    this.leaseRounds.set(this.nowMs, round);
    if (this.leaseRounds.size > leaseRoundsMax) this.leaseRounds.delete(this.leaseRounds.keys().next().value!);
    this.countLease(this.nowMs, round);
    for (const m of this.others()) this.send(m, { kind: 'ping', sentAtMs: this.nowMs, promised: this.promised, ...this.logInfo() });
  }

  private countLease(sentAtMs: number, round: LeaseRound): void {
    if (round.epoch !== this.config.epoch || round.granters.size < this.quorum) return;
    this.leaseUntilMs = Math.max(this.leaseUntilMs, sentAtMs + this.o.leaseMs);
  }

  private notePeer(from: ReplicaId, m: { config: ChainConfig; promised: Epoch; lastIndex: LogIndex; lastEpoch: Epoch; commitIndex: LogIndex }): void {
    this.peers.set(from, { epoch: m.config.epoch, promised: m.promised, lastIndex: m.lastIndex, lastEpoch: m.lastEpoch, commitIndex: m.commitIndex });
    this.highestSeenEpoch = Math.max(this.highestSeenEpoch, m.promised);
  }

  private onPing(m: MessageOf<'ping', P>): void {
    this.notePeer(m.from, m);
    // A grant promises not to help any epoch above the pinger's until this lease ran out:
    // one who promised a higher epoch no longer grants.
    const granted = this.promised <= m.config.epoch;
    this.send(m.from, { kind: 'pong', sentAtMs: m.sentAtMs, granted, promised: this.promised, ...this.logInfo() });
  }

  private onPong(m: MessageOf<'pong', P>): void {
    this.notePeer(m.from, m);
    const round = this.leaseRounds.get(m.sentAtMs);
    if (round === undefined || !m.granted) return;
    round.granters.add(m.from);
    this.countLease(m.sentAtMs, round);
  }

  // ---- configuration by epochs ----

  /** Takes a newer configuration. One below what this node promised is only learned, not served:
   * appends, commits and lease grants all check the promise. */
  private adopt(c: ChainConfig): void {
    if (c.epoch <= this.config.epoch) return;
    if (c.epoch > this.promised) { this.promised = c.epoch; this.writes.push({ kind: 'promise', epoch: c.epoch }); }
    this.config = c;
    this.writes.push({ kind: 'config', config: c });
    this.enterEpoch();
  }

  private enterEpoch(): void {
    this.leaseUntilMs = 0;
    this.leaseRounds.clear();
    this.started = false;
    if (!(this.proposal !== undefined && this.proposal.epoch === this.config.epoch)) {
      this.chosen = false;
      if (this.proposal !== undefined && this.proposal.epoch < this.config.epoch) this.proposal = undefined;
    }
    this.validThrough = this.isHead() ? this.lastIndex() : this.commitIndex;
    this.resetForwarders();
    this.upstreamAckDue = this.position() !== 0;
    // A fresh epoch is pinged at once so its lease does not wait for the next heartbeat.
    this.lastPingMs = Number.NEGATIVE_INFINITY;
  }

  private ownerOf(epoch: Epoch): ReplicaId { return this.o.members[epoch % this.o.members.length]!; }

  private nextOwnEpoch(): Epoch {
    const n = this.o.members.length;
    const above = Math.max(this.promised, this.config.epoch, this.highestSeenEpoch);
    const e = above + 1;
    return e + ((this.rank - (e % n)) % n + n) % n;
  }

  private logAtLeast(lastEpoch: Epoch, lastIndex: LogIndex): boolean {
    const myEpoch = this.lastEpoch();
    return lastEpoch > myEpoch || (lastEpoch === myEpoch && lastIndex >= this.lastIndex());
  }

  private heardWithin(m: ReplicaId, ms: number): boolean {
    return m === this.o.self || this.nowMs - (this.lastHeardMs.get(m) ?? Number.NEGATIVE_INFINITY) < ms;
  }

  private startCandidacy(include: ReplicaId | undefined): void {
    const epoch = this.nextOwnEpoch();
    this.promised = epoch;
    this.highestSeenEpoch = epoch;
    this.writes.push({ kind: 'promise', epoch });
    this.proposal = {
      epoch, phase: 'prepare', promises: new Map([[this.o.self, { lastIndex: this.lastIndex(), lastEpoch: this.lastEpoch() }]]),
      accepted: new Set(), startedMs: this.nowMs, quorumMs: Number.POSITIVE_INFINITY, lastSendMs: this.nowMs, include, config: undefined,
    };
    for (const m of this.others()) this.send(m, { kind: 'prepare', epoch, lastIndex: this.lastIndex(), lastEpoch: this.lastEpoch() });
    this.driveProposal();
  }

  private onPrepare(m: MessageOf<'prepare', P>): void {
    const head = this.config.chain[0];
    // A live head keeps its chain: a candidate that merely lost touch with it may not depose it.
    const headAlive = head !== undefined && head !== m.from && head !== this.o.self && this.heardWithin(head, this.o.suspectMs);
    // The same promise again (its answer may have been lost): epoch e belongs to one proposer only.
    const again = m.epoch === this.promised && m.epoch > this.config.epoch && this.ownerOf(m.epoch) === m.from;
    const ok = (m.epoch > this.promised || again) && this.logAtLeast(m.lastEpoch, m.lastIndex) && !headAlive;
    if (ok && !again) {
      this.promised = m.epoch;
      this.writes.push({ kind: 'promise', epoch: m.epoch });
      if (this.proposal !== undefined && this.proposal.epoch < m.epoch) this.abandonProposal();
    }
    this.send(m.from, { kind: 'promise', epoch: m.epoch, ok, ...this.logInfo() });
  }

  private onPromise(m: MessageOf<'promise', P>): void {
    const p = this.proposal;
    if (p === undefined || p.epoch !== m.epoch || p.phase !== 'prepare') return;
    if (!m.ok) {
      // Someone holds a better log: step aside and let it stand.
      if (!this.logAtLeast(m.lastEpoch, m.lastIndex)) this.abandonProposal();
      return;
    }
    p.promises.set(m.from, { lastIndex: m.lastIndex, lastEpoch: m.lastEpoch });
    this.driveProposal();
  }

  private onAccept(m: MessageOf<'accept', P>): void {
    const c = m.proposal;
    const ok = c.epoch >= this.promised && c.epoch >= this.config.epoch;
    if (ok) this.adopt(c);
    this.send(m.from, { kind: 'accepted', epoch: c.epoch, ok: ok && this.config.epoch === c.epoch });
  }

  private onAccepted(m: MessageOf<'accepted', P>): void {
    const p = this.proposal;
    if (p === undefined || p.epoch !== m.epoch || p.phase !== 'accept' || !m.ok) return;
    p.accepted.add(m.from);
    this.driveProposal();
  }

  private abandonProposal(): void {
    this.proposal = undefined;
    this.nextCandidacyMs = this.nowMs + this.o.proposalTimeoutMs / 2 + this.succession() * this.o.candidateStaggerMs;
  }

  private driveProposal(): void {
    const p = this.proposal;
    if (p === undefined) return;
    if (this.nowMs - p.startedMs >= this.o.proposalTimeoutMs) { this.abandonProposal(); return; }
    if (p.phase === 'prepare') {
      if (this.readyToChoose(p)) this.propose2(p);
      else if (this.nowMs - p.lastSendMs >= this.o.retransmitMs) {
        p.lastSendMs = this.nowMs;
        for (const m of this.others()) {
          if (!p.promises.has(m)) this.send(m, { kind: 'prepare', epoch: p.epoch, lastIndex: this.lastIndex(), lastEpoch: this.lastEpoch() });
        }
      }
      return;
    }
    if (p.accepted.size >= this.quorum) {
      this.proposal = undefined;
      this.chosen = true;
      if (this.nowMs >= this.readyAtMs) this.startEpoch();
      return;
    }
    if (this.nowMs - p.lastSendMs >= this.o.retransmitMs) {
      p.lastSendMs = this.nowMs;
      for (const m of this.others()) if (!p.accepted.has(m)) this.send(m, { kind: 'accept', proposal: p.config! });
    }
  }

  /** A quorum promised, and everyone alive answered (or had a heartbeat's time to). */
  private readyToChoose(p: Proposal): boolean {
    if (p.promises.size < this.quorum) return false;
    if (p.quorumMs === Number.POSITIVE_INFINITY) p.quorumMs = this.nowMs;
    if (p.include !== undefined && !p.promises.has(p.include) && this.nowMs - p.startedMs < this.o.proposalTimeoutMs / 2) return false;
    const waiting = this.others().some((m) => !p.promises.has(m) && this.heardWithin(m, this.o.suspectMs));
    return !waiting || this.nowMs - p.quorumMs >= this.o.heartbeatMs;
  }

  private propose2(p: Proposal): void {
    const chain = this.chooseChain(p);
    const config: ChainConfig = { epoch: p.epoch, chain, startIndex: this.lastIndex() };
    p.phase = 'accept';
    p.config = config;
    p.lastSendMs = this.nowMs;
    // Old leases were granted before the promises that ended them: wait one lease before serving.
    // With no chain before (a new cluster) or no other member, nobody else can hold one.
    const noOtherLease = this.config.chain.length === 0 || this.o.members.length === 1;
    this.readyAtMs = noOtherLease ? this.nowMs : this.nowMs + this.o.leaseMs;
    this.adopt(config);
    p.accepted.add(this.o.self);
    for (const m of this.others()) this.send(m, { kind: 'accept', proposal: config });
    this.driveProposal();
  }

  /** This node first; then those that promised, freshest log first, lagging ones only to reach a quorum. */
  private chooseChain(p: Proposal): ReplicaId[] {
    const old = this.config.chain;
    const order = (id: ReplicaId): number => { const i = old.indexOf(id); return i >= 0 ? i : old.length + this.o.members.indexOf(id); };
    const others = [...p.promises.entries()].filter(([id]) => id !== this.o.self).sort(([a, x], [b, y]) =>
      (y.lastEpoch - x.lastEpoch) || (y.lastIndex - x.lastIndex) || (order(a) - order(b)));
    const chain: ReplicaId[] = [this.o.self];
    const lagging: ReplicaId[] = [];
    for (const [id, info] of others) {
      if (id === p.include || info.lastIndex + this.o.catchupLagMax >= this.commitIndex) chain.push(id); else lagging.push(id);
    }
    while (chain.length < this.quorum && lagging.length > 0) chain.push(lagging.shift()!);
    return chain;
  }

  private startEpoch(): void {
    this.started = true;
    this.appendOwn(null);
  }

  /** Where this node stands in line to replace a silent head. */
  private succession(): number {
    const p = this.position();
    if (p >= 1) return p - 1;
    if (this.config.chain.length === 0) return this.rank;
    return this.config.chain.length + this.rank;
  }

  private detectFailures(): void {
    if (this.proposal !== undefined || this.nowMs < this.nextCandidacyMs) return;
    if (this.isHead()) {
      // A head that restarted must be chosen again before it serves.
      if (!this.chosen) { this.startCandidacy(undefined); return; }
      // A member that promised a newer epoch (whose proposal then died) stalls this one: renew it.
      const stalled = this.promised !== this.config.epoch || this.others().some((m) => (this.peers.get(m)?.promised ?? 0) > this.config.epoch);
      const silent = this.config.chain.some((m) => !this.heardWithin(m, this.o.suspectMs));
      if (silent || stalled) { this.startCandidacy(undefined); return; }
      // Members come back only into a chain that works: its epoch's first entry committed.
      if (this.commitIndex <= this.config.startIndex) return;
      const returning = this.others().find((m) => !this.config.chain.includes(m) && this.caughtUp(m));
      if (returning !== undefined) this.startCandidacy(returning);
      return;
    }
    const head = this.config.chain[0];
    const stagger = this.succession() * this.o.candidateStaggerMs;
    // A new cluster: the members elect in rank order, one stagger apart, from their start.
    if (head === undefined ? this.nowMs - this.bootMs >= stagger : !this.heardWithin(head, this.o.suspectMs + stagger)) this.startCandidacy(undefined);
  }

  private caughtUp(m: ReplicaId): boolean {
    const info = this.peers.get(m);
    if (info === undefined || !this.heardWithin(m, this.o.suspectMs) || info.epoch !== this.config.epoch) return false;
    return info.commitIndex + this.o.catchupLagMax >= this.commitIndex;
  }

  // ---- the log ----

  private appendOwn(payload: P | null): void {
    const entry: Entry<P> = { index: this.lastIndex() + 1, epoch: this.config.epoch, payload };
    this.entries.push(entry);
    const w = this.writes[this.writes.length - 1];
    if (w !== undefined && w.kind === 'append' && w.truncateAfter + w.entries.length === entry.index - 1) {
      (w.entries as Entry<P>[]).push(entry);
    } else {
      this.writes.push({ kind: 'append', truncateAfter: entry.index - 1, entries: [entry] });
    }
    this.validThrough = entry.index;
    if (this.isTail()) this.commitThrough(this.validThrough, false);
  }

  /** `known`: another node reports these committed; otherwise this tail decides it by holding them. */
  private commitThrough(index: LogIndex, known: boolean): void {
    const through = Math.min(index, this.validThrough, this.lastIndex());
    if (through <= this.commitIndex) return;
    // A tail commits by its epoch's own entries, which carry everything before them along;
    // entries of older epochs never commit on their own (they might yet be replaced).
    if (!known && through <= this.config.startIndex) return;
    for (let i = this.commitIndex + 1; i <= through; i++) this.commits.push(this.entryAt(i)!);
    this.commitIndex = through;
    this.writes.push({ kind: 'commit', index: through });
    this.upstreamAckDue = this.position() !== 0;
    if (this.isTail() && this.config.chain.length >= 3) this.headNoticeDue = true;
    this.compact();
  }

  private compact(): void {
    const slack = Math.floor(this.o.logRetainMax / 4) + 1;
    if (this.commitIndex - this.logStart <= this.o.logRetainMax + slack) return;
    const through = this.commitIndex - this.o.logRetainMax;
    const epoch = this.epochAt(through)!;
    this.entries.splice(0, through - this.logStart);
    this.logStart = through;
    this.logStartEpoch = epoch;
    this.writes.push({ kind: 'compact', through, epoch });
  }

  private firstIndexOfEpoch(epoch: Epoch, atOrBefore: LogIndex): LogIndex {
    let i = atOrBefore;
    while (i - 1 > this.logStart && this.epochAt(i - 1) === epoch) i--;
    return i;
  }

  /** Who sends this node its log: its predecessor in the chain, or the tail for a member outside it. */
  private upstream(): ReplicaId | undefined {
    const p = this.position();
    if (p > 0) return this.config.chain[p - 1];
    if (p < 0) return this.config.chain[this.config.chain.length - 1];
    return undefined;
  }

  private onAppend(m: MessageOf<'append', P>): void {
    if (m.config.epoch !== this.config.epoch) {
      this.send(m.from, { kind: 'appendAck', ok: false, matchIndex: 0, hint: this.commitIndex, commitIndex: this.commitIndex });
      return;
    }
    // Promised to a newer epoch: this one may not grow here any more.
    if (m.from !== this.upstream() || this.promised !== this.config.epoch) return;
    const prev = m.prevIndex;
    const last = this.lastIndex();
    if (prev > last) { this.nack(m.from, last); return; }
    if (prev > this.commitIndex && prev >= this.logStart && this.epochAt(prev) !== m.prevEpoch) {
      const conflictEpoch = this.epochAt(prev)!;
      this.nack(m.from, Math.max(this.commitIndex, this.firstIndexOfEpoch(conflictEpoch, prev) - 1));
      return;
    }
    // Entries at or below the commit index are committed, hence identical: skip them.
    let fresh = m.entries.filter((e) => e.index > this.commitIndex);
    const firstNew = fresh.findIndex((e) => e.index > this.lastIndex() || this.epochAt(e.index) !== e.epoch);
    fresh = firstNew < 0 ? [] : fresh.slice(firstNew);
    if (fresh.length > 0) {
      const truncateAfter = fresh[0]!.index - 1;
      assert(truncateAfter >= this.commitIndex && truncateAfter <= this.lastIndex(), 'truncation keeps committed entries');
      this.entries.length = truncateAfter - this.logStart;
      for (const e of fresh) this.entries.push(e);
      this.writes.push({ kind: 'append', truncateAfter, entries: fresh });
    }
    const matchEnd = prev + m.entries.length;
    if (matchEnd > this.validThrough) this.validThrough = Math.min(matchEnd, this.lastIndex());
    if (this.position() < 0) this.commitThrough(m.commitIndex, true);
    else if (this.isTail()) this.commitThrough(this.validThrough, false);
    this.upstreamAckDue = true;
  }

  private nack(to: ReplicaId, hint: LogIndex): void {
    this.send(to, { kind: 'appendAck', ok: false, matchIndex: 0, hint, commitIndex: this.commitIndex });
  }

  private ackUpstream(): void {
    this.upstreamAckDue = false;
    const up = this.upstream();
    if (up === undefined) return;
    this.send(up, { kind: 'appendAck', ok: true, matchIndex: this.validThrough, hint: this.validThrough, commitIndex: this.commitIndex });
  }

  /**
   * The commit notice: an acknowledgement from the tail straight to the head. Whatever the tail
   * committed is on every member of the chain, and the head holds those entries (its log is
   * where they came from), so it may apply them without waiting for the acks to walk back.
   */
  private noticeHead(): void {
    this.headNoticeDue = false;
    const head = this.config.chain[0];
    if (head === undefined || head === this.o.self) return;
    this.send(head, { kind: 'appendAck', ok: true, matchIndex: this.validThrough, hint: this.validThrough, commitIndex: this.commitIndex });
  }

  private onAppendAck(m: MessageOf<'appendAck', P>): void {
    if (m.config.epoch !== this.config.epoch) return;
    const f = this.forwarders.get(m.from);
    if (f === undefined) {
      const chain = this.config.chain;
      if (m.ok && this.position() === 0 && chain.length >= 3 && m.from === chain[chain.length - 1]) this.commitThrough(m.commitIndex, true);
      return;
    }
    if (m.ok) {
      f.matchIndex = Math.max(f.matchIndex, m.matchIndex);
      f.nextIndex = Math.max(f.nextIndex, f.matchIndex + 1);
      f.probe = false;
      if (!f.outside) this.commitThrough(m.commitIndex, true);
    } else {
      // Appends sent after a catch-up overtake it, and each draws a refusal naming the same
      // place: rewinding there again within a retransmit interval would resend what is still
      // on its way, over and over. Once per interval is enough; the timer covers a loss.
      if (m.hint + 1 === f.rewoundTo && this.nowMs - f.rewoundAtMs < this.o.retransmitMs) return;
      f.rewoundTo = m.hint + 1;
      f.rewoundAtMs = this.nowMs;
      f.matchIndex = Math.min(f.matchIndex, m.hint);
      f.nextIndex = m.hint + 1;
      f.probe = true;
      f.lastSentMs = Number.NEGATIVE_INFINITY;
    }
  }

  private onSnapshotOffer(m: MessageOf<'snapshotOffer', P>): void {
    if (m.config.epoch !== this.config.epoch || m.from !== this.upstream()) return;
    // Already past it (a snapshot landed meanwhile): say where this log stands instead.
    if (m.index <= this.commitIndex) { this.nack(m.from, this.validThrough); return; }
    if (this.nowMs - this.snapshotFetchMs < this.o.proposalTimeoutMs) return;
    this.snapshotFetchMs = this.nowMs;
    this.effects.push({ kind: 'fetchSnapshot', from: m.from });
  }

  // ---- forwarding ----

  private resetForwarders(): void {
    const next = new Map<ReplicaId, Forwarder>();
    const p = this.position();
    const add = (to: ReplicaId, outside: boolean): void => {
      // Optimistic: assume the receiver holds what this node holds; a probe finds out, a refusal rewinds.
      next.set(to, { to, outside, nextIndex: this.validThrough + 1, matchIndex: this.validThrough, lastSentMs: Number.NEGATIVE_INFINITY, probe: true, lastOfferMs: Number.NEGATIVE_INFINITY, rewoundTo: 0, rewoundAtMs: Number.NEGATIVE_INFINITY });
    };
    if (p >= 0 && p < this.config.chain.length - 1) add(this.config.chain[p + 1]!, false);
    if (this.isTail()) for (const m of this.others()) if (!this.config.chain.includes(m)) add(m, true);
    this.forwarders = next;
  }

  private retransmit(): void {
    for (const f of this.forwarders.values()) {
      if (this.nowMs - f.lastSentMs < this.o.retransmitMs) continue;
      // Unacknowledged entries go again; members outside the chain keep hearing the commit index.
      if (f.matchIndex < f.nextIndex - 1 || f.probe || f.outside) { f.nextIndex = f.matchIndex + 1; f.probe = true; }
    }
  }

  private sendAppends(): void {
    if (this.position() < 0 || this.promised !== this.config.epoch) return;
    if (this.isHead() && !this.started) return;
    for (const f of this.forwarders.values()) this.sendTo(f);
  }

  private sendTo(f: Forwarder): void {
    const limit = f.outside ? this.commitIndex : this.validThrough;
    if (f.nextIndex - 1 < this.logStart) {
      if (this.nowMs - f.lastOfferMs >= this.o.retransmitMs) {
        f.lastOfferMs = this.nowMs;
        f.lastSentMs = this.nowMs;
        this.send(f.to, { kind: 'snapshotOffer', index: this.commitIndex });
      }
      return;
    }
    let sent = false;
    while (f.nextIndex <= limit && f.nextIndex - 1 - f.matchIndex < this.o.inflightEntriesMax) {
      const end = Math.min(limit, f.nextIndex + this.o.appendEntriesMax - 1, f.matchIndex + this.o.inflightEntriesMax);
      const entries = this.entries.slice(f.nextIndex - this.logStart - 1, end - this.logStart);
      this.send(f.to, { kind: 'append', prevIndex: f.nextIndex - 1, prevEpoch: this.epochAt(f.nextIndex - 1)!, entries, commitIndex: this.commitIndex });
      f.nextIndex = end + 1;
      sent = true;
    }
    if (!sent && f.probe && f.nextIndex - 1 <= this.lastIndex() && this.nowMs - f.lastSentMs >= this.o.retransmitMs) {
      this.send(f.to, { kind: 'append', prevIndex: f.nextIndex - 1, prevEpoch: this.epochAt(f.nextIndex - 1)!, entries: [], commitIndex: this.commitIndex });
      sent = true;
    }
    if (sent) f.lastSentMs = this.nowMs;
  }

  // ---- role ----

  private updateRole(): void {
    let role: Role;
    const p = this.position();
    if (this.proposal !== undefined) role = 'candidate';
    else if (p < 0) role = this.config.epoch === 0 ? 'none' : 'learner';
    else if (p === 0) role = 'head';
    else role = p === this.config.chain.length - 1 ? 'tail' : 'middle';
    if (role === this.role) return;
    this.role = role;
    this.effects.push({ kind: 'role', role, epoch: this.config.epoch });
  }
}

function checkOptions(o: CoreOptions): void {
  assert(o.members.length >= 1 && new Set(o.members).size === o.members.length, 'members are distinct');
  assert(o.members.includes(o.self), 'self is a member');
  assert(o.heartbeatMs > 0 && o.suspectMs > o.heartbeatMs, 'suspicion takes more than one heartbeat');
  assert(o.leaseMs > 0 && o.proposalTimeoutMs > 0 && o.retransmitMs > 0, 'positive timeouts');
  assert(o.appendEntriesMax >= 1 && o.inflightEntriesMax >= o.appendEntriesMax, 'in-flight window holds one append');
  assert(o.logRetainMax >= o.inflightEntriesMax, 'the log keeps what is in flight');
}
