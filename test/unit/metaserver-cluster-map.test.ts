import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClusterMap, type Registration } from '../../metaserver/cluster-map.js';
import { openMetaDb, type MetaDb } from '../../metaserver/db.js';

let dir: string;
let db: MetaDb;
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
    expect(info.chains).toEqual([{ chainId: 1, version: 1, targetIds: [1] }, { chainId: 2, version: 1, targetIds: [2] }]);
    expect(info.chainTables).toEqual([{ tableId: 1, version: 3, chainIds: [1, 2] }]);
    expect(info.targets.map((t) => [t.targetId, t.nodeId, t.chainId, t.state])).toEqual([[1, 1, 1, 'serving'], [2, 1, 2, 'serving']]);
    expect(map.chainTable(1)).toEqual({ version: 3, chains: [1, 2] });

    const second = await map.register(reg({ grpcAddress: '127.0.0.1:8001', targets: [{ targetId: 0, path: '/u', capacityBytes: 1, usedBytes: 0 }] }));
    expect(second.nodeId).toBe(2);
    expect(second.targetIds).toEqual([3]);

    // Re-registration with known ids keeps the chains and updates addresses.
    const again = await map.register(reg({ nodeId: 1, pid: 43, grpcAddress: '127.0.0.1:9001', targets: [{ targetId: 1, path: '/t0', capacityBytes: 100, usedBytes: 5 }, { targetId: 2, path: '/t1', capacityBytes: 100, usedBytes: 6 }] }));
    expect(again.targetIds).toEqual([1, 2]);
    const after = await map.routingInfo();
    expect(after.chains).toHaveLength(3);
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
    expect(info.targets.every((t) => t.state === 'offline')).toBe(true);
    expect(info.version).toBeGreaterThan(aliveVersion);
    const expiredVersion = info.version;
    expect((await map.routingInfo()).version).toBe(expiredVersion); // nothing changed, no bump
    await map.heartbeat(nodeId);
    info = await map.routingInfo();
    expect(info.nodes[0]!.state).toBe('alive');
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
