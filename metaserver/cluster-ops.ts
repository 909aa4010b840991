// The cluster map's mutations and the records they keep in the `cluster` table. Each mutation is
// `(t, args) => result`: it touches state only through `t` and is deterministic in (tables, args)
// — lease views, local states and times come in as arguments (see tables.ts). ClusterMap runs
// them inside `db.commit`; whatever stands behind commit (LMDB today, a replicated log next)
// replays the same writes.
import { flyfsError } from '../common/errors.js';
import { limits } from '../common/limits.js';
import { nextCounter, type MetaTables, type Table } from './tables.js';
import { newChain, stepChain, type ChainState, type LocalTargetState, type PublicTargetState } from './target-states.js';

export type NodeRoleName = 'metaserver' | 'storageserver' | 'kvcache' | 'unspecified';

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
  /** 0 while the target is in no chain (waiting for targets on enough other nodes). */
  readonly chainId: number;
  readonly path: string;
  readonly capacityBytes: number;
  readonly usedBytes: number;
  /** Taken offline by an operator: reported offline to the rules whatever its node says. */
  readonly adminOffline?: boolean;
}
export interface ChainRecord {
  readonly chainId: number;
  /** Goes up on every change of membership, order or target state. */
  readonly version: number;
  /** Head first. */
  readonly targetIds: readonly number[];
  /** Public state of each target, in the order of targetIds. */
  readonly states: readonly PublicTargetState[];
}
export interface ChainTableRecord { readonly tableId: number; readonly version: number; readonly chainIds: readonly number[] }

export interface TargetRegistration {
  targetId: number; path: string; capacityBytes: number; usedBytes: number;
  /** What the storage server reports; undefined = not said (an older server). */
  localState?: LocalTargetState;
}
export interface Registration {
  nodeId: number; role: NodeRoleName; grpcAddress: string; dataAddress: string; httpAddress: string;
  pid: number; hostname: string; targets: readonly TargetRegistration[];
}

export const defaultChainTableId = 1;

// ---- reads (also used on committed state outside mutations)

type Reader = Pick<Table, 'get' | 'getRange'>;

export function listRecords<T>(cluster: Reader, kind: 'node' | 'target' | 'chain' | 'table'): T[] {
  return [...cluster.getRange({ start: [kind, 0], end: [kind, Number.MAX_SAFE_INTEGER] })].map((e) => e.value as T);
}

export function routingVersionOf(cluster: Reader): number { return (cluster.get('version') as number | undefined) ?? 0; }

/** A chain record as stored, filling the states of records written before states existed. */
export function readChain(cluster: Reader, chainId: number): ChainRecord | undefined {
  const c = cluster.get(['chain', chainId]) as ChainRecord | undefined;
  return c === undefined ? undefined : withStates(c);
}

export function withStates(c: ChainRecord): ChainRecord {
  return c.states !== undefined && c.states.length === c.targetIds.length ? c : { ...c, states: c.targetIds.map(() => 'serving') };
}

export function chainState(c: ChainRecord): ChainState {
  return { chainId: c.chainId, version: c.version, members: c.targetIds.map((targetId, i) => ({ targetId, state: c.states[i]! })) };
}

function chainRecord(c: ChainState): ChainRecord {
  return { chainId: c.chainId, version: c.version, targetIds: c.members.map((m) => m.targetId), states: c.members.map((m) => m.state) };
}

// ---- mutations

/** Creates chain table 1 when missing and bumps the routing version (a new manager term: what
 * clients cached may be stale). */
export function openClusterMap(t: MetaTables): void {
  if (t.cluster.get(['table', defaultChainTableId]) === undefined) {
    t.cluster.putSync(['table', defaultChainTableId], { tableId: defaultChainTableId, version: 1, chainIds: [] } satisfies ChainTableRecord);
  }
  bumpRoutingVersion(t);
}

export function bumpRoutingVersion(t: MetaTables): number {
  const v = routingVersionOf(t.cluster) + 1;
  t.cluster.putSync('version', v);
  return v;
}

/** Registers (or re-registers) a node and its targets; returns the ids assigned. */
export function registerNode(t: MetaTables, r: Registration): { nodeId: number; targetIds: number[] } {
  let nodeId = r.nodeId;
  if (nodeId === 0) {
    // A first registration whose answer was lost (the head changed under it, the entry still
    // committed) comes again with no id: the same host's targets at the same paths are that node.
    const known = nodeHoldingPaths(t, r);
    if (known !== undefined) {
      nodeId = known;
    } else {
      if (listRecords(t.cluster, 'node').length >= limits.nodesMax) throw flyfsError('FLYFS_ERR_LIMIT', `at most ${limits.nodesMax} nodes`);
      nodeId = nextCounter(t, 'node');
    }
  } else {
    // A known id from a node whose metaserver lost its data: take it, and skip past it.
    skipCounterPast(t, 'node', nodeId);
  }
  const node: NodeRecord = {
    nodeId, role: r.role, grpcAddress: r.grpcAddress, dataAddress: r.dataAddress, httpAddress: r.httpAddress, pid: r.pid, hostname: r.hostname,
  };
  t.cluster.putSync(['node', nodeId], node);
  const targetIds = r.targets.map((target) => registerTarget(t, nodeId, target));
  bumpRoutingVersion(t);
  return { nodeId, targetIds };
}

/** The node of the same role and host that holds a target at one of `r`'s target paths. */
function nodeHoldingPaths(t: MetaTables, r: Registration): number | undefined {
  const paths = new Set(r.targets.map((x) => x.path).filter((p) => p !== ''));
  if (paths.size === 0) return undefined;
  for (const target of listRecords<TargetRecord>(t.cluster, 'target')) {
    if (!paths.has(target.path)) continue;
    const node = t.cluster.get(['node', target.nodeId]) as NodeRecord | undefined;
    if (node !== undefined && node.role === r.role && node.hostname === r.hostname) return node.nodeId;
  }
  return undefined;
}

/** Marks a target offline by an operator, or clears the mark; false when nothing changed. */
export function setTargetAdmin(t: MetaTables, targetId: number, offline: boolean): boolean {
  const target = t.cluster.get(['target', targetId]) as TargetRecord | undefined;
  if (target === undefined) throw flyfsError('FLYFS_ERR_NOT_FOUND', `target ${targetId}`);
  if ((target.adminOffline ?? false) === offline) return false;
  t.cluster.putSync(['target', targetId], { ...target, adminOffline: offline });
  bumpRoutingVersion(t);
  return true;
}

function skipCounterPast(t: MetaTables, name: string, id: number): void {
  if (((t.counters.get(name) as number | undefined) ?? 0) < id) t.counters.putSync(name, id);
}

function registerTarget(t: MetaTables, nodeId: number, reg: TargetRegistration): number {
  const usage = { path: reg.path, capacityBytes: reg.capacityBytes, usedBytes: reg.usedBytes };
  if (reg.targetId !== 0) {
    const known = t.cluster.get(['target', reg.targetId]) as TargetRecord | undefined;
    if (known !== undefined) {
      if (known.nodeId !== nodeId) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `target ${reg.targetId} belongs to node ${known.nodeId}`);
      t.cluster.putSync(['target', reg.targetId], { ...known, ...usage });
      return reg.targetId;
    }
    skipCounterPast(t, 'target', reg.targetId);
  }
  if (reg.targetId === 0 && reg.path !== '') {
    // The same node's target at the same path (a registration sent again): the same target.
    const same = listRecords<TargetRecord>(t.cluster, 'target').find((x) => x.nodeId === nodeId && x.path === reg.path);
    if (same !== undefined) {
      t.cluster.putSync(['target', same.targetId], { ...same, ...usage });
      return same.targetId;
    }
  }
  const targetId = reg.targetId !== 0 ? reg.targetId : nextCounter(t, 'target');
  t.cluster.putSync(['target', targetId], { targetId, nodeId, chainId: 0, ...usage } satisfies TargetRecord);
  return targetId;
}

/**
 * Groups free targets (in no chain) into chains of `replicas` targets on distinct nodes: each
 * chain takes one target from each of the `replicas` nodes with the most free targets (ties to
 * the lower node id), the lowest target id of each; the k-th chain of a plan is rotated by k so
 * that heads (which take every write) spread over the nodes. Pure, so the same free targets
 * always give the same chains.
 */
export function planChains(free: ReadonlyArray<{ targetId: number; nodeId: number }>, replicas: number): number[][] {
  const byNode = new Map<number, number[]>();
  for (const f of [...free].sort((a, b) => a.targetId - b.targetId)) {
    const list = byNode.get(f.nodeId) ?? [];
    list.push(f.targetId);
    byNode.set(f.nodeId, list);
  }
  const chains: number[][] = [];
  for (;;) {
    const nodes = [...byNode.entries()].filter(([, ts]) => ts.length > 0).sort((a, b) => b[1].length - a[1].length || a[0] - b[0]);
    if (nodes.length < replicas) return chains;
    const members = nodes.slice(0, replicas).map(([, ts]) => ts.shift()!);
    const k = chains.length % replicas;
    chains.push([...members.slice(k), ...members.slice(0, k)]);
  }
}

function freeTargets(cluster: Reader, aliveNodeIds: ReadonlySet<number>): TargetRecord[] {
  return listRecords<TargetRecord>(cluster, 'target').filter((x) => x.chainId === 0 && aliveNodeIds.has(x.nodeId));
}

/** Forms the chains planChains gives from the free targets of live nodes, appending them to
 * chain table 1 (its version goes up once per chain). Returns the new chain ids. */
export function formChains(t: MetaTables, args: { replicas: number; aliveNodeIds: readonly number[] }): number[] {
  const plan = planChains(freeTargets(t.cluster, new Set(args.aliveNodeIds)), args.replicas);
  const ids: number[] = [];
  for (const targetIds of plan) {
    const chainId = nextCounter(t, 'chain');
    t.cluster.putSync(['chain', chainId], chainRecord(newChain(chainId, targetIds)));
    for (const targetId of targetIds) {
      const rec = t.cluster.get(['target', targetId]) as TargetRecord;
      t.cluster.putSync(['target', targetId], { ...rec, chainId });
    }
    const table = t.cluster.get(['table', defaultChainTableId]) as ChainTableRecord;
    t.cluster.putSync(['table', defaultChainTableId], { ...table, version: table.version + 1, chainIds: [...table.chainIds, chainId] });
    ids.push(chainId);
  }
  return ids;
}

/** Chains whose next step differs from what is stored, as they would be written. */
export function chainSteps(cluster: Reader, localStates: ReadonlyMap<number, LocalTargetState>): ChainRecord[] {
  const out: ChainRecord[] = [];
  for (const c of listRecords<ChainRecord>(cluster, 'chain')) {
    const before = chainState(withStates(c));
    const after = stepChain(before, localStates);
    if (after !== before) out.push(chainRecord(after));
  }
  return out;
}

export interface EvaluateArgs {
  readonly replicas: number;
  readonly aliveNodeIds: readonly number[];
  /** Local state per target id; a target left out holds its public state. */
  readonly localStates: ReadonlyArray<readonly [number, LocalTargetState]>;
  /** Some node's published alive/expired state changed. */
  readonly nodesChanged: boolean;
}

/** Would evaluate() write anything? Reads only, so it can run on committed state. */
export function evaluationPending(cluster: Reader, args: EvaluateArgs): boolean {
  if (args.nodesChanged) return true;
  if (planChains(freeTargets(cluster, new Set(args.aliveNodeIds)), args.replicas).length > 0) return true;
  return chainSteps(cluster, new Map(args.localStates)).length > 0;
}

/** One evaluation of the cluster map: forms chains, steps every chain's target states, and bumps
 * the routing version when anything changed. Returns the chains written. */
export function evaluate(t: MetaTables, args: EvaluateArgs): { formed: number[]; stepped: number[] } {
  const formed = formChains(t, args);
  const steps = chainSteps(t.cluster, new Map(args.localStates));
  for (const c of steps) t.cluster.putSync(['chain', c.chainId], c);
  const stepped = steps.map((c) => c.chainId);
  if (args.nodesChanged || formed.length > 0 || stepped.length > 0) bumpRoutingVersion(t);
  return { formed, stepped };
}
