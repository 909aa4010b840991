// dataset: random sample reads from packed datasets through the loader (client/dataset: shuffled
// epoch, batches, prefetch, every sample CRC-32 checked) from a local `flyfs up` cluster, one dataset
// per sample size (4 KiB to 4 MiB, and mixed sizes), in GB/s and samples/s, against the same
// samples laid out in one local file on the same disk and read in the same order with O_DIRECT
// through the storage server's io_uring engine, with as many samples in flight as the loader can
// have. The storage servers read chunks with O_DIRECT too, so neither side is a page-cache figure.
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { openDataset, packDataset, rankOrder, SeededRandom, shardName, type Dataset } from '../client/dataset/index.js';
import { assert } from '../common/errors.js';
import { createIoEngine, ioEngineLimits, oDirect, type IoEngine } from '../storageserver/io-engine.js';
import { figure, formatBytes, measured, throughputGBps, timeMs, unitGBps, type BenchContext, type Figure } from './harness.js';
import type { TargetVerdict } from './meta.js';
import { logTargets, passGBps, ratioTarget, withBenchCluster, withinMs, type ClusterBench, type Pass } from './cluster-bench.js';

const KiB = 1024;
const MiB = 1024 * KiB;

// ---- the dataset benchmark ----

/** The samples of one dataset: all of one size in bytes, or sizes drawn log-uniformly from minBytes..maxBytes. */
export type SampleSizeSpec = number | { readonly minBytes: number; readonly maxBytes: number };

/** How much the benchmark does; every count and time has a bound. */
export interface DatasetBenchConfig {
  /** One dataset, and two figures (GB/s, samples/s), per entry; sizes are multiples of the O_DIRECT alignment (4 KiB). */
  sampleSizes: readonly SampleSizeSpec[];
  /** Bytes of each dataset at most (`--size`). */
  datasetBytes: number;
  /** Samples of each dataset at most: small samples are bounded by count as well as by bytes. */
  samplesMax: number;
  /** The loader's batch size and read-ahead; the baseline keeps batchSize × (prefetch + 1) reads in flight. */
  batchSize: number;
  prefetch: number;
  /** Chunk size of the datasets' folder; default: the cluster's (the root's layout, 4 MiB). */
  chunkSizeBytes?: number;
  /** Run r shuffles with seed + r (loader and baseline alike); mixed sizes are drawn from seed. */
  seed: number;
  /** An epoch (flyfs or local) takes no new samples after this long; its figure is what it read by then. */
  epochMs: number;
  /** Child node flags (e.g. --cpu-prof) for profiling the cluster. */
  nodeArgs?: string[];
}

export const datasetBenchSamplesMax = 1 << 20;

export const datasetBenchDefaults: Omit<DatasetBenchConfig, 'datasetBytes'> = {
  sampleSizes: [4 * KiB, 64 * KiB, 256 * KiB, 1 * MiB, 4 * MiB, { minBytes: 4 * KiB, maxBytes: 4 * MiB }],
  // 16 Ki samples: 64 MiB of 4 KiB samples, a whole 1 GiB of 64 KiB ones.
  samplesMax: 16_384,
  batchSize: 32,
  prefetch: 2,
  seed: 1,
  epochMs: 120_000,
};

/** The target: epochs at ≥ 0.8× the local direct-I/O rate, for samples of 256 KiB and more. */
export const datasetRatioTarget = 0.8;
export const datasetTargetSampleBytesMin = 256 * KiB;
export const unitSamplesPerSecond = 'samples/s';

/** Samples in flight at most in the loader (and so in the baseline). */
function queueDepth(cfg: Pick<DatasetBenchConfig, 'batchSize' | 'prefetch'>): number {
  return cfg.batchSize * (cfg.prefetch + 1);
}

function specBounds(spec: SampleSizeSpec): { minBytes: number; maxBytes: number } {
  return typeof spec === 'number' ? { minBytes: spec, maxBytes: spec } : spec;
}

function specLabel(spec: SampleSizeSpec): string {
  return typeof spec === 'number' ? formatBytes(spec) : `mixed ${formatBytes(spec.minBytes)}–${formatBytes(spec.maxBytes)} (log-uniform)`;
}

function checkConfig(cfg: DatasetBenchConfig): void {
  assert(cfg.sampleSizes.length > 0, 'at least one sample size');
  for (const spec of cfg.sampleSizes) {
    const { minBytes, maxBytes } = specBounds(spec);
    for (const s of [minBytes, maxBytes]) {
      assert(Number.isSafeInteger(s) && s > 0 && s % ioEngineLimits.alignment === 0, `sample size ${s} is a multiple of ${ioEngineLimits.alignment}`);
    }
    assert(minBytes <= maxBytes, 'mixed sizes: min ≤ max');
    // The size comes from --size: a bad one is the caller's error, not the program's.
    if (cfg.datasetBytes < maxBytes) throw new Error(`a dataset of ${formatBytes(cfg.datasetBytes)} cannot hold a sample of ${formatBytes(maxBytes)}; give a --size of at least that`);
  }
  assert(Number.isSafeInteger(cfg.samplesMax) && cfg.samplesMax >= 1 && cfg.samplesMax <= datasetBenchSamplesMax, `1..${datasetBenchSamplesMax} samples per dataset`);
  assert(cfg.batchSize >= 1 && cfg.prefetch >= 0, 'loader options');
  assert(queueDepth(cfg) <= ioEngineLimits.ringEntries, `batchSize × (prefetch + 1) fits the ring's ${ioEngineLimits.ringEntries} entries`);
  assert(cfg.epochMs > 0, 'an epoch has a time bound');
}

/** The samples of one dataset: their lengths, and where each lies in the local file (back to back, so aligned). */
export interface SampleSet {
  spec: SampleSizeSpec;
  lengths: Uint32Array;
  offsets: Float64Array;
  totalBytes: number;
  maxBytes: number;
}

/**
 * The sample lengths for `spec`: as many as fit datasetBytes, at most samplesMax. Mixed sizes are
 * e^U(ln min, ln max) rounded down to the 4 KiB alignment, drawn from `seed` (pure).
 */
export function sampleSet(spec: SampleSizeSpec, o: Pick<DatasetBenchConfig, 'datasetBytes' | 'samplesMax' | 'seed'>): SampleSet {
  const { minBytes, maxBytes } = specBounds(spec);
  const rnd = new SeededRandom(o.seed, 1);
  const lnMin = Math.log(minBytes);
  const lnSpan = Math.log(maxBytes) - lnMin;
  const align = ioEngineLimits.alignment;
  const draw = (): number => {
    if (minBytes === maxBytes) return minBytes;
    const x = Math.exp(lnMin + lnSpan * (rnd.nextU32() / 2 ** 32));
    return Math.min(maxBytes, Math.max(minBytes, Math.floor(x / align) * align));
  };
  const lengths: number[] = [];
  let total = 0;
  while (lengths.length < o.samplesMax) {
    const n = draw();
    if (total + n > o.datasetBytes) break;
    lengths.push(n);
    total += n;
  }
  const offsets = new Float64Array(lengths.length);
  for (let i = 1; i < lengths.length; i++) offsets[i] = offsets[i - 1]! + lengths[i - 1]!;
  return { spec, lengths: Uint32Array.from(lengths), offsets, totalBytes: total, maxBytes: lengths.reduce((m, n) => Math.max(m, n), 0) };
}

function flyfsName(spec: SampleSizeSpec, chunkBytes: number, cfg: DatasetBenchConfig): string {
  return `flyfs dataset epoch, ${specLabel(spec)} samples in ${formatBytes(chunkBytes)} chunks (loader: batch ${cfg.batchSize}, prefetch ${cfg.prefetch}, shuffled, CRC-32 checked)`;
}

function localName(cfg: DatasetBenchConfig): string {
  return `local file, same order, O_DIRECT io_uring reads, qd ${queueDepth(cfg)} (no page cache)`;
}

/** Sample i is a prefix of the pattern stamped with i (u32 LE): a sample read from the wrong place is caught. */
function* stampedSamples(pattern: Buffer, set: SampleSet): Generator<Buffer> {
  for (let i = 0; i < set.lengths.length; i++) {
    pattern.writeUInt32LE(i, 0);
    yield pattern.subarray(0, set.lengths[i]!);
  }
}

function checkSample(bytes: Buffer, i: number, set: SampleSet, what: string): void {
  const got = bytes.length >= 4 ? bytes.readUInt32LE(0) : -1;
  if (bytes.length !== set.lengths[i] || got !== i) throw new Error(`${what}: sample ${i} came back as ${bytes.length} bytes stamped ${got}`);
}

/** What one epoch read: bytes and samples, and how long it took. */
interface EpochPass extends Pass {
  samples: number;
}

/** One epoch through the loader: every batch in order, each sample checked against its index. */
async function flyfsEpoch(ds: Dataset, set: SampleSet, seed: number, cfg: DatasetBenchConfig): Promise<EpochPass> {
  const start = performance.now();
  const deadline = start + cfg.epochMs;
  let bytes = 0;
  let samples = 0;
  for await (const batch of ds.batches({ batchSize: cfg.batchSize, seed, prefetch: cfg.prefetch })) {
    batch.samples.forEach((s, k) => {
      checkSample(s, batch.indices[k]!, set, 'flyfs dataset');
      bytes += s.length;
    });
    samples += batch.samples.length;
    if (performance.now() > deadline) break;
  }
  return { bytes, samples, ms: performance.now() - start };
}

interface LocalFile {
  io: IoEngine;
  path: string;
  set: SampleSet;
  /** Aligned buffers of the largest sample, one per read in flight. */
  buffers: Buffer[];
}

/** The same epoch from the local file: `buffers.length` reads in flight, in the loader's order. */
async function localEpoch(f: LocalFile, order: Uint32Array, epochMs: number): Promise<EpochPass> {
  const fd = await f.io.open(f.path, fsConstants.O_RDONLY | oDirect).catch((err: unknown) => {
    if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
    throw new Error(`the local baseline needs O_DIRECT, which the file system of ${path.dirname(f.path)} refuses (point TMPDIR at a disk)`, { cause: err });
  });
  try {
    const start = performance.now();
    const deadline = start + epochMs;
    let next = 0;
    let bytes = 0;
    let samples = 0;
    const reader = async (buf: Buffer): Promise<void> => {
      for (let k = next++; k < order.length && performance.now() < deadline; k = next++) {
        const i = order[k]!;
        const length = f.set.lengths[i]!;
        const at = f.set.offsets[i]!;
        for (let got = 0; got < length;) {
          const n = await f.io.read(fd, buf, got, length - got, at + got);
          if (n === 0) throw new Error(`local baseline: ${f.path} ended inside sample ${i}`);
          got += n;
        }
        checkSample(buf.subarray(0, length), i, f.set, 'local baseline');
        bytes += length;
        samples++;
      }
    };
    await Promise.all(f.buffers.map(reader));
    return { bytes, samples, ms: performance.now() - start };
  } finally {
    await f.io.close(fd);
  }
}

interface Prepared {
  /** The packed dataset in flyfs, inside `folder` (which is removed afterwards). */
  folder: string;
  dataset: string;
  /** Chunk size of its shards, as the file system reports it. */
  chunkBytes: number;
  local: LocalFile;
}

/** Packs the samples into flyfs and lays them out in a local file (neither timed, the pack rate is logged). */
async function prepare(ctx: BenchContext, b: ClusterBench, io: IoEngine, set: SampleSet, k: number, cfg: DatasetBenchConfig): Promise<Prepared> {
  const pattern = randomBytes(set.maxBytes);
  const folder = `/bench-dataset-${k}`;
  const dataset = `${folder}/ds`;
  const count = set.lengths.length;
  await b.fs.mkdir(folder, cfg.chunkSizeBytes === undefined ? {} : { chunkSizeBytes: cfg.chunkSizeBytes });
  const packMs = await timeMs(async () => { await packDataset(b.fs, stampedSamples(pattern, set), dataset); });
  const chunkBytes = (await b.fs.stat(`${dataset}/${shardName(0)}`)).blksize;
  ctx.log(
    `dataset: packed ${count} samples of ${specLabel(set.spec)} (mean ${formatBytes(Math.round(set.totalBytes / count))}, ${formatBytes(set.totalBytes)}, ` +
      `${formatBytes(chunkBytes)} chunks) in ${(packMs / 1000).toFixed(1)} s (${throughputGBps(set.totalBytes, packMs).toFixed(3)} GB/s)`,
  );
  const localPath = path.join(b.tmp, `dataset-${k}.bin`);
  // writeFile takes one sample at a time, so the generator may reuse its buffer; flushed, not timed.
  await writeFile(localPath, stampedSamples(pattern, set), { flush: true });
  const buffers = Array.from({ length: Math.min(queueDepth(cfg), count) }, () => io.allocAligned(set.maxBytes)!);
  return { folder, dataset, chunkBytes, local: { io, path: localPath, set, buffers } };
}

/** The figures of one sample size and what they are of. */
export interface SampleSizeFigures {
  spec: SampleSizeSpec;
  gbps: Figure;
  samplesPerSecond: Figure;
}

/** Every run of one sample size: a loader epoch, then the local epoch in the same order. */
async function measureSampleSize(ctx: BenchContext, b: ClusterBench, io: IoEngine, spec: SampleSizeSpec, k: number, cfg: DatasetBenchConfig): Promise<SampleSizeFigures> {
  const set = sampleSet(spec, cfg);
  const p = await prepare(ctx, b, io, set, k, cfg);
  const count = set.lengths.length;
  const passes: Array<{ flyfs: EpochPass; local: EpochPass }> = [];
  // Runs interleave so that each figure and its baseline see the same noise on a shared machine.
  for (let r = 0; r < ctx.runs; r++) {
    const seed = cfg.seed + r;
    const ds = await openDataset(b.fs, p.dataset);
    let f: EpochPass;
    try { f = await flyfsEpoch(ds, set, seed, cfg); } finally { await ds.close(); }
    const l = await localEpoch(p.local, rankOrder(count, { seed, epoch: 0, rank: 0, worldSize: 1 }), cfg.epochMs);
    for (const [what, pass] of [['flyfs', f], ['local', l]] as const) {
      if (pass.samples < count) ctx.log(`dataset: ${what} epoch stopped at its ${cfg.epochMs} ms bound after ${pass.samples} of ${count} samples`);
    }
    passes.push({ flyfs: f, local: l });
    ctx.log(
      `dataset: ${specLabel(spec)} run ${r + 1}/${ctx.runs}: flyfs ${passGBps(f).toFixed(3)} GB/s ${samplesPerSecond(f).toFixed(0)} samples/s, ` +
        `local O_DIRECT ${passGBps(l).toFixed(3)} GB/s ${samplesPerSecond(l).toFixed(0)} samples/s`,
    );
  }
  // Done with this size: its disk space goes back before the next one is packed.
  await b.fs.rm(p.folder, { recursive: true, force: true });
  await rm(p.local.path, { force: true });
  const name = flyfsName(spec, p.chunkBytes, cfg);
  const series = (rate: (p: EpochPass) => number, side: 'flyfs' | 'local') => measured(passes.map((x) => rate(x[side])));
  return {
    spec,
    gbps: figure(name, unitGBps, series(passGBps, 'flyfs'), localName(cfg), series(passGBps, 'local')),
    samplesPerSecond: figure(name, unitSamplesPerSecond, series(samplesPerSecond, 'flyfs'), localName(cfg), series(samplesPerSecond, 'local')),
  };
}

function samplesPerSecond(p: EpochPass): number {
  return p.samples / (p.ms / 1000);
}

/** Targets for the fixed sizes of 256 KiB and more (GB/s; samples/s gives the same ratio). */
export function datasetTargets(sizes: readonly SampleSizeFigures[]): TargetVerdict[] {
  return sizes
    .filter((s) => typeof s.spec === 'number' && s.spec >= datasetTargetSampleBytesMin)
    .map((s) => ratioTarget(s.gbps, datasetRatioTarget));
}

/** The dataset benchmark with an explicit configuration (tests use a tiny one). */
export async function runDatasetBench(ctx: BenchContext, cfg: DatasetBenchConfig): Promise<Figure[]> {
  checkConfig(cfg);
  if (oDirect === 0) throw new Error('the local baseline needs O_DIRECT, which this platform lacks');
  ctx.log(`dataset: at most ${formatBytes(cfg.datasetBytes)} and ${cfg.samplesMax} samples per sample size (${cfg.sampleSizes.map(specLabel).join(', ')}), ${ctx.runs} runs`);
  return withBenchCluster(ctx, { name: 'dataset', ...(cfg.nodeArgs === undefined ? {} : { nodeArgs: cfg.nodeArgs }) }, async (b) => {
    let io: IoEngine;
    try {
      io = createIoEngine('io_uring');
    } catch (err) {
      throw new Error('the local baseline reads through the io_uring addon (build/Release/flyfs_io.node), which is unavailable', { cause: err });
    }
    b.defer('io_uring engine', () => io.shutdown());
    const sizes: SampleSizeFigures[] = [];
    for (const [k, spec] of cfg.sampleSizes.entries()) sizes.push(await measureSampleSize(ctx, b, io, spec, k, cfg));
    logTargets(ctx, 'dataset', datasetTargets(sizes));
    return sizes.flatMap((s) => [s.gbps, s.samplesPerSecond]);
  });
}

/** The dataset benchmark (registered in bench/index.ts); ctx.sizeBytes bounds each dataset's bytes. */
export async function runDataset(ctx: BenchContext): Promise<Figure[]> {
  return runDatasetBench(ctx, { ...datasetBenchDefaults, datasetBytes: ctx.sizeBytes });
}
