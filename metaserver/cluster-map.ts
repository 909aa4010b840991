// The cluster map (cluster-manager role): nodes, leases, targets, chains and chain tables.
// Membership, chains and public target states are persisted through db.commit with the
// mutations of cluster-ops.ts; leases, the local target states storage servers report, and
// target usage are soft state in memory, so a heartbeat that changes nothing writes nothing.
// After a restart (or a takeover) every known node gets one fresh lease before it can be
// declared failed. The clock is injected so tests need not sleep.
import { flyfsError } from '../common/errors.js';
import { limits } from '../common/limits.js';
import { metaserverLimits } from './config.js';
import {
  evaluate, evaluationPending, listRecords, openClusterMap, readChain, registerNode, routingVersionOf, setTargetAdmin, withStates,
  type ChainRecord, type ChainTableRecord, type EvaluateArgs, type NodeRecord, type Registration, type TargetRecord, type TargetRegistration,
} from './cluster-ops.js';
import type { MetaDb } from './db.js';
import type { LocalTargetState, PublicTargetState } from './target-states.js';
import type { ChainTableSource } from './types.js';

export type { ChainRecord, ChainTableRecord, NodeRecord, NodeRoleName, Registration, TargetRecord, TargetRegistration } from './cluster-ops.js';
export type NodeStateName = 'alive' | 'expired';
export type TargetStateName = PublicTargetState;

export interface NodeView extends NodeRecord { readonly state: NodeStateName; readonly leaseExpiresMs: number }
export interface TargetView extends TargetRecord {
  readonly state: TargetStateName;
  /** As last reported since this manager started; undefined before the first report. */
  readonly localState: LocalTargetState | undefined;
}
export interface RoutingInfo {
  readonly version: number;
  readonly nodes: readonly NodeView[];
  readonly targets: readonly TargetView[];
  readonly chains: readonly ChainRecord[];
  readonly chainTables: readonly ChainTableRecord[];
}

export interface ClusterMapOptions {
  leaseMs: number;
  /** Targets per chain, on distinct nodes. Default 1. */
  replicas?: number;
  now?: () => number;
}

export class ClusterMap implements ChainTableSource {
  private readonly leases = new Map<number, number>();
  /** Node states as last published; a difference from the clock's view bumps the version. */
  private readonly published = new Map<number, NodeStateName>();
  /** Local target states reported since this manager started (soft state). */
  private readonly reported = new Map<number, LocalTargetState>();
  private readonly usage = new Map<number, { capacityBytes: number; usedBytes: number }>();

  private constructor(private readonly db: MetaDb, readonly leaseMs: number, readonly replicas: number, private readonly now: () => number) {}

  /** create + takeOver, for one committer that is always the head (unit tests). */
  static async open(db: MetaDb, options: ClusterMapOptions): Promise<ClusterMap> {
    const map = ClusterMap.create(db, options);
    await map.takeOver();
    return map;
  }

  /** A map over `db` whose manager term has not begun: `takeOver` begins it on a head. */
  static create(db: MetaDb, options: ClusterMapOptions): ClusterMap {
    const replicas = options.replicas ?? 1;
    if (!Number.isSafeInteger(replicas) || replicas < 1 || replicas > metaserverLimits.replicasMax) {
      throw flyfsError('FLYFS_ERR_BAD_CONFIG', `replicas must be in [1, ${metaserverLimits.replicasMax}]`);
    }
    return new ClusterMap(db, options.leaseMs, replicas, options.now ?? Date.now);
  }

  /** Begins a manager term on a new head: the default table exists, every node gets a grace lease. */
  async takeOver(): Promise<void> {
    await this.db.commit((t) => openClusterMap(t));
    this.grantGrace();
  }

  /** A new manager term (restart or takeover): every known node gets one fresh lease, and what
   * was reported to an earlier term is forgotten, so a target's state holds until its node
   * speaks again or its lease runs out. */
  grantGrace(): void {
    const t = this.now();
    this.reported.clear();
    this.usage.clear();
    for (const n of this.nodes()) { this.leases.set(n.nodeId, t + this.leaseMs); this.published.set(n.nodeId, 'alive'); }
  }

  get version(): number { return routingVersionOf(this.db.cluster); }

  chainTable(tableId: number): { version: number; chains: readonly number[] } | undefined {
    const t = this.db.cluster.get(['table', tableId]) as ChainTableRecord | undefined;
    return t === undefined ? undefined : { version: t.version, chains: t.chainIds };
  }

  chain(chainId: number): ChainRecord | undefined { return readChain(this.db.cluster, chainId); }
  target(targetId: number): TargetRecord | undefined { return this.db.cluster.get(['target', targetId]) as TargetRecord | undefined; }
  node(nodeId: number): NodeRecord | undefined { return this.db.cluster.get(['node', nodeId]) as NodeRecord | undefined; }

  nodeState(nodeId: number): NodeStateName {
    const expires = this.leases.get(nodeId);
    return expires !== undefined && expires > this.now() ? 'alive' : 'expired';
  }

  /** Registers a node and its targets; returns the ids assigned. */
  async register(r: Registration): Promise<{ nodeId: number; targetIds: number[]; leaseMs: number; routingVersion: number }> {
    checkRegistration(r);
    const result = await this.db.commit((t) => registerNode(t, r));
    this.leases.set(result.nodeId, this.now() + this.leaseMs);
    this.noteTargets(result.targetIds.map((targetId, i) => ({ ...r.targets[i]!, targetId })), { defaultState: 'online' });
    await this.refresh();
    return { ...result, leaseMs: this.leaseMs, routingVersion: this.version };
  }

  /** Renews a node's lease and takes in its targets' local states and usage (in memory only);
   * writes only when that changes the map. An unknown node must register again. */
  async heartbeat(nodeId: number, targets: readonly TargetRegistration[] = []): Promise<{ leaseMs: number; routingVersion: number }> {
    if (this.node(nodeId) === undefined) throw flyfsError('FLYFS_ERR_UNKNOWN_NODE', `node ${nodeId}`);
    this.leases.set(nodeId, this.now() + this.leaseMs);
    this.noteTargets(targets.filter((t) => this.target(t.targetId)?.nodeId === nodeId), { defaultState: undefined });
    await this.refresh();
    return { leaseMs: this.leaseMs, routingVersion: this.version };
  }

  private noteTargets(targets: readonly TargetRegistration[], o: { defaultState: LocalTargetState | undefined }): void {
    for (const t of targets) {
      this.usage.set(t.targetId, { capacityBytes: t.capacityBytes, usedBytes: t.usedBytes });
      const s = t.localState ?? o.defaultState;
      if (s !== undefined) this.reported.set(t.targetId, s);
    }
  }

  /** An operator takes a target offline, or lets it come back; the rules run at once. */
  async setTargetAdmin(targetId: number, offline: boolean): Promise<{ routingVersion: number }> {
    if (!Number.isSafeInteger(targetId) || targetId <= 0) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `target id ${targetId}`);
    await this.db.commit((t) => setTargetAdmin(t, targetId, offline));
    await this.refresh();
    return { routingVersion: this.version };
  }

  /** Local state of every target as the rules see it now: offline where the node's lease ran
   * out, else the last report; a target without either is left out (it holds). */
  private localStates(): Array<[number, LocalTargetState]> {
    const out: Array<[number, LocalTargetState]> = [];
    for (const t of listRecords<TargetRecord>(this.db.cluster, 'target')) {
      const s = t.adminOffline === true || this.nodeState(t.nodeId) === 'expired' ? 'offline' : this.reported.get(t.targetId);
      if (s !== undefined) out.push([t.targetId, s]);
    }
    return out;
  }

  /** Applies lease expiries and reported local states to the map: one step of the target-state
   * rules per chain, chain formation, node state publication. Commits only when something changed. */
  async refresh(): Promise<void> {
    let nodesChanged = false;
    const aliveNodeIds: number[] = [];
    for (const n of this.nodes()) {
      const s = this.nodeState(n.nodeId);
      if (s === 'alive') aliveNodeIds.push(n.nodeId);
      if (this.published.get(n.nodeId) !== s) { this.published.set(n.nodeId, s); nodesChanged = true; }
    }
    const args: EvaluateArgs = { replicas: this.replicas, aliveNodeIds, localStates: this.localStates(), nodesChanged };
    if (!evaluationPending(this.db.cluster, args)) return;
    await this.db.commit((t) => evaluate(t, args));
  }

  async routingInfo(): Promise<RoutingInfo> {
    await this.refresh();
    return this.snapshot();
  }

  /** The map as it stands, without publishing state changes. */
  snapshot(): RoutingInfo {
    const nodes = this.nodes().map((n): NodeView => ({ ...n, state: this.nodeState(n.nodeId), leaseExpiresMs: this.leases.get(n.nodeId) ?? 0 }));
    const chains = listRecords<ChainRecord>(this.db.cluster, 'chain').map(withStates);
    const stateOf = new Map<number, PublicTargetState>();
    for (const c of chains) c.targetIds.forEach((id, i) => stateOf.set(id, c.states[i]!));
    const targets = listRecords<TargetRecord>(this.db.cluster, 'target').map((t): TargetView => ({
      ...t, ...this.usage.get(t.targetId),
      // A target in no chain yet is waiting for targets on other nodes to pair with.
      state: stateOf.get(t.targetId) ?? (this.nodeState(t.nodeId) === 'alive' ? 'waiting' : 'offline'),
      localState: this.reported.get(t.targetId),
    }));
    return { version: this.version, nodes, targets, chains, chainTables: listRecords<ChainTableRecord>(this.db.cluster, 'table') };
  }

  nodes(): NodeRecord[] { return listRecords<NodeRecord>(this.db.cluster, 'node'); }
}

function checkRegistration(r: Registration): void {
  const bad = (detail: string): never => { throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', detail); };
  if (!Number.isSafeInteger(r.nodeId) || r.nodeId < 0) bad(`node id ${r.nodeId}`);
  if (!/^[^\s]+:\d{1,5}$/.test(r.grpcAddress)) bad(`grpc address '${r.grpcAddress}' is not host:port`);
  for (const [name, v] of [['data address', r.dataAddress], ['http address', r.httpAddress], ['hostname', r.hostname]] as const) {
    if (Buffer.byteLength(v) > metaserverLimits.addressBytesMax) bad(`${name} too long`);
  }
  if (Buffer.byteLength(r.grpcAddress) > metaserverLimits.addressBytesMax) bad('grpc address too long');
  if (r.targets.length > limits.targetsPerNodeMax) bad(`at most ${limits.targetsPerNodeMax} targets per node`);
  const seen = new Set<number>();
  for (const t of r.targets) {
    if (!Number.isSafeInteger(t.targetId) || t.targetId < 0) bad(`target id ${t.targetId}`);
    if (t.targetId !== 0 && seen.has(t.targetId)) bad(`target ${t.targetId} listed twice`);
    seen.add(t.targetId);
    if (Buffer.byteLength(t.path) > limits.pathBytesMax) bad('target path too long');
  }
}
