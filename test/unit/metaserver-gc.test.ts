import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bindServer, createServer, loadProtos, shutdownServer, unary, grpc } from '../../common/grpc.js';
import { flyfsError } from '../../common/errors.js';
import { ClusterMap } from '../../metaserver/cluster-map.js';
import { grpcChunkRemover } from '../../metaserver/chunk-remover.js';
import { GcRunner } from '../../metaserver/gc-runner.js';
import { MetaStore } from '../../metaserver/store.js';
import { OpenFlags, type ChunkRemover } from '../../metaserver/types.js';
import type { RemoveChunksRequest__Output } from '../../proto/gen/flyfs/v1/RemoveChunksRequest.js';

let dir: string;
let store: MetaStore;
let clock = 1_000;
const now = (): number => clock;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'flyfs-meta-gc-'));
  store = await MetaStore.open({ dataDir: dir, rootChunkSizeBytes: 1 << 20, rootStripe: 2, now, chainTables: { chainTable: () => ({ version: 1, chains: [1, 2, 3] }) } });
});
afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

describe('gc runner', () => {
  it('retries failed removals later and drops entries once every chain is clean', async () => {
    const f = await store.open('/f', { flags: OpenFlags.write | OpenFlags.create });
    await store.closeFile({ inodeId: f.inode.inodeId, sessionId: f.sessionId, length: 0, lengthSet: false });
    await store.unlink('/f');
    const chains = f.inode.layout!.chains;
    const calls: number[] = [];
    let failing = new Set<number>([chains[0]!]);
    const remover: ChunkRemover = async ({ chainId, inodeId, fromIndex }) => {
      expect(inodeId).toBe(f.inode.inodeId);
      expect(fromIndex).toBe(0);
      calls.push(chainId);
      if (failing.has(chainId)) throw flyfsError('FLYFS_ERR_UNAVAILABLE', 'down');
    };
    const gc = new GcRunner({ store, remover, intervalMs: 100, now });
    expect(await gc.runOnce()).toBe(0);
    expect(calls.sort()).toEqual([...chains].sort());
    const left = store.gcEntries(10);
    expect(left).toHaveLength(1);
    expect(left[0]!.chains).toEqual([chains[0]]);
    expect(left[0]!.attempts).toBe(1);
    calls.length = 0;
    expect(await gc.runOnce()).toBe(0); // backing off: not due yet
    expect(calls).toEqual([]);
    failing = new Set();
    clock += 1_000;
    expect(await gc.runOnce()).toBe(1);
    expect(calls).toEqual([chains[0]]);
    expect(store.gcCount()).toBe(0);
  });

  it('sends Storage.RemoveChunks to the head node of each chain over gRPC', async () => {
    const received: RemoveChunksRequest__Output[] = [];
    let down = true;
    const server = createServer();
    const protos = loadProtos();
    server.addService(protos.flyfs.v1.Storage.service, {
      RemoveChunks: unary<RemoveChunksRequest__Output, { removed: number }>(async (req) => {
        if (down) throw flyfsError('FLYFS_ERR_NOT_SERVING');
        received.push(req);
        return { removed: 3 };
      }),
      WriteChunk: (_c: unknown, cb: grpc.sendUnaryData<unknown>) => cb({ code: grpc.status.UNIMPLEMENTED }),
      ReadChunk: (_c: unknown, cb: grpc.sendUnaryData<unknown>) => cb({ code: grpc.status.UNIMPLEMENTED }),
      StatChunk: (_c: unknown, cb: grpc.sendUnaryData<unknown>) => cb({ code: grpc.status.UNIMPLEMENTED }),
    });
    const port = await bindServer(server, '127.0.0.1', 0);
    const map = await ClusterMap.open(store.db, { leaseMs: 60_000, now });
    store.setChainTables(map);
    await map.register({
      nodeId: 0, role: 'storageserver', grpcAddress: `127.0.0.1:${port}`, dataAddress: '', httpAddress: '', pid: 1, hostname: 'h',
      targets: [{ targetId: 0, path: '/a', capacityBytes: 0, usedBytes: 0 }, { targetId: 0, path: '/b', capacityBytes: 0, usedBytes: 0 }],
    });
    const remover = grpcChunkRemover(map);
    try {
      const f = await store.open('/g', { flags: OpenFlags.write | OpenFlags.create });
      expect([...f.inode.layout!.chains].sort()).toEqual([1, 2]);
      await store.closeFile({ inodeId: f.inode.inodeId, sessionId: f.sessionId, length: 0, lengthSet: false });
      await store.unlink('/g');
      const gc = new GcRunner({ store, remover: remover.remove, intervalMs: 10, now });
      expect(await gc.runOnce()).toBe(0);
      expect(store.gcEntries(10)[0]!.chains).toHaveLength(2);
      down = false;
      clock += 10_000;
      expect(await gc.runOnce()).toBe(1);
      expect(received.map((r) => [r.chainId, r.chainVersion, r.inodeId, r.fromIndex]).sort()).toEqual([
        [1, 1, f.inode.inodeId, 0], [2, 1, f.inode.inodeId, 0],
      ]);
      expect(store.gcCount()).toBe(0);
    } finally {
      remover.close();
      await shutdownServer(server);
    }
  });
});
