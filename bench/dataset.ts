// dataset: one epoch of a packed dataset read through the loader (client/dataset: shuffled order,
// batches, prefetch, every sample CRC-32 checked) from a local `flyfs up` cluster, against the same
// samples laid out in one local file on the same disk and read in the same order with O_DIRECT
// through the storage server's io_uring engine, with as many samples in flight as the loader can
// have. The storage servers read chunks with O_DIRECT too, so neither side is a page-cache figure.
// Also home of the scaffolding bench/checkpoint.ts shares: a cluster in a temp folder that goes
// away on failure and on SIGINT/SIGTERM, time bounds, and ratio targets.
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { connect, type FileSystem } from '../client/index.js';
import { openDataset, packDataset, rankOrder, shardName, type Dataset } from '../client/dataset/index.js';
import { assert } from '../common/errors.js';
import { createIoEngine, ioEngineLimits, oDirect, type IoEngine } from '../storageserver/io-engine.js';
import { startLocalCluster } from '../tools/local-cluster.js';
import { figure, formatBytes, measured, throughputGBps, timeMs, unitGBps, type BenchContext, type Figure } from './harness.js';
import type { TargetVerdict } from './meta.js';

const KiB = 1024;
const MiB = 1024 * KiB;

// ---- shared with bench/checkpoint.ts ----

export interface ClusterBench {
  /** The temp folder: the cluster's data and logs, and any local files of baselines. */
  tmp: string;
  fs: FileSystem;
  /** Adds a cleanup; cleanups run last in first out when the bench ends, fails or is signalled. */
  defer(label: string, fn: () => Promise<void>): void;
}

interface Cleanup {
  label: string;
  fn: () => Promise<void>;
}

/**
 * Runs body against a fresh local cluster (`flyfs up` defaults: 3 metaservers, 3 storage servers
 * × 2 targets, chains of 3) in a temp folder. The client, the cluster and the folder are removed
 * afterwards, also when body fails or the process gets SIGINT/SIGTERM.
 */
export async function withBenchCluster<T>(ctx: BenchContext, o: { name: string; nodeArgs?: string[] }, body: (b: ClusterBench) => Promise<T>): Promise<T> {
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
      dataDir: path.join(tmp, 'cluster'), logDir: path.join(tmp, 'logs'), host: '127.0.0.1',
      ...(o.nodeArgs === undefined ? {} : { nodeArgs: o.nodeArgs }),
    });
    cleanups.push({ label: 'stop cluster', fn: () => cluster.stop() });
    ctx.log(`${o.name}: cluster up at ${cluster.clusterAddress} (${cluster.nodes.map((n) => n.role).join(', ')}), temp folder ${tmp}`);
    const fs = await connect(cluster.clusterAddress);
    cleanups.push({ label: 'close client', fn: () => fs.close() });
    return await body({ tmp, fs, defer: (label, fn) => cleanups.push({ label, fn }) });
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

/** The target "figure ≥ min × its baseline". */
export function ratioTarget(f: Figure, min: number): TargetVerdict {
  return {
    target: `${f.name} >= ${min}x ${f.baseline}`,
    holds: f.ratio >= min,
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

// ---- the dataset benchmark ----

/** How much the benchmark does; every count and time has a bound. */
export interface DatasetBenchConfig {
  /** One figure per sample size; each a multiple of the O_DIRECT alignment (4 KiB). */
  sampleSizesBytes: readonly number[];
  /** Bytes of each size's dataset: floor(datasetBytes / sampleBytes) samples, at most datasetBenchSamplesMax. */
  datasetBytes: number;
  /** The loader's batch size and read-ahead; the baseline keeps batchSize × (prefetch + 1) reads in flight. */
  batchSize: number;
  prefetch: number;
  /** Chunk size of the datasets' folder; default: the cluster's (the root's layout, 4 MiB). */
  chunkSizeBytes?: number;
  /** Run r shuffles with seed + r (loader and baseline alike). */
  seed: number;
  /** An epoch (flyfs or local) takes no new samples after this long; its figure is what it read by then. */
  epochMs: number;
  /** Child node flags (e.g. --cpu-prof) for profiling the cluster. */
  nodeArgs?: string[];
}

export const datasetBenchSamplesMax = 1 << 20;

export const datasetBenchDefaults: Omit<DatasetBenchConfig, 'datasetBytes'> = {
  sampleSizesBytes: [256 * KiB, 1 * MiB],
  batchSize: 32,
  prefetch: 2,
  seed: 1,
  epochMs: 120_000,
};

/** The target: epochs at ≥ 0.8× the local direct-I/O rate, for samples of 256 KiB and more. */
export const datasetRatioTarget = 0.8;
export const datasetTargetSampleBytesMin = 256 * KiB;

/** Samples in flight at most in the loader (and so in the baseline). */
function queueDepth(cfg: Pick<DatasetBenchConfig, 'batchSize' | 'prefetch'>): number {
  return cfg.batchSize * (cfg.prefetch + 1);
}

function checkConfig(cfg: DatasetBenchConfig): void {
  assert(cfg.sampleSizesBytes.length > 0, 'at least one sample size');
  for (const s of cfg.sampleSizesBytes) {
    assert(Number.isSafeInteger(s) && s > 0 && s % ioEngineLimits.alignment === 0, `sample size ${s} is a multiple of ${ioEngineLimits.alignment}`);
    const samples = Math.floor(cfg.datasetBytes / s);
    // The size comes from --size: a bad one is the caller's error, not the program's.
    if (samples < 1 || samples > datasetBenchSamplesMax) {
      throw new Error(`a dataset of ${formatBytes(cfg.datasetBytes)} holds ${samples} samples of ${formatBytes(s)}; give a --size for 1..${datasetBenchSamplesMax}`);
    }
  }
  assert(cfg.batchSize >= 1 && cfg.prefetch >= 0, 'loader options');
  assert(queueDepth(cfg) <= ioEngineLimits.ringEntries, `batchSize × (prefetch + 1) fits the ring's ${ioEngineLimits.ringEntries} entries`);
  assert(cfg.epochMs > 0, 'an epoch has a time bound');
}

function flyfsName(sampleBytes: number, chunkBytes: number, cfg: DatasetBenchConfig): string {
  return `flyfs dataset epoch, ${formatBytes(sampleBytes)} samples in ${formatBytes(chunkBytes)} chunks (loader: batch ${cfg.batchSize}, prefetch ${cfg.prefetch}, shuffled, CRC-32 checked)`;
}

function localName(cfg: DatasetBenchConfig): string {
  return `local file, same order, O_DIRECT io_uring reads, qd ${queueDepth(cfg)} (no page cache)`;
}

/** Sample i starts with i (u32 LE): a sample read from the wrong place is caught. */
function* stampedSamples(pattern: Buffer, count: number): Generator<Buffer> {
  for (let i = 0; i < count; i++) {
    pattern.writeUInt32LE(i, 0);
    yield pattern;
  }
}

function checkSample(bytes: Buffer, i: number, sampleBytes: number, what: string): void {
  const got = bytes.length >= 4 ? bytes.readUInt32LE(0) : -1;
  if (bytes.length !== sampleBytes || got !== i) throw new Error(`${what}: sample ${i} came back as ${bytes.length} bytes stamped ${got}`);
}

/** One epoch through the loader: every batch in order, each sample checked against its index. */
async function flyfsEpoch(ds: Dataset, sampleBytes: number, seed: number, cfg: DatasetBenchConfig): Promise<Pass> {
  const start = performance.now();
  const deadline = start + cfg.epochMs;
  let bytes = 0;
  for await (const batch of ds.batches({ batchSize: cfg.batchSize, seed, prefetch: cfg.prefetch })) {
    batch.samples.forEach((s, k) => {
      checkSample(s, batch.indices[k]!, sampleBytes, 'flyfs dataset');
      bytes += s.length;
    });
    if (performance.now() > deadline) break;
  }
  return { bytes, ms: performance.now() - start };
}

interface LocalFile {
  io: IoEngine;
  path: string;
  sampleBytes: number;
  /** Aligned sample buffers, one per read in flight. */
  buffers: Buffer[];
}

/** The same epoch from the local file: `buffers.length` reads in flight, in the loader's order. */
async function localEpoch(f: LocalFile, order: Uint32Array, epochMs: number): Promise<Pass> {
  const fd = await f.io.open(f.path, fsConstants.O_RDONLY | oDirect).catch((err: unknown) => {
    if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
    throw new Error(`the local baseline needs O_DIRECT, which the file system of ${path.dirname(f.path)} refuses (point TMPDIR at a disk)`, { cause: err });
  });
  try {
    const start = performance.now();
    const deadline = start + epochMs;
    let next = 0;
    let bytes = 0;
    const reader = async (buf: Buffer): Promise<void> => {
      for (let k = next++; k < order.length && performance.now() < deadline; k = next++) {
        const i = order[k]!;
        for (let got = 0; got < f.sampleBytes;) {
          const n = await f.io.read(fd, buf, got, f.sampleBytes - got, i * f.sampleBytes + got);
          if (n === 0) throw new Error(`local baseline: ${f.path} ended inside sample ${i}`);
          got += n;
        }
        checkSample(buf, i, f.sampleBytes, 'local baseline');
        bytes += f.sampleBytes;
      }
    };
    await Promise.all(f.buffers.map(reader));
    return { bytes, ms: performance.now() - start };
  } finally {
    await f.io.close(fd);
  }
}

/** The samples back to back in one local file, written and fsynced (not timed). */
async function writeLocalFile(filePath: string, pattern: Buffer, count: number): Promise<void> {
  // writeFile takes one sample at a time, so the generator may reuse its buffer.
  await writeFile(filePath, stampedSamples(pattern, count), { flush: true });
}

interface Prepared {
  /** The packed dataset in flyfs, inside `folder` (which is removed afterwards). */
  folder: string;
  dataset: string;
  /** Chunk size of its shards, as the file system reports it. */
  chunkBytes: number;
  local: LocalFile;
  count: number;
}

/** Packs the samples into flyfs and lays them out in a local file (neither timed, the pack rate is logged). */
async function prepare(ctx: BenchContext, b: ClusterBench, io: IoEngine, sampleBytes: number, cfg: DatasetBenchConfig): Promise<Prepared> {
  const count = Math.floor(cfg.datasetBytes / sampleBytes);
  const pattern = randomBytes(sampleBytes);
  const folder = `/bench-dataset-${sampleBytes}`;
  const dataset = `${folder}/ds`;
  await b.fs.mkdir(folder, cfg.chunkSizeBytes === undefined ? {} : { chunkSizeBytes: cfg.chunkSizeBytes });
  const packMs = await timeMs(async () => { await packDataset(b.fs, stampedSamples(pattern, count), dataset); });
  const chunkBytes = (await b.fs.stat(`${dataset}/${shardName(0)}`)).blksize;
  ctx.log(`dataset: packed ${count} samples of ${formatBytes(sampleBytes)} (${formatBytes(chunkBytes)} chunks) in ${(packMs / 1000).toFixed(1)} s (${throughputGBps(count * sampleBytes, packMs).toFixed(3)} GB/s)`);

  const localPath = path.join(b.tmp, `dataset-${sampleBytes}.bin`);
  await writeLocalFile(localPath, pattern, count);
  const buffers = Array.from({ length: Math.min(queueDepth(cfg), count) }, () => io.allocAligned(sampleBytes)!);
  return { folder, dataset, chunkBytes, local: { io, path: localPath, sampleBytes, buffers }, count };
}

/** A figure and the sample size it is of. */
export interface SampleSizeFigure {
  sampleBytes: number;
  figure: Figure;
}

/** Every run of one sample size: a loader epoch, then the local epoch in the same order. */
async function measureSampleSize(ctx: BenchContext, b: ClusterBench, io: IoEngine, sampleBytes: number, cfg: DatasetBenchConfig): Promise<SampleSizeFigure> {
  const p = await prepare(ctx, b, io, sampleBytes, cfg);
  const totalBytes = p.count * sampleBytes;
  const flyfs: number[] = [];
  const baseline: number[] = [];
  // Runs interleave so that each figure and its baseline see the same noise on a shared machine.
  for (let r = 0; r < ctx.runs; r++) {
    const seed = cfg.seed + r;
    const ds = await openDataset(b.fs, p.dataset);
    let f: Pass;
    try { f = await flyfsEpoch(ds, sampleBytes, seed, cfg); } finally { await ds.close(); }
    const l = await localEpoch(p.local, rankOrder(p.count, { seed, epoch: 0, rank: 0, worldSize: 1 }), cfg.epochMs);
    for (const [what, pass] of [['flyfs', f], ['local', l]] as const) {
      if (pass.bytes < totalBytes) ctx.log(`dataset: ${what} epoch stopped at its ${cfg.epochMs} ms bound after ${formatBytes(pass.bytes)} of ${formatBytes(totalBytes)}`);
    }
    flyfs.push(passGBps(f));
    baseline.push(passGBps(l));
    ctx.log(`dataset: ${formatBytes(sampleBytes)} run ${r + 1}/${ctx.runs} GB/s: flyfs ${flyfs[r]!.toFixed(3)}, local O_DIRECT ${baseline[r]!.toFixed(3)}`);
  }
  // Done with this size: its disk space goes back before the next one is packed.
  await b.fs.rm(p.folder, { recursive: true, force: true });
  await rm(p.local.path, { force: true });
  return { sampleBytes, figure: figure(flyfsName(sampleBytes, p.chunkBytes, cfg), unitGBps, measured(flyfs), localName(cfg), measured(baseline)) };
}

export function datasetTargets(sizes: readonly SampleSizeFigure[]): TargetVerdict[] {
  return sizes.filter((s) => s.sampleBytes >= datasetTargetSampleBytesMin).map((s) => ratioTarget(s.figure, datasetRatioTarget));
}

/** The dataset benchmark with an explicit configuration (tests use a tiny one). */
export async function runDatasetBench(ctx: BenchContext, cfg: DatasetBenchConfig): Promise<Figure[]> {
  checkConfig(cfg);
  if (oDirect === 0) throw new Error('the local baseline needs O_DIRECT, which this platform lacks');
  ctx.log(`dataset: ${formatBytes(cfg.datasetBytes)} per sample size (${cfg.sampleSizesBytes.map(formatBytes).join(', ')}), ${ctx.runs} runs`);
  return withBenchCluster(ctx, { name: 'dataset', ...(cfg.nodeArgs === undefined ? {} : { nodeArgs: cfg.nodeArgs }) }, async (b) => {
    let io: IoEngine;
    try {
      io = createIoEngine('io_uring');
    } catch (err) {
      throw new Error('the local baseline reads through the io_uring addon (build/Release/flyfs_io.node), which is unavailable', { cause: err });
    }
    b.defer('io_uring engine', () => io.shutdown());
    const sizes: SampleSizeFigure[] = [];
    for (const s of cfg.sampleSizesBytes) sizes.push(await measureSampleSize(ctx, b, io, s, cfg));
    logTargets(ctx, 'dataset', datasetTargets(sizes));
    return sizes.map((s) => s.figure);
  });
}

/** The dataset benchmark (registered in bench/index.ts); ctx.sizeBytes is each dataset's size. */
export async function runDataset(ctx: BenchContext): Promise<Figure[]> {
  return runDatasetBench(ctx, { ...datasetBenchDefaults, datasetBytes: ctx.sizeBytes });
}
