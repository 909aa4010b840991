// checkpoint: a checkpoint of `shards` equal tensors saved with saveCheckpoint and loaded with
// loadCheckpoint (client/checkpoint) on a local `flyfs up` cluster, against a sequential write and
// read of the same bytes as one flyfs file on the same cluster in the same run: the figure is what
// the checkpoint layer (files, manifest, publish, CRC32Cs, parallel tensors) makes of plain I/O.
// The load is measured twice: into the caller's tensors (`into`: memory the program has touched
// before, as a model's allocated weights, and as the baseline's one reused buffer), and into new
// buffers, which also pays the first touch of that much fresh memory.
import { randomBytes } from 'node:crypto';
import { loadCheckpoint, saveCheckpoint, stepDirName, type LoadedTensor } from '../client/checkpoint/index.js';
import type { FileSystem } from '../client/index.js';
import { assert } from '../common/errors.js';
import { limits } from '../common/limits.js';
import { figure, formatBytes, measured, timeMs, unitGBps, type BenchContext, type Figure } from './harness.js';
import { logTargets, passGBps, ratioTarget, withBenchCluster, withinMs, type Pass } from './cluster-bench.js';
import type { TargetVerdict } from './meta.js';

const MiB = 1024 * 1024;

/** How much the benchmark does; every count and time has a bound. */
export interface CheckpointBenchConfig {
  /** Bytes of the checkpoint, split evenly over its tensors (a remainder is left out). */
  checkpointBytes: number;
  /** Tensors of the checkpoint: one file each. */
  shards: number;
  /** Bytes of one baseline write (one writev) or read call. */
  pieceBytes: number;
  /** A save, load, or baseline pass that takes longer fails the benchmark. */
  passMsMax: number;
  /** Child node flags (e.g. --cpu-prof) for profiling the cluster. */
  nodeArgs?: string[];
}

export const checkpointBenchDefaults: Omit<CheckpointBenchConfig, 'checkpointBytes'> = {
  shards: 64,
  pieceBytes: 64 * MiB,
  passMsMax: 300_000,
};

/** The target: save and load each at ≥ 0.9× a sequential flyfs write and read of the same bytes. */
export const checkpointRatioTarget = 0.9;

/**
 * Every stampEveryBytes of a tensor starts with its offset in the concatenation of all tensors
 * (u64 LE): a tensor or piece read from the wrong place is caught, though all share one pattern.
 */
const stampEveryBytes = 1 * MiB;
const stampBytes = 8;
const benchDir = '/bench-checkpoint';

function checkConfig(cfg: CheckpointBenchConfig): void {
  assert(Number.isSafeInteger(cfg.shards) && cfg.shards >= 1 && cfg.shards <= limits.checkpointTensorsMax, `1..${limits.checkpointTensorsMax} tensors`);
  // The size comes from --size: a bad one is the caller's error, not the program's.
  if (cfg.checkpointBytes / cfg.shards < stampBytes) throw new Error(`a checkpoint of ${cfg.checkpointBytes} bytes in ${cfg.shards} tensors: give a --size of at least ${cfg.shards * stampBytes} bytes`);
  assert(Number.isSafeInteger(cfg.pieceBytes) && cfg.pieceBytes >= 1, 'baseline pieces hold bytes');
  assert(cfg.passMsMax > 0, 'a pass has a time bound');
}

function tensorName(k: number): string {
  return `layer-${String(k).padStart(5, '0')}`;
}

/** The tensors, made once and reused by every run: one random pattern, stamped per tensor. */
function makeTensors(shards: number, tensorBytes: number): Buffer[] {
  const pattern = randomBytes(Math.min(tensorBytes, 4 * MiB));
  return Array.from({ length: shards }, (_, k) => {
    const t = Buffer.allocUnsafe(tensorBytes);
    for (let at = 0; at < tensorBytes; at += pattern.length) pattern.copy(t, at, 0, Math.min(pattern.length, tensorBytes - at));
    for (let at = 0; at + stampBytes <= tensorBytes; at += stampEveryBytes) t.writeBigUInt64LE(BigInt(k * tensorBytes + at), at);
    return t;
  });
}

/** Checks the stamps in bytes, which hold the concatenated tensors' bytes from `position` on. */
function checkStamps(bytes: Buffer, position: number, tensorBytes: number, what: string): void {
  const end = position + bytes.length;
  for (let k = Math.floor(position / tensorBytes); k * tensorBytes < end; k++) {
    const first = Math.max(0, Math.ceil((position - k * tensorBytes) / stampEveryBytes) * stampEveryBytes);
    for (let at = first; at + stampBytes <= tensorBytes; at += stampEveryBytes) {
      const stamp = k * tensorBytes + at;
      if (stamp + stampBytes > end) break;
      const got = bytes.readBigUInt64LE(stamp - position);
      if (got !== BigInt(stamp)) throw new Error(`${what}: bytes at ${stamp} are stamped ${got}`);
    }
  }
}

interface Pieces {
  tensors: readonly Buffer[];
  pieceBytes: number;
}

interface Piece {
  position: number;
  length: number;
  /** The piece's bytes as views of the tensors, in order. */
  views: Buffer[];
}

/** The tensors back to back as one file, in pieces of pieceBytes (the last one shorter). */
function* filePieces(p: Pieces): Generator<Piece> {
  const tensorBytes = p.tensors[0]!.length;
  const totalBytes = tensorBytes * p.tensors.length;
  for (let position = 0; position < totalBytes; position += p.pieceBytes) {
    const end = Math.min(totalBytes, position + p.pieceBytes);
    const views: Buffer[] = [];
    for (let at = position; at < end;) {
      const k = Math.floor(at / tensorBytes);
      const from = at - k * tensorBytes;
      const n = Math.min(tensorBytes - from, end - at);
      views.push(p.tensors[k]!.subarray(from, from + n));
      at += n;
    }
    yield { position, length: end - position, views };
  }
}

/** Open, every write in sequence (a piece's views in one writev), and the close: the write is done when the close is. */
async function baselineWriteMs(fs: FileSystem, filePath: string, p: Pieces): Promise<number> {
  return timeMs(async () => {
    const fh = await fs.open(filePath, 'w');
    try {
      for (const w of filePieces(p)) {
        const { bytesWritten } = await fh.writev(w.views, w.position);
        if (bytesWritten !== w.length) throw new Error(`checkpoint baseline: short write at ${w.position}: ${bytesWritten} of ${w.length}`);
      }
    } finally {
      await fh.close();
    }
  });
}

/**
 * Reads the file back in sequence into one reused buffer. The clock runs over the open, the reads
 * and the close; stamps are checked between reads, when nothing is in flight.
 */
async function baselineReadMs(fs: FileSystem, filePath: string, p: Pieces): Promise<number> {
  const tensorBytes = p.tensors[0]!.length;
  const buffer = Buffer.allocUnsafe(Math.min(p.pieceBytes, tensorBytes * p.tensors.length));
  let fh: Awaited<ReturnType<FileSystem['open']>> | undefined;
  let ms = await timeMs(async () => { fh = await fs.open(filePath, 'r'); });
  try {
    for (const r of filePieces(p)) {
      ms += await timeMs(async () => {
        for (let got = 0; got < r.length;) {
          const { bytesRead } = await fh!.read(buffer, got, r.length - got, r.position + got);
          if (bytesRead === 0) throw new Error(`checkpoint baseline: file ended at ${r.position + got}`);
          got += bytesRead;
        }
      });
      checkStamps(buffer.subarray(0, r.length), r.position, tensorBytes, 'checkpoint baseline read');
    }
  } finally {
    ms += await timeMs(async () => { await fh!.close(); });
  }
  return ms;
}

function checkLoaded(loaded: Record<string, LoadedTensor>, tensors: readonly Buffer[]): void {
  assert(Object.keys(loaded).length === tensors.length, 'every tensor loaded');
  tensors.forEach((t, k) => {
    const got = loaded[tensorName(k)];
    if (got === undefined || got.data.length !== t.length) throw new Error(`checkpoint: tensor ${tensorName(k)} loaded as ${got?.data.length ?? 'nothing'} bytes`);
    checkStamps(got.data, k * t.length, t.length, `checkpoint load of ${tensorName(k)}`);
  });
}

interface RunResult {
  save: Pass;
  loadInto: Pass;
  load: Pass;
  write: Pass;
  read: Pass;
}

/** One run: save, baseline write, load into `into`, load into new buffers, baseline read, then both removed (not timed). */
async function checkpointRun(fs: FileSystem, step: number, p: Pieces, into: readonly Buffer[], cfg: CheckpointBenchConfig): Promise<RunResult> {
  const bytes = p.tensors.length * p.tensors[0]!.length;
  const record = Object.fromEntries(p.tensors.map((t, k) => [tensorName(k), t]));
  const baselineFile = `/bench-checkpoint-baseline-${step}.bin`;
  const bounded = <T>(what: string, work: Promise<T>): Promise<T> => withinMs(cfg.passMsMax, `checkpoint: ${what} of step ${step}`, work);
  try {
    const saveMs = await bounded('save', timeMs(async () => { await saveCheckpoint(fs, benchDir, step, record); }));
    const writeMs = await bounded('baseline write', baselineWriteMs(fs, baselineFile, p));
    const intoRecord = Object.fromEntries(into.map((t, k) => [tensorName(k), t]));
    const loadIntoMs = await bounded('load into tensors', timeMs(async () => { await loadCheckpoint(fs, benchDir, { step, into: intoRecord }); }));
    checkLoaded(Object.fromEntries(into.map((t, k) => [tensorName(k), { data: t }])), p.tensors);
    into.forEach((t) => t.fill(0));
    let loaded: Record<string, LoadedTensor> | undefined;
    const loadMs = await bounded('load', timeMs(async () => { loaded = (await loadCheckpoint(fs, benchDir, { step })).tensors; }));
    checkLoaded(loaded!, p.tensors);
    loaded = undefined;
    const readMs = await bounded('baseline read', baselineReadMs(fs, baselineFile, p));
    return { save: { bytes, ms: saveMs }, loadInto: { bytes, ms: loadIntoMs }, load: { bytes, ms: loadMs }, write: { bytes, ms: writeMs }, read: { bytes, ms: readMs } };
  } finally {
    await fs.rm(`${benchDir}/${stepDirName(step)}`, { recursive: true, force: true });
    await fs.rm(baselineFile, { force: true });
  }
}

export function checkpointTargets(figs: readonly Figure[]): TargetVerdict[] {
  return figs.map((f) => ratioTarget(f, checkpointRatioTarget));
}

/** The checkpoint benchmark with an explicit configuration (tests use a tiny one). */
export async function runCheckpointBench(ctx: BenchContext, cfg: CheckpointBenchConfig): Promise<Figure[]> {
  checkConfig(cfg);
  const tensorBytes = Math.floor(cfg.checkpointBytes / cfg.shards);
  const totalBytes = tensorBytes * cfg.shards;
  const shape = `${cfg.shards} tensors of ${formatBytes(tensorBytes)}`;
  ctx.log(`checkpoint: ${formatBytes(totalBytes)} in ${shape}, ${ctx.runs} runs`);
  return withBenchCluster(ctx, { name: 'checkpoint', ...(cfg.nodeArgs === undefined ? {} : { nodeArgs: cfg.nodeArgs }) }, async (b) => {
    const p: Pieces = { tensors: makeTensors(cfg.shards, tensorBytes), pieceBytes: cfg.pieceBytes };
    // The caller's tensors to load into: allocated and touched once, before any clock runs.
    const into = p.tensors.map((t) => Buffer.allocUnsafe(t.length).fill(0));
    await b.fs.mkdir(benchDir, { recursive: true });
    const series: { [K in keyof RunResult]: number[] } = { save: [], loadInto: [], load: [], write: [], read: [] };
    // Runs interleave so that each figure and its baseline see the same noise on a shared machine.
    for (let r = 0; r < ctx.runs; r++) {
      const run = await checkpointRun(b.fs, r, p, into, cfg);
      for (const k of ['save', 'loadInto', 'load', 'write', 'read'] as const) series[k].push(passGBps(run[k]));
      ctx.log(
        `checkpoint: run ${r + 1}/${ctx.runs} GB/s: save ${series.save[r]!.toFixed(3)}, sequential write ${series.write[r]!.toFixed(3)}, ` +
          `load into tensors ${series.loadInto[r]!.toFixed(3)}, load into new buffers ${series.load[r]!.toFixed(3)}, sequential read ${series.read[r]!.toFixed(3)}`,
      );
    }
    const file = `one ${formatBytes(totalBytes)} flyfs file, ${formatBytes(Math.min(cfg.pieceBytes, totalBytes))} pieces`;
    const out = [
      figure(`flyfs checkpoint save, ${shape} (saveCheckpoint)`, unitGBps, measured(series.save), `sequential write, ${file}`, measured(series.write)),
      figure(`flyfs checkpoint load into the caller's tensors, ${shape} (loadCheckpoint into, CRC32C checked)`, unitGBps, measured(series.loadInto), `sequential read, ${file}, into one reused buffer`, measured(series.read)),
      figure(`flyfs checkpoint load into new buffers, ${shape} (loadCheckpoint, CRC32C checked)`, unitGBps, measured(series.load), `sequential read, ${file}, into one reused buffer`, measured(series.read)),
    ];
    logTargets(ctx, 'checkpoint', checkpointTargets(out));
    return out;
  });
}

/** The checkpoint benchmark (registered in bench/index.ts); ctx.sizeBytes is the checkpoint's size. */
export async function runCheckpoint(ctx: BenchContext): Promise<Figure[]> {
  return runCheckpointBench(ctx, { ...checkpointBenchDefaults, checkpointBytes: ctx.sizeBytes });
}
