// The dataset packer: samples in, a packed dataset out (format.ts). Samples are appended to
// shard files of about `shardBytes` each; the index and then the manifest are written last, all
// in a folder beside the destination that is renamed into place at the end, so a reader sees
// either no dataset or a whole one, also when the packer dies midway.
import { randomUUID } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { flyfsError } from '../../common/errors.js';
import { limits } from '../../common/limits.js';
import { pathExists } from '../exists.js';
import type { FileHandle } from '../file-handle.js';
import type { FileSystem } from '../fs.js';
import { PieceWriter } from '../piece-writer.js';
import {
  datasetFormat, datasetVersion, encodeIndex, indexName, manifestName, shardName,
  type DatasetManifest, type SampleLocation,
} from './format.js';

export interface PackOptions {
  /** A shard is closed once it holds this many bytes (a larger sample gets a shard of its own). */
  shardBytes?: number;
  /** Called after each sample with the samples and bytes packed so far. */
  onProgress?: (samples: number, bytes: number) => void;
}

interface OpenShard { handle: FileHandle; writer: PieceWriter }

/** Packs `samples` (in order: sample i is the i-th yielded) into a new dataset at `dest`. */
export async function packDataset(fs: FileSystem, samples: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, dest: string, o: PackOptions = {}): Promise<DatasetManifest> {
  const shardBytes = o.shardBytes ?? limits.datasetShardBytesDefault;
  if (!Number.isSafeInteger(shardBytes) || shardBytes < 1 || shardBytes > limits.fileBytesMax) {
    throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `shardBytes must be an integer 1..${limits.fileBytesMax}`);
  }
  const target = dest.replace(/\/+$/, '') || '/';
  if (await pathExists(fs, target)) throw flyfsError('FLYFS_ERR_EXISTS', `${target} exists; a dataset is packed into a new folder`, { path: target });
  const staging = `${target}.packing-${randomUUID().slice(0, 8)}`;
  await fs.mkdir(staging, { recursive: true });
  const locations: SampleLocation[] = [];
  const shards: Array<{ name: string; bytes: number }> = [];
  let current: OpenShard | undefined;
  let total = 0;
  const closeShard = async (): Promise<void> => {
    if (current === undefined) return;
    const s = current;
    current = undefined;
    try { await s.writer.finish(); } finally { await s.handle.close(); }
    shards.push({ name: shardName(shards.length), bytes: s.writer.length });
  };
  try {
    for await (const sample of samples) {
      if (sample.byteLength > limits.datasetSampleBytesMax) {
        throw flyfsError('FLYFS_ERR_LIMIT', `sample ${locations.length} is ${sample.byteLength} bytes; at most ${limits.datasetSampleBytesMax}`);
      }
      if (locations.length >= limits.datasetSamplesMax) throw flyfsError('FLYFS_ERR_LIMIT', `at most ${limits.datasetSamplesMax} samples`);
      if (current !== undefined && current.writer.length > 0 && current.writer.length + sample.byteLength > shardBytes) await closeShard();
      if (current === undefined) {
        const handle = await fs.open(`${staging}/${shardName(shards.length)}`, 'wx');
        current = { handle, writer: new PieceWriter(handle) };
      }
      locations.push({ shard: shards.length, offset: current.writer.length, length: sample.byteLength, crc32: crc32(sample) });
      await current.writer.append(sample);
      total += sample.byteLength;
      o.onProgress?.(locations.length, total);
    }
    await closeShard();
    const index = encodeIndex(locations);
    await fs.writeFile(`${staging}/${indexName}`, index);
    const manifest: DatasetManifest = {
      format: datasetFormat, version: datasetVersion, samples: locations.length, totalBytes: total, shards,
      index: { name: indexName, bytes: index.length, crc32: crc32(index) }, createdAt: new Date().toISOString(),
    };
    await fs.writeFile(`${staging}/${manifestName}`, JSON.stringify(manifest, null, 1));
    await fs.rename(staging, target);
    return manifest;
  } catch (err) {
    if (current !== undefined) await current.handle.close().catch(() => undefined);
    await fs.rm(staging, { recursive: true, force: true }).catch(() => undefined);
    throw err;
  }
}

/** The regular files of a local folder, sorted by name, as samples. */
export async function* localFolderSamples(dir: string): AsyncGenerator<Buffer> {
  const names = (await readdir(dir, { withFileTypes: true })).filter((d) => d.isFile()).map((d) => d.name).sort();
  for (const n of names) yield await readFile(join(dir, n));
}

/** The regular files of a flyfs folder, sorted by name, as samples (a directory dataset, packed). */
export async function* flyfsFolderSamples(fs: FileSystem, dir: string): AsyncGenerator<Buffer> {
  const names = (await fs.readdir(dir, { withFileTypes: true })).filter((d) => d.isFile()).map((d) => d.name).sort();
  for (const n of names) yield await fs.readFile(`${dir.replace(/\/+$/, '')}/${n}`) as Buffer;
}
