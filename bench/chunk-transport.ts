// chunk-transport: chunk reads and writes of 64 KiB to 4 MiB against one storage server over each
// client transport (the framed protocol over TCP, gRPC unary, one gRPC bidirectional stream),
// against a loopback TCP stream of as many bytes (bench/baselines.ts), measured in the same run.
// Writes include the durable commit (fdatasync, folder fsync, LMDB), reads come from the target.
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createChunkTransport, type ChunkTransport, type StorageEndpoint, type TransportKind } from '../client/chunk-transport.js';
import { MetadataClient } from '../client/metadata-client.js';
import { assert } from '../common/errors.js';
import { startLocalCluster } from '../tools/local-cluster.js';
import { tcpLoopbackStreamMs } from './baselines.js';
import { figure, formatBytes, measured, throughputGBps, timeMs, unitGBps, type BenchContext, type Figure } from './harness.js';

const KiB = 1024;
const MiB = 1024 * KiB;

export interface ChunkTransportBenchConfig {
  /** Transfer sizes (one chunk per transfer, chunk size = transfer size). */
  sizes: number[];
  /** Bytes moved per figure by reads, and by writes (each write is a durable commit). */
  readBytes: number;
  writeBytes: number;
  /** Requests in flight at once. */
  concurrency: number;
  transports: TransportKind[];
}

export const chunkTransportDefaults: ChunkTransportBenchConfig = {
  sizes: [64 * KiB, 256 * KiB, MiB, 4 * MiB],
  readBytes: 256 * MiB,
  writeBytes: 64 * MiB,
  concurrency: 16,
  transports: ['framed', 'grpc', 'grpc-stream'],
};

/** Runs op(i) for i in [0, count) with `concurrency` loops. */
async function inFlight(count: number, concurrency: number, op: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(count, concurrency) }, async () => {
    while (next < count) await op(next++);
  }));
}

export async function runChunkTransportBench(ctx: BenchContext, cfg: ChunkTransportBenchConfig): Promise<Figure[]> {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'flyfs-bench-chunk-'));
  const cluster = await startLocalCluster({
    dataDir: path.join(tmp, 'cluster'), logDir: path.join(tmp, 'logs'), host: '127.0.0.1',
    metaservers: 1, storageServers: 1, targetsPerServer: 1,
  });
  const meta = new MetadataClient(cluster.clusterAddress.split(','), randomUUID());
  const transports = new Map<TransportKind, ChunkTransport>(cfg.transports.map((k) => [k, createChunkTransport(k)]));
  try {
    const info = await meta.routingInfo();
    const chain = info.chains[0];
    assert(chain !== undefined, 'the cluster has a chain');
    const target = info.targets.find((t) => t.targetId === chain.targetIds[0]);
    const node = info.nodes.find((n) => n.nodeId === target?.nodeId);
    assert(node !== undefined, 'the chain has a storage node');
    const to: StorageEndpoint = { nodeId: node.nodeId, grpcAddress: node.grpcAddress, dataAddress: node.dataAddress };
    ctx.log(`chunk-transport: storage server ${node.grpcAddress} (data ${node.dataAddress}), ${cfg.concurrency} in flight`);

    const series = new Map<string, number[]>();
    const push = (k: string, v: number): void => { series.set(k, [...(series.get(k) ?? []), v]); };
    let inode = 1_000_000;
    let requestId = 1;
    for (let run = 0; run < ctx.runs; run++) {
      for (const size of cfg.sizes) {
        const data = randomBytes(size);
        const reads = Math.max(1, Math.floor(cfg.readBytes / size));
        const writes = Math.max(1, Math.floor(cfg.writeBytes / size));
        const distinct = Math.min(writes, 64);
        for (const [kind, t] of transports) {
          const ino = inode++;
          const writeMs = await timeMs(() => inFlight(writes, cfg.concurrency, async (i) => {
            const r = await t.writeChunk(to, { chainId: chain.chainId, chainVersion: chain.version, inodeId: ino, index: i % distinct, offset: 0, data, chunkSizeBytes: size, clientId: 'bench', requestId: requestId++ });
            assert(r.chunkLength === size, 'a write covers the chunk');
          }));
          const readMs = await timeMs(() => inFlight(reads, cfg.concurrency, async (i) => {
            const r = await t.readChunk(to, { chainId: chain.chainId, chainVersion: chain.version, inodeId: ino, index: i % distinct, offset: 0, length: size });
            assert(r.exists && r.data.length === size, 'a read returns the whole chunk');
          }));
          push(`${kind}.write.${size}`, throughputGBps(writes * size, writeMs));
          push(`${kind}.read.${size}`, throughputGBps(reads * size, readMs));
          await t.removeChunks(to, { chainId: chain.chainId, chainVersion: chain.version, inodeId: ino, fromIndex: 0 });
        }
        push(`tcp.${size}`, throughputGBps(cfg.readBytes, await tcpLoopbackStreamMs({ totalBytes: cfg.readBytes, pattern: data })));
        ctx.log(`chunk-transport: run ${run + 1}/${ctx.runs} ${formatBytes(size)}: ${cfg.transports.map((k) => `${k} w ${series.get(`${k}.write.${size}`)!.at(-1)!.toFixed(3)} r ${series.get(`${k}.read.${size}`)!.at(-1)!.toFixed(3)}`).join(', ')}, tcp ${series.get(`tcp.${size}`)!.at(-1)!.toFixed(3)} GB/s`);
      }
    }
    const out: Figure[] = [];
    for (const size of cfg.sizes) {
      const tcp = measured(series.get(`tcp.${size}`)!);
      for (const kind of cfg.transports) {
        for (const op of ['read', 'write'] as const) {
          out.push(figure(`${kind} ${op} ${formatBytes(size)}`, unitGBps, measured(series.get(`${kind}.${op}.${size}`)!), 'tcp loopback stream', tcp));
        }
      }
    }
    return out;
  } finally {
    for (const t of transports.values()) t.close();
    meta.shutdown();
    await cluster.stop();
    await rm(tmp, { recursive: true, force: true });
  }
}

/** The chunk-transport benchmark (registered in bench/index.ts); ctx.sizeBytes is unused. */
export async function runChunkTransport(ctx: BenchContext): Promise<Figure[]> {
  return runChunkTransportBench(ctx, chunkTransportDefaults);
}
