// The cluster map (cluster-manager role): nodes, leases, targets, chains and chain tables.
// Membership is persisted in the store's LMDB; leases live in memory and restart as one fresh
// lease after a metaserver restart. The clock is injected so tests need not sleep.
import { flyfsError } from '../common/errors.js';
import { limits } from '../common/limits.js';
import { metaserverLimits } from './config.js';
import type { MetaDb } from './db.js';
import { nextCounter } from './tables.js';
import type { ChainTableSource } from './types.js';

export type NodeRoleName = 'metaserver' | 'storageserver' | 'kvcache' | 'unspecified';
export type NodeStateName = 'alive' | 'expired';
export type TargetStateName = 'serving' | 'syncing' | 'waiting' | 'lastsrv' | 'offline';

export interface NodeRecord {
  readonly nodeId: number;
  readonly role: NodeRoleName;
  readonly grpcAddress: string;
  readonly dataAddress: string;
  readonly httpAddress: string;
  readonly pid: number;
  readonly hostname: string;
}
export interface TargetRecord {
  readonly targetId: number;
  readonly nodeId: number;
  readonly chainId: number;
  readonly path: string;
  readonly capacityBytes: number;
  readonly usedBytes: number;
}
export interface ChainRecord { readonly chainId: number; readonly version: number; readonly targetIds: readonly number[] }
export interface ChainTableRecord { readonly tableId: number; readonly version: number; readonly chainIds: readonly number[] }

export interface TargetRegistration { targetId: number; path: string; capacityBytes: number; usedBytes: number }
export interface Registration {
  nodeId: number; role: NodeRoleName; grpcAddress: string; dataAddress: string; httpAddress: string;
  pid: number; hostname: string; targets: readonly TargetRegistration[];
}

export interface NodeView extends NodeRecord { readonly state: NodeStateName; readonly leaseExpiresMs: number }
export interface TargetView extends TargetRecord { readonly state: TargetStateName }
export interface RoutingInfo {
  readonly version: number;
  readonly nodes: readonly NodeView[];
  readonly targets: readonly TargetView[];
  readonly chains: readonly ChainRecord[];
  readonly chainTables: readonly ChainTableRecord[];
}

const DEFAULT_TABLE = 1;

export class ClusterMap implements ChainTableSource {
  private readonly leases = new Map<number, number>();
  /** Node states as last published; a difference from the clock's view bumps the version. */
  private readonly published = new Map<number, NodeStateName>();

  private constructor(private readonly db: MetaDb, readonly leaseMs: number, private readonly now: () => number) {}

  static async open(db: MetaDb, options: { leaseMs: number; now?: () => number }): Promise<ClusterMap> {
    const map = new ClusterMap(db, options.leaseMs, options.now ?? Date.now);
    await db.commit(() => {
      if (db.cluster.get(['table', DEFAULT_TABLE]) === undefined) {
        db.cluster.putSync(['table', DEFAULT_TABLE], { tableId: DEFAULT_TABLE, version: 1, chainIds: [] } satisfies ChainTableRecord);
      }
      map.bumpVersion(); // leases restart: what clients cached may be stale
    });
    const t = map.now();
    for (const n of map.nodes()) { map.leases.set(n.nodeId, t + map.leaseMs); map.published.set(n.nodeId, 'alive'); }
    return map;
  }

  get version(): number { return (this.db.cluster.get('version') as number | undefined) ?? 0; }

  chainTable(tableId: number): { version: number; chains: readonly number[] } | undefined {
    const t = this.db.cluster.get(['table', tableId]) as ChainTableRecord | undefined;
    return t === undefined ? undefined : { version: t.version, chains: t.chainIds };
  }

  chain(chainId: number): ChainRecord | undefined { return this.db.cluster.get(['chain', chainId]) as ChainRecord | undefined; }
  target(targetId: number): TargetRecord | undefined { return this.db.cluster.get(['target', targetId]) as TargetRecord | undefined; }
  node(nodeId: number): NodeRecord | undefined { return this.db.cluster.get(['node', nodeId]) as NodeRecord | undefined; }

  nodeState(nodeId: number): NodeStateName {
    const expires = this.leases.get(nodeId);
    return expires !== undefined && expires > this.now() ? 'alive' : 'expired';
  }

  /** Registers a node and its targets; returns the ids assigned. */
  async register(r: Registration): Promise<{ nodeId: number; targetIds: number[]; leaseMs: number; routingVersion: number }> {
    checkRegistration(r);
    const result = await this.db.commit(() => {
      let nodeId = r.nodeId;
      if (nodeId === 0) {
        if (this.count('node') >= limits.nodesMax) throw flyfsError('FLYFS_ERR_LIMIT', `at most ${limits.nodesMax} nodes`);
        nodeId = nextCounter(this.db, 'node');
      } else {
        // A known id from a node whose metaserver lost its data: take it, and skip past it.
        if ((this.db.counters.get('node') as number | undefined ?? 0) < nodeId) this.db.counters.putSync('node', nodeId);
      }
      const node: NodeRecord = {
        nodeId, role: r.role, grpcAddress: r.grpcAddress, dataAddress: r.dataAddress, httpAddress: r.httpAddress, pid: r.pid, hostname: r.hostname,
      };
      this.db.cluster.putSync(['node', nodeId], node);
      const targetIds = r.targets.map((t) => this.registerTarget(nodeId, t));
      this.bumpVersion();
      return { nodeId, targetIds };
    });
    this.leases.set(result.nodeId, this.now() + this.leaseMs);
    this.published.set(result.nodeId, 'alive');
    return { ...result, leaseMs: this.leaseMs, routingVersion: this.version };
  }

  private registerTarget(nodeId: number, t: TargetRegistration): number {
    if (t.targetId !== 0) {
      const known = this.target(t.targetId);
      if (known !== undefined) {
        if (known.nodeId !== nodeId) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `target ${t.targetId} belongs to node ${known.nodeId}`);
        this.db.cluster.putSync(['target', t.targetId], { ...known, path: t.path, capacityBytes: t.capacityBytes, usedBytes: t.usedBytes });
        return t.targetId;
      }
      if ((this.db.counters.get('target') as number | undefined ?? 0) < t.targetId) this.db.counters.putSync('target', t.targetId);
    }
    const targetId = t.targetId !== 0 ? t.targetId : nextCounter(this.db, 'target');
    // Until CRAQ lands every target is a chain of its own (replicas = 1), appended to table 1.
    const chainId = nextCounter(this.db, 'chain');
    this.db.cluster.putSync(['chain', chainId], { chainId, version: 1, targetIds: [targetId] } satisfies ChainRecord);
    const table = this.db.cluster.get(['table', DEFAULT_TABLE]) as ChainTableRecord;
    this.db.cluster.putSync(['table', DEFAULT_TABLE], { ...table, version: table.version + 1, chainIds: [...table.chainIds, chainId] });
    const rec: TargetRecord = { targetId, nodeId, chainId, path: t.path, capacityBytes: t.capacityBytes, usedBytes: t.usedBytes };
    this.db.cluster.putSync(['target', targetId], rec);
    return targetId;
  }

  /** Renews a node's lease; an unknown node must register again. */
  async heartbeat(nodeId: number, targets: readonly TargetRegistration[] = []): Promise<{ leaseMs: number; routingVersion: number }> {
    if (this.node(nodeId) === undefined) throw flyfsError('FLYFS_ERR_UNKNOWN_NODE', `node ${nodeId}`);
    this.leases.set(nodeId, this.now() + this.leaseMs);
    const usage = targets.filter((t) => this.target(t.targetId)?.nodeId === nodeId);
    if (usage.length > 0) {
      await this.db.commit(() => {
        for (const t of usage) {
          const known = this.target(t.targetId);
          if (known !== undefined) this.db.cluster.putSync(['target', t.targetId], { ...known, capacityBytes: t.capacityBytes, usedBytes: t.usedBytes });
        }
      });
    }
    await this.refresh();
    return { leaseMs: this.leaseMs, routingVersion: this.version };
  }

  /** Publishes lease expiries and renewals: bumps the version when any node's state changed. */
  async refresh(): Promise<void> {
    const changed: Array<[number, NodeStateName]> = [];
    for (const n of this.nodes()) {
      const s = this.nodeState(n.nodeId);
      if (this.published.get(n.nodeId) !== s) changed.push([n.nodeId, s]);
    }
    if (changed.length === 0) return;
    for (const [id, s] of changed) this.published.set(id, s);
    await this.db.commit(() => this.bumpVersion());
  }

  async routingInfo(): Promise<RoutingInfo> {
    await this.refresh();
    return this.snapshot();
  }

  /** The map as it stands, without publishing state changes. */
  snapshot(): RoutingInfo {
    const nodes = this.nodes().map((n): NodeView => ({ ...n, state: this.nodeState(n.nodeId), leaseExpiresMs: this.leases.get(n.nodeId) ?? 0 }));
    const targets = this.list<TargetRecord>('target').map((t): TargetView => ({
      ...t, state: this.nodeState(t.nodeId) === 'alive' ? 'serving' : 'offline',
    }));
    return { version: this.version, nodes, targets, chains: this.list<ChainRecord>('chain'), chainTables: this.list<ChainTableRecord>('table') };
  }

  nodes(): NodeRecord[] { return this.list<NodeRecord>('node'); }

  private list<T>(kind: string): T[] {
    return [...this.db.cluster.getRange({ start: [kind, 0], end: [kind, Number.MAX_SAFE_INTEGER] })].map((e) => e.value as T);
  }

  private count(kind: string): number { return this.list(kind).length; }

  private bumpVersion(): void {
    this.db.cluster.putSync('version', this.version + 1);
  }
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
