import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClusterMap, type Registration, type RoutingInfo, type TargetRegistration } from '../../metaserver/cluster-map.js';
import type { LocalTargetState } from '../../metaserver/target-states.js';
import { openMetaDb, type MetaDb } from '../../metaserver/db.js';

let dir: string;
let db: ReturnType<typeof openMetaDb>;
let clock = 10_000;
const now = (): number => clock;
const leaseMs = 1_000;

function reg(over: Partial<Registration> = {}): Registration {
  return {
    nodeId: 0, role: 'storageserver', grpcAddress: '127.0.0.1:7001', dataAddress: '127.0.0.1:7002', httpAddress: '127.0.0.1:7003',
    pid: 42, hostname: 'h1', targets: [{ targetId: 0, path: '/t0', capacityBytes: 100, usedBytes: 1 }, { targetId: 0, path: '/t1', capacityBytes: 100, usedBytes: 2 }],
    ...over,
  };
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try { await p; } catch (err) { return (err as { code: string }).code; }
  return 'no error';
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'flyfs-meta-cmap-'));
  db = openMetaDb(dir);
});
afterEach(async () => {
  await db.close();
  await rm(dir, { recursive: true, force: true });
});

describe('cluster map', () => {
  it('assigns node and target ids, one new chain per target in table 1', async () => {
    const map = await ClusterMap.open(db, { leaseMs, now });
    const v0 = map.version;
    const r = await map.register(reg());
    expect(r.nodeId).toBe(1);
    expect(r.targetIds).toEqual([1, 2]);
    expect(r.leaseMs).toBe(leaseMs);
    expect(r.routingVersion).toBeGreaterThan(v0);
    const info = await map.routingInfo();
    expect(info.chains).toEqual([{ chainId: 1, version: 1, targetIds: [1], states: ['serving'] }, { chainId: 2, version: 1, targetIds: [2], states: ['serving'] }]);
    expect(info.chainTables).toEqual([{ tableId: 1, version: 3, chainIds: [1, 2] }]);
    expect(info.targets.map((t) => [t.targetId, t.nodeId, t.chainId, t.state])).toEqual([[1, 1, 1, 'serving'], [2, 1, 2, 'serving']]);
    expect(map.chainTable(1)).toEqual({ version: 3, chains: [1, 2] });

    const second = await map.register(reg({ grpcAddress: '127.0.0.1:8001', targets: [{ targetId: 0, path: '/u', capacityBytes: 1, usedBytes: 0 }] }));
    expect(second.nodeId).toBe(2);
    expect(second.targetIds).toEqual([3]);

    // A first registration sent again (its answer lost) is the same node, same targets, no new chains.
    const retried = await map.register(reg({ grpcAddress: '127.0.0.1:8001', targets: [{ targetId: 0, path: '/u', capacityBytes: 1, usedBytes: 0 }] }));
    expect([retried.nodeId, retried.targetIds]).toEqual([2, [3]]);
    expect((await map.routingInfo()).chains).toHaveLength(3);
    // The same paths on another host are another node.
    const elsewhere = await map.register(reg({ hostname: 'h2', grpcAddress: '127.0.0.1:8002', targets: [{ targetId: 0, path: '/u', capacityBytes: 1, usedBytes: 0 }] }));
    expect([elsewhere.nodeId, elsewhere.targetIds]).toEqual([3, [4]]);

    // Re-registration with known ids keeps the chains and updates addresses.
    const again = await map.register(reg({ nodeId: 1, pid: 43, grpcAddress: '127.0.0.1:9001', targets: [{ targetId: 1, path: '/t0', capacityBytes: 100, usedBytes: 5 }, { targetId: 2, path: '/t1', capacityBytes: 100, usedBytes: 6 }] }));
    expect(again.targetIds).toEqual([1, 2]);
    const after = await map.routingInfo();
    expect(after.chains).toHaveLength(4);
    expect(after.nodes.find((n) => n.nodeId === 1)).toMatchObject({ pid: 43, grpcAddress: '127.0.0.1:9001' });
    expect(after.version).toBeGreaterThan(info.version);
    expect(await codeOf(map.register(reg({ nodeId: 2, targets: [{ targetId: 1, path: '/x', capacityBytes: 0, usedBytes: 0 }] })))).toBe('FLYFS_ERR_INVALID_ARGUMENT');
    expect(await codeOf(map.register(reg({ grpcAddress: 'no-port' })))).toBe('FLYFS_ERR_INVALID_ARGUMENT');
    expect(await codeOf(map.register(reg({ nodeId: -1 })))).toBe('FLYFS_ERR_INVALID_ARGUMENT');
  });

  it('expires leases, renews them by heartbeat, refuses unknown nodes', async () => {
    const map = await ClusterMap.open(db, { leaseMs, now });
    const { nodeId } = await map.register(reg());
    clock += 600;
    const hb = await map.heartbeat(nodeId);
    expect(hb.leaseMs).toBe(leaseMs);
    clock += 900; // 1500 after registration, 900 after the heartbeat
    let info = await map.routingInfo();
    expect(info.nodes[0]!.state).toBe('alive');
    const aliveVersion = info.version;
    clock += 200;
    info = await map.routingInfo();
    expect(info.nodes[0]!.state).toBe('expired');
    // replicas = 1: each target was the last serving one of its chain.
    expect(info.targets.every((t) => t.state === 'lastsrv')).toBe(true);
    expect(info.version).toBeGreaterThan(aliveVersion);
    const expiredVersion = info.version;
    expect((await map.routingInfo()).version).toBe(expiredVersion); // nothing changed, no bump
    await map.heartbeat(nodeId);
    info = await map.routingInfo();
    expect(info.nodes[0]!.state).toBe('alive');
    expect(info.targets.every((t) => t.state === 'serving')).toBe(true); // it holds the newest data
    expect(info.version).toBeGreaterThan(expiredVersion);
    expect(await codeOf(map.heartbeat(77))).toBe('FLYFS_ERR_UNKNOWN_NODE');
  });

  it('keeps membership across a restart, with a fresh lease', async () => {
    const map = await ClusterMap.open(db, { leaseMs, now });
    await map.register(reg());
    const before = await map.routingInfo();
    clock += 5_000;
    await db.close();
    db = openMetaDb(dir);
    const reopened = await ClusterMap.open(db, { leaseMs, now });
    const info = await reopened.routingInfo();
    expect(info.nodes.map((n) => [n.nodeId, n.state])).toEqual([[1, 'alive']]);
    expect(info.chains).toEqual(before.chains);
    expect(info.chainTables).toEqual(before.chainTables);
    expect(info.version).toBeGreaterThan(before.version);
    clock += leaseMs + 1;
    expect((await reopened.routingInfo()).nodes[0]!.state).toBe('expired');
    const next = await reopened.register(reg({ grpcAddress: '127.0.0.1:1234', targets: [] }));
    expect(next.nodeId).toBe(2); // counters persisted
  });
});

describe('cluster map with chains of 3', () => {
  const replicas = 3;
  const node = (i: number, targetIds = [0, 0]): Registration => reg({
    grpcAddress: `127.0.0.1:${7000 + i}`, hostname: `h${i}`,
    targets: targetIds.map((targetId, k) => ({ targetId, path: `/n${i}/t${k}`, capacityBytes: 100, usedBytes: 0 })),
  });
  const report = (targetIds: number[], localState: LocalTargetState): TargetRegistration[] =>
    targetIds.map((targetId) => ({ targetId, path: '', capacityBytes: 100, usedBytes: 7, localState }));
  const chainsOf = (info: RoutingInfo): string[] => info.chains.map((c) => `${c.chainId}@${c.version}: ${c.targetIds.map((t, i) => `${t}:${c.states[i]}`).join(' ')}`);

  const targetsOfNode: Record<number, number[]> = { 1: [1, 2], 2: [3, 4], 3: [5, 6] };
  /** Every node but `silent` heartbeats (up-to-date) within the lease; then the lease runs out. */
  async function outliveLease(map: ClusterMap, silent: number): Promise<void> {
    clock += 600;
    for (const n of [1, 2, 3].filter((x) => x !== silent)) await map.heartbeat(n, report(targetsOfNode[n]!, 'up-to-date'));
    clock += 500; // `silent` last heard 1100 ago
    await map.refresh();
  }

  async function threeNodes(): Promise<ClusterMap> {
    const map = await ClusterMap.open(db, { leaseMs, replicas, now });
    expect((await map.register(node(1))).targetIds).toEqual([1, 2]);
    expect((await map.register(node(2))).targetIds).toEqual([3, 4]);
    const early = await map.routingInfo();
    expect(early.chains).toEqual([]); // two nodes cannot hold a chain of three
    expect(early.targets.map((t) => t.state)).toEqual(['waiting', 'waiting', 'waiting', 'waiting']);
    await map.register(node(3));
    return map;
  }

  it('forms chains of targets on distinct nodes once three nodes have free targets', async () => {
    const map = await threeNodes();
    const info = await map.routingInfo();
    expect(chainsOf(info)).toEqual(['1@1: 1:serving 3:serving 5:serving', '2@1: 4:serving 6:serving 2:serving']);
    expect(info.chainTables).toEqual([{ tableId: 1, version: 3, chainIds: [1, 2] }]);
    expect(info.targets.map((t) => [t.targetId, t.chainId])).toEqual([[1, 1], [2, 2], [3, 1], [4, 2], [5, 1], [6, 2]]);
    for (const c of info.chains) expect(new Set(c.targetIds.map((t) => map.target(t)!.nodeId)).size).toBe(3);
    // A fourth node's targets wait: no two other nodes have free targets to pair with.
    await map.register(node(4));
    expect((await map.routingInfo()).chains).toHaveLength(2);
  });

  it('a node that loses its lease: its targets go offline at the tail; it returns waiting, syncs, serves', async () => {
    const map = await threeNodes();
    const beat = async (nodeId: number, targetIds: number[], s: LocalTargetState = 'up-to-date'): Promise<number> =>
      (await map.heartbeat(nodeId, report(targetIds, s))).routingVersion;
    const v0 = map.version;
    clock += 600;
    await beat(1, [1, 2]);
    await beat(3, [5, 6]);
    expect(map.version).toBe(v0); // heartbeats that change nothing change nothing
    clock += 500; // node 2 last heard 1100 ago
    await map.refresh();
    const failed = await map.routingInfo();
    expect(chainsOf(failed)).toEqual(['1@2: 1:serving 5:serving 3:offline', '2@2: 6:serving 2:serving 4:offline']);
    expect(failed.nodes.map((n) => n.state)).toEqual(['alive', 'expired', 'alive']);
    expect(failed.version).toBeGreaterThan(v0);

    // Node 2 comes back: its targets report online, go waiting, then sync from the tail.
    const v1 = await beat(2, [3, 4], 'online');
    expect(v1).toBeGreaterThan(failed.version);
    expect(chainsOf(await map.routingInfo())).toEqual(['1@4: 1:serving 5:serving 3:syncing', '2@4: 6:serving 2:serving 4:syncing']);
    await beat(2, [3, 4], 'online');
    expect(chainsOf(map.snapshot())).toEqual(['1@4: 1:serving 5:serving 3:syncing', '2@4: 6:serving 2:serving 4:syncing']);
    await beat(2, [3], 'up-to-date'); // target 3 is filled, target 4 not yet
    expect(chainsOf(map.snapshot())).toEqual(['1@5: 1:serving 5:serving 3:serving', '2@4: 6:serving 2:serving 4:syncing']);
    const t3 = map.snapshot().targets.find((t) => t.targetId === 3)!;
    expect(t3).toMatchObject({ state: 'serving', localState: 'up-to-date', usedBytes: 7 });
  });

  it('a returning node shows waiting for one evaluation, then syncing', async () => {
    const map = await threeNodes();
    await outliveLease(map, 3);
    expect(chainsOf(map.snapshot())).toEqual(['1@2: 1:serving 3:serving 5:offline', '2@2: 4:serving 2:serving 6:offline']);
    await map.heartbeat(3, report([5, 6], 'online'));
    expect(chainsOf(map.snapshot())).toEqual(['1@3: 1:serving 3:serving 5:waiting', '2@3: 4:serving 2:serving 6:waiting']);
    await map.refresh(); // the ticker's next evaluation: the predecessors start filling them
    expect(chainsOf(map.snapshot())).toEqual(['1@4: 1:serving 3:serving 5:syncing', '2@4: 4:serving 2:serving 6:syncing']);
  });

  it('keeps ids, chains and target states across a restart; every node gets one fresh lease', async () => {
    const map = await threeNodes();
    await outliveLease(map, 2);
    const before = await map.routingInfo();
    expect(chainsOf(before)).toEqual(['1@2: 1:serving 5:serving 3:offline', '2@2: 6:serving 2:serving 4:offline']);
    await db.close();
    db = openMetaDb(dir);
    const reopened = await ClusterMap.open(db, { leaseMs, replicas, now });
    const info = await reopened.routingInfo();
    expect(info.nodes.map((n) => n.state)).toEqual(['alive', 'alive', 'alive']); // grace, node 2 included
    expect(info.chains).toEqual(before.chains); // no news from anyone yet: every target holds
    expect(info.version).toBeGreaterThan(before.version);
    clock += 600;
    await reopened.heartbeat(1, report([1, 2], 'up-to-date'));
    await reopened.heartbeat(2, report([3, 4], 'online'));
    clock += 500; // node 3 silent for a whole lease after the restart
    await reopened.refresh();
    // Chain 1 lost 5, which stood before the waiting 3: 3 waits one more evaluation for a serving
    // predecessor. In chain 2, 4 already stood behind the serving 2.
    expect(chainsOf(await reopened.routingInfo())).toEqual(['1@5: 1:serving 3:syncing 5:offline', '2@4: 2:serving 4:syncing 6:offline']);
    expect(await reopened.register({ ...node(1, [1, 2]), nodeId: 1 })).toMatchObject({ nodeId: 1, targetIds: [1, 2] });
    expect((await reopened.register(node(9))).nodeId).toBe(4);
  });

  it('writes only state changes: a heartbeat that changes nothing commits nothing', async () => {
    const map = await threeNodes();
    const inner = db.commit;
    let commits = 0;
    (db as { commit: MetaDb['commit'] }).commit = (fn) => { commits++; return inner(fn); };
    for (let i = 0; i < 5; i++) {
      clock += 300;
      for (const [n, ts] of [[1, [1, 2]], [2, [3, 4]], [3, [5, 6]]] as const) await map.heartbeat(n, report([...ts], 'up-to-date'));
      await map.refresh();
    }
    expect(commits).toBe(0);
    clock += 1_100;
    await map.refresh();
    expect(commits).toBe(1); // all three leases ran out: one evaluation, one commit
    expect(map.snapshot().chains.every((c) => c.states.filter((s) => s === 'lastsrv').length === 1)).toBe(true);
  });
});
