// The packed dataset format. A packed dataset is a flyfs directory:
//
//   dataset.json      the manifest, written last: format, version, sample count, shards, index
//   index.bin         one 24-byte record per sample, little-endian:
//                       u32 shard, u32 length, u32 crc32 (zlib's CRC-32 of the sample), u32 0,
//                       f64 offset of the sample in its shard (exact below 2^53)
//   shard-NNNNN.bin   the samples' bytes back to back, in sample order
//
// A directory without dataset.json is a directory dataset: its regular files, sorted by name
// (byte order), are the samples. docs/dataset-checkpoint.md describes both.
import { crc32 } from 'node:zlib';
import { flyfsError } from '../../common/errors.js';
import { limits } from '../../common/limits.js';

export const manifestName = 'dataset.json';
export const indexName = 'index.bin';
export const datasetFormat = 'flyfs-dataset';
export const datasetVersion = 1;
export const indexRecordBytes = 24;

export function shardName(i: number): string { return `shard-${String(i).padStart(5, '0')}.bin`; }

export interface DatasetManifest {
  readonly format: typeof datasetFormat;
  readonly version: typeof datasetVersion;
  readonly samples: number;
  readonly totalBytes: number;
  readonly shards: ReadonlyArray<{ readonly name: string; readonly bytes: number }>;
  readonly index: { readonly name: string; readonly bytes: number; readonly crc32: number };
  readonly createdAt: string;
}

export interface SampleLocation {
  readonly shard: number;
  readonly offset: number;
  readonly length: number;
  readonly crc32: number;
}

export function encodeIndex(locs: readonly SampleLocation[]): Buffer {
  const b = Buffer.alloc(locs.length * indexRecordBytes);
  locs.forEach((l, i) => {
    const o = i * indexRecordBytes;
    b.writeUInt32LE(l.shard, o);
    b.writeUInt32LE(l.length, o + 4);
    b.writeUInt32LE(l.crc32 >>> 0, o + 8);
    b.writeDoubleLE(l.offset, o + 16);
  });
  return b;
}

function bad(path: string, detail: string): never {
  throw flyfsError('FLYFS_ERR_BAD_FORMAT', `${path}: ${detail}`, { path });
}

/** Checks a manifest read from `path` (any JSON): every field, every bound. */
export function checkManifest(value: unknown, path: string): DatasetManifest {
  const m = value as Partial<DatasetManifest> | null;
  if (m === null || typeof m !== 'object' || m.format !== datasetFormat) bad(path, `not a ${datasetFormat} manifest`);
  if (m.version !== datasetVersion) bad(path, `unsupported version ${String(m.version)}`);
  const isCount = (v: unknown, max: number): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v <= max;
  if (!isCount(m.samples, limits.datasetSamplesMax)) bad(path, `samples must be an integer 0..${limits.datasetSamplesMax}`);
  if (!isCount(m.totalBytes, limits.fileBytesMax)) bad(path, 'totalBytes');
  if (!Array.isArray(m.shards) || m.shards.length > m.samples + 1) bad(path, 'shards');
  for (const s of m.shards) {
    if (s === null || typeof s !== 'object' || typeof s.name !== 'string' || !/^shard-\d{5,}\.bin$/.test(s.name) || !isCount(s.bytes, limits.fileBytesMax)) bad(path, 'a shard entry');
  }
  const ix = m.index;
  if (ix === undefined || ix === null || ix.name !== indexName || ix.bytes !== m.samples * indexRecordBytes || !isCount(ix.crc32, 2 ** 32 - 1)) bad(path, 'index entry');
  return m as DatasetManifest;
}

/** Where every sample lies, in typed arrays (a record per sample costs 24 bytes, not an object). */
export class SampleTable {
  constructor(
    readonly shard: Uint32Array,
    readonly length: Uint32Array,
    readonly crc32: Uint32Array,
    readonly offset: Float64Array,
  ) {}

  get size(): number { return this.shard.length; }

  at(i: number): SampleLocation {
    return { shard: this.shard[i]!, offset: this.offset[i]!, length: this.length[i]!, crc32: this.crc32[i]! };
  }
}

/** Decodes and checks the index against its manifest: CRC, bounds, and samples inside their shards. */
export function decodeIndex(bytes: Buffer, m: DatasetManifest, path: string): SampleTable {
  if (bytes.length !== m.index.bytes) bad(path, `index is ${bytes.length} bytes, the manifest says ${m.index.bytes}`);
  if (crc32(bytes) !== m.index.crc32) throw flyfsError('FLYFS_ERR_CORRUPT', `${path}: index CRC-32 mismatch`, { path });
  const n = m.samples;
  const t = new SampleTable(new Uint32Array(n), new Uint32Array(n), new Uint32Array(n), new Float64Array(n));
  for (let i = 0; i < n; i++) {
    const o = i * indexRecordBytes;
    const shard = bytes.readUInt32LE(o);
    const length = bytes.readUInt32LE(o + 4);
    const offset = bytes.readDoubleLE(o + 16);
    const s = m.shards[shard];
    if (s === undefined || length > limits.datasetSampleBytesMax || !Number.isSafeInteger(offset) || offset < 0 || offset + length > s.bytes) {
      bad(path, `index record ${i} points outside its shard`);
    }
    t.shard[i] = shard; t.length[i] = length; t.offset[i] = offset; t.crc32[i] = bytes.readUInt32LE(o + 8);
  }
  return t;
}
