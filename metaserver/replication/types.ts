// Domain types of the metaserver chain-replication core: configurations, log entries, the
// messages replicas exchange, the durable writes the core asks for, and its options.
// The core sees only these; the I/O shell converts them to and from gRPC and LMDB.
// The protocol itself is described in docs/metadata-replication.md.

/** A metaserver's replica id: its position-independent configured id (1, 2, 3, ...). */
export type ReplicaId = number;
/** A configuration number. Epoch e is proposed only by the member of rank e mod n. */
export type Epoch = number;
/** Position in the replicated log; 0 is "before the first entry". */
export type LogIndex = number;

export interface ChainConfig {
  readonly epoch: Epoch;
  /** Head first, tail last. Empty in epoch 0 (nobody serves before the first election). */
  readonly chain: readonly ReplicaId[];
  /** The head's last index when it was chosen: entries after it are all of this epoch. */
  readonly startIndex: LogIndex;
}

export interface Entry<P> {
  readonly index: LogIndex;
  /** Epoch of the head that created it: (index, epoch) names one entry and its whole prefix. */
  readonly epoch: Epoch;
  /** null: the no-op a head appends when its epoch starts. */
  readonly payload: P | null;
}

/** What the core remembers across crashes. The shell persists it from DurableWrites. */
export interface DurableState<P> {
  readonly promised: Epoch;
  readonly config: ChainConfig;
  /** Last compacted (or snapshot-installed) index and its epoch; entries follow it. */
  readonly logStart: LogIndex;
  readonly logStartEpoch: Epoch;
  readonly entries: readonly Entry<P>[];
  readonly commitIndex: LogIndex;
}

export type DurableWrite<P> =
  | { readonly kind: 'promise'; readonly epoch: Epoch }
  | { readonly kind: 'config'; readonly config: ChainConfig }
  /** Drop every entry after `truncateAfter`, then append `entries`. */
  | { readonly kind: 'append'; readonly truncateAfter: LogIndex; readonly entries: readonly Entry<P>[] }
  /** Entries through `index` are committed (the shell applies them in the same transaction). */
  | { readonly kind: 'commit'; readonly index: LogIndex }
  /** Entries through `through` (committed and applied) may be dropped from the log. */
  | { readonly kind: 'compact'; readonly through: LogIndex; readonly epoch: Epoch }
  /** The shell installed a snapshot through `index`: the log restarts empty after it, committed through it. */
  | { readonly kind: 'install'; readonly index: LogIndex; readonly epoch: Epoch };

/** The fields every message carries. */
interface Envelope {
  readonly from: ReplicaId;
  readonly to: ReplicaId;
  /** The sender's configuration, so a stale receiver catches up from any message. */
  readonly config: ChainConfig;
}

export type Message<P> =
  /** Heartbeat and lease request, sent to every configured member each heartbeat. */
  | (Envelope & {
    readonly kind: 'ping'; readonly sentAtMs: number; readonly promised: Epoch;
    readonly lastIndex: LogIndex; readonly lastEpoch: Epoch; readonly commitIndex: LogIndex;
  })
  /** `granted`: the responder promised nothing above the pinger's epoch, so it grants the lease. */
  | (Envelope & {
    readonly kind: 'pong'; readonly sentAtMs: number; readonly granted: boolean; readonly promised: Epoch;
    readonly lastIndex: LogIndex; readonly lastEpoch: Epoch; readonly commitIndex: LogIndex;
  })
  | (Envelope & { readonly kind: 'prepare'; readonly epoch: Epoch; readonly lastIndex: LogIndex; readonly lastEpoch: Epoch })
  | (Envelope & { readonly kind: 'promise'; readonly epoch: Epoch; readonly ok: boolean; readonly lastIndex: LogIndex; readonly lastEpoch: Epoch; readonly commitIndex: LogIndex })
  | (Envelope & { readonly kind: 'accept'; readonly proposal: ChainConfig })
  | (Envelope & { readonly kind: 'accepted'; readonly epoch: Epoch; readonly ok: boolean })
  /** From a node to its successor in the chain (or from the tail to a member outside the chain). */
  | (Envelope & {
    readonly kind: 'append'; readonly prevIndex: LogIndex; readonly prevEpoch: Epoch;
    readonly entries: readonly Entry<P>[]; readonly commitIndex: LogIndex;
  })
  /** ok: the receiver's log matches the sender's through `matchIndex`. Not ok: resend after `hint`. */
  | (Envelope & { readonly kind: 'appendAck'; readonly ok: boolean; readonly matchIndex: LogIndex; readonly hint: LogIndex; readonly commitIndex: LogIndex })
  /** The sender compacted what the receiver needs: fetch a snapshot from the sender. */
  | (Envelope & { readonly kind: 'snapshotOffer'; readonly index: LogIndex });

export type MessageKind = Message<unknown>['kind'];

/** Work for the shell that is neither a durable write nor a message. */
export type Effect =
  /** Fetch the applied state of `from` and feed `snapshotInstalled` once it is installed. */
  | { readonly kind: 'fetchSnapshot'; readonly from: ReplicaId }
  /** The role changed; a head that lost its role fails the callers waiting on it. */
  | { readonly kind: 'role'; readonly role: Role; readonly epoch: Epoch };

export type Role = 'head' | 'middle' | 'tail' | 'learner' | 'candidate' | 'none';

/** One batch of output: persist `writes`, apply `commits` (same transaction), then send, then act. */
export interface Ready<P> {
  readonly writes: DurableWrite<P>[];
  readonly commits: Entry<P>[];
  readonly messages: Message<P>[];
  readonly effects: Effect[];
}

export interface CoreOptions {
  readonly self: ReplicaId;
  /** Every configured metaserver, in a fixed order the whole cluster shares. */
  readonly members: readonly ReplicaId[];
  readonly heartbeatMs: number;
  /** A member unheard for this long is suspected failed. */
  readonly suspectMs: number;
  /** How long a majority's grant lets a member serve. A new epoch waits this long before it serves. */
  readonly leaseMs: number;
  /** Extra wait per place in the succession, so the best-placed candidate tries first. */
  readonly candidateStaggerMs: number;
  /** A proposal that has not completed in this long is abandoned. */
  readonly proposalTimeoutMs: number;
  /** Sent-but-unacknowledged entries are sent again after this long. */
  readonly retransmitMs: number;
  /** Entries in one append message. */
  readonly appendEntriesMax: number;
  /** Entries a node keeps sent but unacknowledged to its successor. */
  readonly inflightEntriesMax: number;
  /** A member outside the chain this close to the head's commit index is added back. */
  readonly catchupLagMax: number;
  /** Committed entries kept in the log for successors that lag; older ones are compacted. */
  readonly logRetainMax: number;
}
