// End to end: a real storage server in-process against a fake Management service, driven over
// both chunk transports.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { flyfsError } from '../../common/errors.js';
import { limits } from '../../common/limits.js';
import { bindServer, createServer, loadProtos, shutdownServer, unary, type grpc } from '../../common/grpc.js';
import { silentLogger } from '../../common/log.js';
import type { ManagementHandlers } from '../../proto/gen/flyfs/v1/Management.js';
import type { RegisterNodeRequest__Output } from '../../proto/gen/flyfs/v1/RegisterNodeRequest.js';
import { createChunkTransport, type ChunkTransport, type StorageEndpoint, type TransportKind } from '../../client/chunk-transport.js';
import { resolveStorageServerConfig } from '../../storageserver/config.js';
import { startStorageServer, type RunningStorageServer } from '../../storageserver/main.js';

const LEASE_MS = 600;
const CHUNK = 64 * 1024;

/** A fake cluster manager: one chain per registered target (chain id = 100 + target id). */
class FakeManager {
  answerHeartbeats = true;
  forgetNode = false;
  routingVersion = 1;
  chainVersion = 1;
  registrations: RegisterNodeRequest__Output[] = [];
  heartbeats = 0;
  private nodeId = 0;
  private targetIds: number[] = [];
  server: grpc.Server = createServer();
  address = '';

  async start(): Promise<void> {
    const handlers: ManagementHandlers = {
      RegisterNode: unary(async (req) => {
        this.registrations.push(req);
        this.forgetNode = false;
        this.nodeId = req.nodeId || 7;
        let next = 1;
        this.targetIds = req.targets.map((t) => t.targetId || next++);
        this.routingVersion++;
        return { nodeId: this.nodeId, targetIds: this.targetIds, leaseMs: LEASE_MS, routingVersion: this.routingVersion };
      }),
      Heartbeat: unary(async (req) => {
        if (!this.answerHeartbeats) await new Promise(() => { /* never answers: the call times out */ });
        if (this.forgetNode || req.nodeId !== this.nodeId) throw flyfsError('FLYFS_ERR_UNKNOWN_NODE', `node ${req.nodeId}`);
        this.heartbeats++;
        return { leaseMs: LEASE_MS, routingVersion: this.routingVersion };
      }),
      // The storage server never calls it; a fake manager refuses it.
      SetTargetAdmin: unary(async () => { throw flyfsError('FLYFS_ERR_UNAVAILABLE', 'not in this fake manager'); }),
      GetRoutingInfo: unary(async () => ({
        version: this.routingVersion,
        nodes: [],
        targets: this.targetIds.map((t) => ({ targetId: t, nodeId: this.nodeId, state: 'TARGET_STATE_SERVING' as const, chainId: 100 + t })),
        chains: this.targetIds.map((t) => ({ chainId: 100 + t, version: this.chainVersion, targetIds: [t] })),
        chainTables: [{ tableId: 1, version: this.routingVersion, chainIds: this.targetIds.map((t) => 100 + t) }],
      })),
    };
    this.server.addService(loadProtos().flyfs.v1.Management.service, handlers);
    this.address = `127.0.0.1:${await bindServer(this.server, '127.0.0.1', 0)}`;
  }
}

async function eventually(check: () => Promise<void> | void, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try { await check(); return; } catch (err) { if (Date.now() > until) throw err; }
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('storage server end to end', () => {
  let dir: string;
  const mgr = new FakeManager();
  let server: RunningStorageServer;
  let endpoint: StorageEndpoint;
  const transports: Record<TransportKind, ChunkTransport> = { framed: createChunkTransport('framed'), grpc: createChunkTransport('grpc'), 'grpc-stream': createChunkTransport('grpc-stream') };
  const config = () => resolveStorageServerConfig({ dataDir: dir, mgmtAddresses: [mgr.address], targetCount: 2 });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'flyfs-storage-e2e-'));
    await mgr.start();
    server = await startStorageServer(config(), { logger: silentLogger() });
    endpoint = { nodeId: server.nodeId, grpcAddress: server.grpcAddress, dataAddress: server.dataAddress };
  });
  afterAll(async () => {
    transports.framed.close();
    transports.grpc.close();
    await server?.stop();
    await shutdownServer(mgr.server, 100);
    rmSync(dir, { recursive: true, force: true });
  });

  it('registers and persists its node and target ids', () => {
    expect(server.nodeId).toBe(7);
    expect(JSON.parse(readFileSync(join(dir, 'node.json'), 'utf8'))).toEqual({ nodeId: 7 });
    expect(JSON.parse(readFileSync(join(dir, 'target-1', 'target.json'), 'utf8'))).toMatchObject({ targetId: 2 });
    expect(mgr.registrations[0]).toMatchObject({ nodeId: 0, role: 'NODE_ROLE_STORAGESERVER', dataAddress: server.dataAddress });
  });

  it.each(['framed', 'grpc', 'grpc-stream'] as const)('writes, reads and removes chunks over %s', async (kind) => {
    const t = transports[kind];
    const inode = { framed: 1000, grpc: 2000, 'grpc-stream': 3000 }[kind];
    const data = Buffer.alloc(CHUNK, 0).map((_, i) => i % 251);
    const w = await t.writeChunk(endpoint, { chainId: 101, chainVersion: 1, inodeId: inode, index: 0, offset: 0, data, chunkSizeBytes: CHUNK, clientId: `c-${kind}`, requestId: 1 });
    expect(w).toEqual({ chunkLength: CHUNK, version: 1 });
    const w2 = await t.writeChunk(endpoint, { chainId: 101, chainVersion: 1, inodeId: inode, index: 0, offset: 10, data: Buffer.from('patch'), chunkSizeBytes: CHUNK, clientId: `c-${kind}`, requestId: 2 });
    expect(w2).toEqual({ chunkLength: CHUNK, version: 2 });
    const r = await t.readChunk(endpoint, { chainId: 101, chainVersion: 1, inodeId: inode, index: 0, offset: 8, length: 9 });
    expect(r.exists).toBe(true);
    expect(r.chunkLength).toBe(CHUNK);
    expect(r.data).toEqual(Buffer.concat([data.subarray(8, 10), Buffer.from('patch'), data.subarray(15, 17)]));
    const tail = await t.readChunk(endpoint, { chainId: 101, chainVersion: 1, inodeId: inode, index: 0, offset: CHUNK - 4, length: 100 });
    expect(tail.data.length).toBe(4);
    const missing = await t.readChunk(endpoint, { chainId: 102, chainVersion: 1, inodeId: inode, index: 0, offset: 0, length: 10 });
    expect(missing).toEqual({ data: Buffer.alloc(0), chunkLength: 0, exists: false });
    // Many concurrent callers over the same connections.
    await Promise.all(Array.from({ length: 40 }, (_, i) => t.writeChunk(endpoint, {
      chainId: 102, chainVersion: 1, inodeId: inode, index: i, offset: 0, data: Buffer.alloc(100, i), chunkSizeBytes: CHUNK, clientId: `c-${kind}`, requestId: 10 + i,
    })));
    const reads = await Promise.all(Array.from({ length: 40 }, (_, i) => t.readChunk(endpoint, { chainId: 102, chainVersion: 1, inodeId: inode, index: i, offset: 0, length: 100 })));
    reads.forEach((rr, i) => expect(rr.data).toEqual(Buffer.alloc(100, i)));
    expect(await t.removeChunks(endpoint, { chainId: 102, chainVersion: 1, inodeId: inode, fromIndex: 20 })).toEqual({ removed: 20 });
    await expect(t.writeChunk(endpoint, { chainId: 101, chainVersion: 1, inodeId: inode, index: 1, offset: CHUNK, data: Buffer.from('x'), chunkSizeBytes: CHUNK, clientId: `c-${kind}`, requestId: 99 }))
      .rejects.toMatchObject({ code: 'FLYFS_ERR_CHUNK_RANGE' });
  });

  it.each(['framed', 'grpc', 'grpc-stream'] as const)('refuses a stale chain version and an unknown chain over %s', async (kind) => {
    const t = transports[kind];
    await expect(t.readChunk(endpoint, { chainId: 101, chainVersion: 2, inodeId: 1, index: 0, offset: 0, length: 1 })).rejects.toMatchObject({ code: 'FLYFS_ERR_STALE_CHAIN_VERSION' });
    await expect(t.readChunk(endpoint, { chainId: 999, chainVersion: 1, inodeId: 1, index: 0, offset: 0, length: 1 })).rejects.toMatchObject({ code: 'FLYFS_ERR_UNKNOWN_CHAIN' });
  });

  it('reads many chunks of one server in one framed request, each answering for itself', async () => {
    const t = transports.framed;
    const inode = 4000;
    for (let i = 0; i < 5; i++) {
      await t.writeChunk(endpoint, { chainId: 101, chainVersion: 1, inodeId: inode, index: i, offset: 0, data: Buffer.alloc(1000 + i, i + 1), chunkSizeBytes: CHUNK, clientId: 'batch', requestId: i + 1 });
    }
    const got = await t.readChunks!(endpoint, [
      ...Array.from({ length: 5 }, (_, i) => ({ chainId: 101, chainVersion: 1, inodeId: inode, index: i, offset: 10, length: 2000 })),
      { chainId: 101, chainVersion: 1, inodeId: inode, index: 77, offset: 0, length: 10 },
      { chainId: 999, chainVersion: 1, inodeId: inode, index: 0, offset: 0, length: 10 },
      { chainId: 101, chainVersion: 5, inodeId: inode, index: 0, offset: 0, length: 10 },
    ]);
    for (let i = 0; i < 5; i++) expect(got[i]).toEqual({ ok: true, data: Buffer.alloc(1000 + i - 10, i + 1), chunkLength: 1000 + i, exists: true });
    expect(got[5]).toEqual({ ok: true, data: Buffer.alloc(0), chunkLength: 0, exists: false });
    expect(got[6]).toMatchObject({ ok: false, error: { code: 'FLYFS_ERR_UNKNOWN_CHAIN' } });
    expect(got[7]).toMatchObject({ ok: false, error: { code: 'FLYFS_ERR_STALE_CHAIN_VERSION' } });
    // Past the named bounds the whole request is refused, and the connection goes on.
    const many = Array.from({ length: limits.readBatchChunksMax + 1 }, (_, i) => ({ chainId: 101, chainVersion: 1, inodeId: inode, index: i, offset: 0, length: 1 }));
    await expect(t.readChunks!(endpoint, many)).rejects.toMatchObject({ code: 'FLYFS_ERR_LIMIT' });
    const big = Array.from({ length: 2 }, (_, i) => ({ chainId: 101, chainVersion: 1, inodeId: inode, index: i, offset: 0, length: limits.readBatchBytesMax / 2 + 1 }));
    await expect(t.readChunks!(endpoint, big)).rejects.toMatchObject({ code: 'FLYFS_ERR_LIMIT' });
    expect((await t.readChunk(endpoint, { chainId: 101, chainVersion: 1, inodeId: inode, index: 0, offset: 0, length: 5 })).data).toEqual(Buffer.alloc(5, 1));
  });

  it('pulls routing info when its version moves', async () => {
    mgr.chainVersion = 2;
    mgr.routingVersion++;
    await eventually(async () => {
      await expect(transports.framed.readChunk(endpoint, { chainId: 101, chainVersion: 1, inodeId: 1, index: 0, offset: 0, length: 1 })).rejects.toMatchObject({ code: 'FLYFS_ERR_STALE_CHAIN_VERSION' });
    });
    const r = await transports.grpc.readChunk(endpoint, { chainId: 101, chainVersion: 2, inodeId: 1000, index: 0, offset: 10, length: 5 });
    expect(r.data.toString()).toBe('patch');
  });

  it('closes a connection that sends garbage and keeps serving others (data and gRPC ports)', async () => {
    for (const address of [server.dataAddress, server.grpcAddress]) {
      const [host, port] = address.split(':');
      const sock = net.connect({ host: host!, port: Number(port) });
      await new Promise<void>((resolve) => {
        sock.on('connect', () => sock.write(Buffer.from('\xde\xad\xbe\xef garbage garbage garbage garbage'.repeat(10), 'latin1')));
        sock.on('error', () => resolve());
        sock.on('close', () => resolve());
        sock.on('data', () => { /* gRPC answers with a GOAWAY */ });
      });
    }
    // An absurd length is refused without waiting for 4 GiB to arrive.
    const h = Buffer.alloc(24);
    h.writeUInt32LE(0x52465946, 0); h.writeUInt8(1, 4); h.writeUInt8(2, 5); h.writeUInt32LE(2, 12); h.writeUInt32LE(0xffffffff, 16);
    const [host, port] = server.dataAddress.split(':');
    const sock = net.connect({ host: host!, port: Number(port) }, () => sock.write(h));
    await new Promise<void>((resolve) => { sock.on('close', () => resolve()); sock.on('error', () => resolve()); });
    for (const t of Object.values(transports)) {
      const r = await t.readChunk(endpoint, { chainId: 101, chainVersion: 2, inodeId: 1000, index: 0, offset: 10, length: 5 });
      expect(r.data.toString()).toBe('patch');
    }
  });

  it('re-registers as the same node when the manager forgets it', async () => {
    const before = mgr.registrations.length;
    mgr.forgetNode = true;
    await eventually(() => { expect(mgr.registrations.length).toBeGreaterThan(before); });
    expect(mgr.registrations.at(-1)).toMatchObject({ nodeId: 7 });
    expect(mgr.registrations.at(-1)!.targets.map((t) => t.targetId)).toEqual([1, 2]);
  });

  it('stops serving when its lease cannot be renewed, and serves again once renewed', async () => {
    const [host, port] = server.httpAddress.split(':');
    const health = async () => (await fetch(`http://${host}:${port}/healthz`)).status;
    expect(await health()).toBe(200);
    mgr.answerHeartbeats = false;
    await eventually(async () => {
      await expect(transports.framed.readChunk(endpoint, { chainId: 101, chainVersion: 2, inodeId: 1000, index: 0, offset: 0, length: 1 })).rejects.toMatchObject({ code: 'FLYFS_ERR_NOT_SERVING' });
    });
    await expect(transports.grpc.readChunk(endpoint, { chainId: 101, chainVersion: 2, inodeId: 1000, index: 0, offset: 0, length: 1 })).rejects.toMatchObject({ code: 'FLYFS_ERR_NOT_SERVING' });
    expect(await health()).toBe(503);
    const status = await (await fetch(`http://${host}:${port}/status`)).json() as { serving: boolean; nodeId: number; targets: unknown[]; chains: unknown[] };
    expect(status).toMatchObject({ serving: false, nodeId: 7 });
    expect(status.targets).toHaveLength(2);
    expect(status.chains).toHaveLength(2);
    mgr.answerHeartbeats = true;
    await eventually(async () => { expect(await health()).toBe(200); });
    const r = await transports.framed.readChunk(endpoint, { chainId: 101, chainVersion: 2, inodeId: 1000, index: 0, offset: 10, length: 5 });
    expect(r.data.toString()).toBe('patch');
    const metrics = await (await fetch(`http://${host}:${port}/metrics`)).text();
    expect(metrics).toMatch(/flyfs_requests_total\{method="ReadChunk"\} \d+/);
    expect(metrics).toMatch(/flyfs_bytes_total\{direction="in",method="WriteChunk"\} \d+/);
  });

  it('rejects in-flight framed requests with FLYFS_ERR_CLOSED when the connection drops, then reconnects', async () => {
    // A data server that accepts and then drops the connection on the first request.
    let accepted = 0;
    const dropper = net.createServer((s) => { accepted++; s.once('data', () => s.destroy()); });
    await new Promise<void>((r) => dropper.listen(0, '127.0.0.1', r));
    const addr = dropper.address() as net.AddressInfo;
    const t = createChunkTransport('framed');
    const to = { nodeId: 1, grpcAddress: '', dataAddress: `127.0.0.1:${addr.port}` };
    const args = { chainId: 1, chainVersion: 1, inodeId: 1, index: 0, offset: 0, length: 1 };
    await expect(t.readChunk(to, args)).rejects.toMatchObject({ code: 'FLYFS_ERR_CLOSED' });
    await expect(t.readChunk(to, args)).rejects.toMatchObject({ code: 'FLYFS_ERR_CLOSED' });
    expect(accepted).toBeGreaterThanOrEqual(2);
    t.close();
    await new Promise<void>((r) => dropper.close(() => r()));
    const refused = createChunkTransport('framed');
    await expect(refused.readChunk(to, args)).rejects.toMatchObject({ code: 'FLYFS_ERR_UNAVAILABLE' });
    refused.close();
  });

  it('restarts as the same node with the same targets and data', async () => {
    await server.stop();
    server = await startStorageServer(config(), { logger: silentLogger() });
    endpoint = { nodeId: server.nodeId, grpcAddress: server.grpcAddress, dataAddress: server.dataAddress };
    expect(server.nodeId).toBe(7);
    expect(mgr.registrations.at(-1)!.targets.map((t) => t.targetId)).toEqual([1, 2]);
    const t = createChunkTransport('framed');
    const r = await t.readChunk(endpoint, { chainId: 101, chainVersion: 2, inodeId: 1000, index: 0, offset: 10, length: 5 });
    expect(r.data.toString()).toBe('patch');
    t.close();
  });
});
