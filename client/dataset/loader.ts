// The dataset loader: random access to sample i, and batches for training — per-epoch shuffle
// by seed, sharding by rank and world size (every sample exactly once per epoch across ranks),
// reads ahead up to `prefetch` batches, and resume from (epoch, step). A batch's samples are
// read as one I/O batch (fs.batch()), so reads to one storage server share requests.
import { crc32 } from 'node:zlib';
import { assert, flyfsError } from '../../common/errors.js';
import { limits } from '../../common/limits.js';
import { forEachParallel } from '../../common/parallel.js';
import { readTextIfExists } from '../exists.js';
import type { FileHandle } from '../file-handle.js';
import type { FileSystem } from '../fs.js';
import { checkManifest, decodeIndex, indexName, manifestName, type DatasetManifest, type SampleTable } from './format.js';
import { rankOrder } from './order.js';

export interface OpenDatasetOptions {
  /** Check each packed sample against its CRC-32 (default true). */
  verify?: boolean;
}

export interface LoaderOptions {
  batchSize: number;
  /** Seed of the per-epoch shuffle (an unsigned 32-bit integer; default 0). */
  seed?: number;
  /** Shuffle each epoch (default true); false visits samples in index order. */
  shuffle?: boolean;
  rank?: number;
  worldSize?: number;
  /** Batches read ahead of the consumer (default 2; 0 reads each batch when asked). */
  prefetch?: number;
  /** The loader runs epochs start.epoch … epochs − 1 (default: just the starting epoch; Infinity: until the consumer stops). */
  epochs?: number;
  /** Where to begin: a cursor saved from `Batch.next` (default epoch 0, step 0). */
  start?: Cursor;
}

export interface Cursor { readonly epoch: number; readonly step: number }

export interface Batch {
  readonly epoch: number;
  /** The batch's place in this rank's epoch, from 0. */
  readonly step: number;
  readonly indices: Uint32Array;
  readonly samples: Buffer[];
  /** The cursor to resume after this batch. */
  readonly next: Cursor;
}

type Source =
  | { kind: 'packed'; manifest: DatasetManifest; table: SampleTable; shards: Array<Promise<FileHandle> | undefined> }
  | { kind: 'directory'; files: string[]; sizes: number[] };

export class Dataset {
  private closed = false;

  /** @internal Use openDataset. */
  constructor(private readonly fs: FileSystem, readonly path: string, private readonly src: Source, private readonly verify: boolean) {}

  get kind(): 'packed' | 'directory' { return this.src.kind; }
  get length(): number { return this.src.kind === 'packed' ? this.src.table.size : this.src.files.length; }

  sampleLength(i: number): number {
    this.checkIndex(i);
    return this.src.kind === 'packed' ? this.src.table.length[i]! : this.src.sizes[i]!;
  }

  /** Sample i's bytes. */
  async get(i: number): Promise<Buffer> {
    return (await this.getMany([i]))[0]!;
  }

  /** Samples by index, read together. */
  async getMany(indices: ArrayLike<number>): Promise<Buffer[]> {
    if (this.closed) throw flyfsError('FLYFS_ERR_BAD_HANDLE', `dataset ${this.path} is closed`);
    if (indices.length > limits.datasetBatchSamplesMax) throw flyfsError('FLYFS_ERR_LIMIT', `at most ${limits.datasetBatchSamplesMax} samples per read`);
    for (let k = 0; k < indices.length; k++) this.checkIndex(indices[k]!);
    return this.src.kind === 'packed' ? this.readPacked(this.src, indices) : this.readFiles(this.src, indices);
  }

  /** Batches of one rank's epochs, from `start`; see LoaderOptions. */
  batches(o: LoaderOptions): AsyncGenerator<Batch> {
    const opts = checkLoaderOptions(o, this.length);
    return this.iterate(opts);
  }

  /** Steps (batches) of `rank` in one epoch. */
  stepsPerEpoch(o: Pick<LoaderOptions, 'batchSize' | 'rank' | 'worldSize'>): number {
    const rank = o.rank ?? 0;
    const world = o.worldSize ?? 1;
    const mine = this.length > rank ? Math.ceil((this.length - rank) / world) : 0;
    return Math.ceil(mine / o.batchSize);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.src.kind !== 'packed') return;
    const open = this.src.shards.filter((s): s is Promise<FileHandle> => s !== undefined);
    await Promise.all(open.map(async (p) => (await p.catch(() => undefined))?.close()));
  }

  async [Symbol.asyncDispose](): Promise<void> { await this.close(); }

  private checkIndex(i: number): void {
    if (!Number.isSafeInteger(i) || i < 0 || i >= this.length) {
      throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `sample ${i} is outside 0..${this.length - 1} of ${this.path}`);
    }
  }

  private shard(src: Extract<Source, { kind: 'packed' }>, s: number): Promise<FileHandle> {
    let h = src.shards[s];
    if (h === undefined) {
      h = this.fs.open(`${this.path}/${src.manifest.shards[s]!.name}`, 'r');
      // A failed open is tried again on the next read.
      h.catch(() => { if (src.shards[s] === h) src.shards[s] = undefined; });
      src.shards[s] = h;
    }
    return h;
  }

  private async readPacked(src: Extract<Source, { kind: 'packed' }>, indices: ArrayLike<number>): Promise<Buffer[]> {
    const t = src.table;
    const out: Buffer[] = new Array(indices.length);
    const handles = await Promise.all(Array.from({ length: indices.length }, (_, k) => this.shard(src, t.shard[indices[k]!]!)));
    const batch = this.fs.batch();
    for (let k = 0; k < indices.length; k++) {
      const i = indices[k]!;
      const buf = Buffer.allocUnsafe(t.length[i]!);
      out[k] = buf;
      batch.read(handles[k]!, buf, 0, buf.length, t.offset[i]!, k);
    }
    for await (const c of batch.submit()) {
      if (c.error !== undefined) throw c.error;
      const k = c.tag as number;
      const i = indices[k]!;
      if (c.bytes !== t.length[i]) throw flyfsError('FLYFS_ERR_CORRUPT', `sample ${i} of ${this.path}: read ${c.bytes} of ${t.length[i]} bytes (shard shorter than its index)`);
      if (this.verify && crc32(out[k]!) !== t.crc32[i]) throw flyfsError('FLYFS_ERR_CORRUPT', `sample ${i} of ${this.path}: CRC-32 mismatch`);
    }
    return out;
  }

  private async readFiles(src: Extract<Source, { kind: 'directory' }>, indices: ArrayLike<number>): Promise<Buffer[]> {
    const out: Buffer[] = new Array(indices.length);
    await forEachParallel(indices.length, directoryReadsInflight, async (k) => {
      out[k] = await this.fs.readFile(`${this.path}/${src.files[indices[k]!]!}`) as Buffer;
    });
    return out;
  }

  private async *iterate(o: Required<Omit<LoaderOptions, 'start'>> & { start: Cursor }): AsyncGenerator<Batch> {
    const ahead: Array<{ batch: Omit<Batch, 'samples'>; samples: Promise<Buffer[]> }> = [];
    const plan = planBatches(this.length, o);
    const fill = (): void => {
      while (ahead.length < Math.max(1, o.prefetch + 1)) {
        const b = plan.next();
        if (b.done) return;
        const samples = this.getMany(b.value.indices);
        samples.catch(() => undefined); // surfaced when the batch is yielded
        ahead.push({ batch: b.value, samples });
      }
    };
    try {
      fill();
      for (let a = ahead.shift(); a !== undefined; a = ahead.shift()) {
        const samples = await a.samples;
        fill();
        yield { ...a.batch, samples };
      }
    } finally {
      // The consumer stopped early: let the reads ahead finish before the caller closes handles.
      await Promise.all(ahead.map((a) => a.samples.catch(() => undefined)));
    }
  }
}

/** Samples read at once from a directory dataset (one file each). */
const directoryReadsInflight = 64;

/** The batches of one rank from a cursor on: pure, so a resumed run sees exactly the same ones. */
export function* planBatches(samples: number, o: { batchSize: number; seed: number; shuffle: boolean; rank: number; worldSize: number; epochs: number; start: Cursor }): Generator<Omit<Batch, 'samples'>> {
  for (let epoch = o.start.epoch; epoch < o.epochs; epoch++) {
    const order = rankOrder(samples, { seed: o.seed, epoch, rank: o.rank, worldSize: o.worldSize, shuffle: o.shuffle });
    const steps = Math.ceil(order.length / o.batchSize);
    for (let step = epoch === o.start.epoch ? o.start.step : 0; step < steps; step++) {
      const indices = order.subarray(step * o.batchSize, Math.min(order.length, (step + 1) * o.batchSize));
      const next = step + 1 < steps ? { epoch, step: step + 1 } : { epoch: epoch + 1, step: 0 };
      yield { epoch, step, indices, next };
    }
  }
}

function checkLoaderOptions(o: LoaderOptions, samples: number): Required<Omit<LoaderOptions, 'start'>> & { start: Cursor } {
  const int = (name: string, v: number, min: number, max: number): number => {
    if (!Number.isSafeInteger(v) || v < min || v > max) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `${name} must be an integer ${min}..${max}, not ${v}`);
    return v;
  };
  const worldSize = int('worldSize', o.worldSize ?? 1, 1, limits.checkpointRanksMax);
  const start = o.start ?? { epoch: 0, step: 0 };
  const r = {
    batchSize: int('batchSize', o.batchSize, 1, limits.datasetBatchSamplesMax),
    seed: int('seed', o.seed ?? 0, 0, 2 ** 32 - 1),
    shuffle: o.shuffle ?? true,
    rank: int('rank', o.rank ?? 0, 0, worldSize - 1),
    worldSize,
    prefetch: int('prefetch', o.prefetch ?? 2, 0, limits.datasetPrefetchMax),
    epochs: 0,
    start: { epoch: int('start.epoch', start.epoch, 0, 2 ** 31), step: int('start.step', start.step, 0, Math.max(0, samples)) },
  };
  r.epochs = o.epochs === Number.POSITIVE_INFINITY ? o.epochs : int('epochs', o.epochs ?? r.start.epoch + 1, r.start.epoch, 2 ** 31);
  return r;
}

/** Opens a packed dataset (a folder with dataset.json) or a directory dataset (a folder of sample files). */
export async function openDataset(fs: FileSystem, path: string, o: OpenDatasetOptions = {}): Promise<Dataset> {
  const dir = path.replace(/\/+$/, '') || '/';
  const manifestText = await readTextIfExists(fs, `${dir}/${manifestName}`);
  if (manifestText !== undefined) {
    if (manifestText.length > limits.checkpointManifestBytesMax) throw flyfsError('FLYFS_ERR_BAD_FORMAT', `${dir}/${manifestName} is too large`);
    let json: unknown;
    try { json = JSON.parse(manifestText); } catch { throw flyfsError('FLYFS_ERR_BAD_FORMAT', `${dir}/${manifestName} is not JSON`, { path: dir }); }
    const manifest = checkManifest(json, `${dir}/${manifestName}`);
    const table = decodeIndex(await fs.readFile(`${dir}/${indexName}`) as Buffer, manifest, `${dir}/${indexName}`);
    return new Dataset(fs, dir, { kind: 'packed', manifest, table, shards: new Array(manifest.shards.length).fill(undefined) }, o.verify ?? true);
  }
  const entries = await fs.readdir(dir, { withFileTypes: true });
  const files = entries.filter((e) => e.isFile()).map((e) => e.name).sort();
  if (files.length > limits.datasetSamplesMax) throw flyfsError('FLYFS_ERR_LIMIT', `${dir} holds more than ${limits.datasetSamplesMax} files`);
  const sizes: number[] = new Array(files.length);
  await forEachParallel(files.length, directoryReadsInflight, async (k) => { sizes[k] = (await fs.stat(`${dir}/${files[k]!}`)).size; });
  assert(sizes.length === files.length, 'a size per file');
  return new Dataset(fs, dir, { kind: 'directory', files, sizes }, o.verify ?? true);
}
