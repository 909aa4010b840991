// The storage server's HTTP face: /healthz (503 while not serving), /metrics, /status.
import type { FastifyInstance } from 'fastify';
import { buildHttpApp } from '../common/http.js';
import type { MetricsRegistry } from '../common/metrics.js';
import type { ChunkStore, TargetUsage } from './chunk-store.js';
import type { ChainStatus } from './membership.js';
import type { ScrubReport } from './scrubber.js';

export interface StorageStatusSource {
  nodeId(): number;
  notServingReason(): string | undefined;
  chains(): ChainStatus[];
  targets(): { targetId: number; path: string; store: ChunkStore }[];
  addresses(): { grpcAddress: string; dataAddress: string; httpAddress: string };
  scrub(): ScrubReport[];
}

export interface StorageStatus {
  role: 'storageserver';
  nodeId: number;
  serving: boolean;
  notServingReason?: string;
  addresses: { grpcAddress: string; dataAddress: string; httpAddress: string };
  targets: ({ targetId: number; path: string } & Partial<TargetUsage> & { error?: string })[];
  chains: ChainStatus[];
  scrub: ScrubReport[];
}

export async function storageStatus(src: StorageStatusSource): Promise<StorageStatus> {
  const reason = src.notServingReason();
  const targets = await Promise.all(src.targets().map(async (t) => {
    try {
      return { targetId: t.targetId, path: t.path, ...(await t.store.usage()) };
    } catch (err) {
      return { targetId: t.targetId, path: t.path, error: err instanceof Error ? err.message : String(err) };
    }
  }));
  return {
    role: 'storageserver', nodeId: src.nodeId(), serving: reason === undefined,
    ...(reason === undefined ? {} : { notServingReason: reason }),
    addresses: src.addresses(), targets, chains: src.chains(), scrub: src.scrub(),
  };
}

export function buildStorageHttpApp(src: StorageStatusSource, metrics: MetricsRegistry): FastifyInstance {
  return buildHttpApp({
    role: 'storageserver',
    metrics,
    health: () => {
      const reason = src.notServingReason();
      return reason === undefined ? { ok: true } : { ok: false, reason };
    },
    status: () => storageStatus(src),
  });
}
