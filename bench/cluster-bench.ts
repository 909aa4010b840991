// What the cluster benchmarks share (dataset, checkpoint, kv, sort): a local cluster in a temp
// folder that goes away on failure and on SIGINT/SIGTERM, time bounds, and ratio targets.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { connect, type FileSystem } from '../client/index.js';
import { startLocalCluster, type LocalCluster, type LocalClusterOptions } from '../tools/local-cluster.js';
import { throughputGBps, type BenchContext, type Figure } from './harness.js';
import type { TargetVerdict } from './meta.js';

export interface ClusterBench {
  /** The temp folder: the cluster's data and logs, and any local files of baselines. */
  tmp: string;
  cluster: LocalCluster;
  fs: FileSystem;
  /** Adds a cleanup; cleanups run last in first out when the bench ends, fails or is signalled. */
  defer(label: string, fn: () => Promise<void>): void;
}

interface Cleanup {
  label: string;
  fn: () => Promise<void>;
}

/** Cluster options a benchmark may set; the folders, the host and the node flags are withBenchCluster's. */
export type BenchClusterOptions = Pick<LocalClusterOptions, 'kvcache' | 'extraArgs'>;

/**
 * Runs body against a fresh local cluster (`flyfs up` defaults: 3 metaservers, 3 storage servers
 * × 2 targets, chains of 3, and whatever `cluster` adds) in a temp folder. The client, the cluster
 * and the folder are removed afterwards, also when body fails or the process gets SIGINT/SIGTERM.
 */
export async function withBenchCluster<T>(
  ctx: BenchContext,
  o: { name: string; nodeArgs?: string[]; cluster?: BenchClusterOptions },
  body: (b: ClusterBench) => Promise<T>,
): Promise<T> {
  const cleanups: Cleanup[] = [];
  const cleanUp = async (): Promise<void> => {
    for (let c = cleanups.pop(); c !== undefined; c = cleanups.pop()) {
      await c.fn().catch((e: unknown) => ctx.log(`${o.name}: cleanup "${c.label}" failed: ${e instanceof Error ? e.message : String(e)}`));
    }
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    ctx.log(`${o.name}: ${signal}, cleaning up`);
    void cleanUp().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const tmp = await mkdtemp(path.join(os.tmpdir(), `flyfs-bench-${o.name}-`));
    cleanups.push({ label: `remove ${tmp}`, fn: () => rm(tmp, { recursive: true, force: true }) });
    const cluster = await startLocalCluster({
      ...o.cluster, dataDir: path.join(tmp, 'cluster'), logDir: path.join(tmp, 'logs'), host: '127.0.0.1',
      ...(o.nodeArgs === undefined ? {} : { nodeArgs: o.nodeArgs }),
    });
    cleanups.push({ label: 'stop cluster', fn: () => cluster.stop() });
    ctx.log(`${o.name}: cluster up at ${cluster.clusterAddress} (${cluster.nodes.map((n) => n.role).join(', ')}), temp folder ${tmp}`);
    const fs = await connect(cluster.clusterAddress);
    cleanups.push({ label: 'close client', fn: () => fs.close() });
    return await body({ tmp, cluster, fs, defer: (label, fn) => cleanups.push({ label, fn }) });
  } finally {
    await cleanUp();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** Awaits work, failing with `what` once it has taken longer than ms (the cleanups then stop it). */
export async function withinMs<T>(ms: number, what: string, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** The target "figure ≥ bound × its baseline", or with `atMost` (for times) "figure ≤ bound × its baseline". */
export function ratioTarget(f: Figure, bound: number, o: { atMost?: boolean } = {}): TargetVerdict {
  const atMost = o.atMost ?? false;
  return {
    target: `${f.name} ${atMost ? '<=' : '>='} ${bound}x ${f.baseline}`,
    holds: atMost ? f.ratio <= bound : f.ratio >= bound,
    detail: `${f.value.toFixed(3)} vs ${f.baselineValue.toFixed(3)} ${f.unit} = ${f.ratio.toFixed(3)}x`,
  };
}

export function logTargets(ctx: BenchContext, name: string, verdicts: readonly TargetVerdict[]): void {
  for (const t of verdicts) ctx.log(`${name}: target ${t.holds ? 'HOLDS' : 'MISSES'}: ${t.target} (${t.detail})`);
}

/** What one timed pass moved, and how long it took. */
export interface Pass {
  bytes: number;
  ms: number;
}

export function passGBps(p: Pass): number {
  return throughputGBps(p.bytes, p.ms);
}

