// Checkpoint save and restore. A checkpoint is a folder `DIR/step-NNNNNNNNNNNN` holding one file
// per tensor and `manifest.json` (names, dtypes and shapes as given, sizes, CRC32Cs). A save
// writes every tensor in parallel into a staging folder `DIR/.staging-STEP-SAVEID`, then the
// manifest, then renames the staging folder to the step's name: that rename is the publish, one
// atomic metadata operation, so a reader finds the old checkpoint or the new one, never a part
// of one — also when the saver is killed midway (its staging folder is left behind and removed
// by a later save). Several ranks may save into one step: each writes its tensors and a part
// file; rank 0 waits for all parts, merges them into the manifest and publishes.
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { crc32 } from 'node:zlib';
import { flyfsError, FlyfsError } from '../../common/errors.js';
import { crc32c } from '../../storageserver/crc32c.js';
import { limits } from '../../common/limits.js';
import { forEachParallel, forEachWithinBudget } from '../../common/parallel.js';
import { pathExists, readTextIfExists } from '../exists.js';
import type { FileSystem } from '../fs.js';
import { PieceWriter, pieceWriterDefaults } from '../piece-writer.js';

export type TensorData = ArrayBufferView | ReadableStream<Uint8Array> | Readable | AsyncIterable<Uint8Array>;
export interface TensorSpec { data: TensorData; dtype?: string; shape?: readonly number[] }
export type TensorInput = TensorData | TensorSpec;

export interface TensorEntry {
  readonly file: string;
  readonly bytes: number;
  /** CRC32C (Castagnoli) of the tensor's bytes: the checksum of manifests of version 2. */
  readonly crc32c?: number;
  /** zlib's CRC-32 of the tensor's bytes: the checksum of manifests of version 1 (read, no longer written). */
  readonly crc32?: number;
  readonly rank: number;
  readonly dtype?: string;
  readonly shape?: readonly number[];
}

export interface CheckpointManifest {
  readonly format: 'flyfs-checkpoint';
  /** 2: tensors carry `crc32c` (written now); 1: tensors carry zlib's `crc32` (still loaded). */
  readonly version: 1 | 2;
  readonly step: number;
  readonly worldSize: number;
  readonly createdAt: string;
  readonly metadata?: unknown;
  readonly tensors: Readonly<Record<string, TensorEntry>>;
}

export interface CheckpointInfo { readonly step: number; readonly path: string }

export interface SaveOptions {
  rank?: number;
  worldSize?: number;
  /** Names one save of a step across its ranks; required when worldSize > 1 (all ranks pass the same). */
  saveId?: string;
  /** After publishing, keep only the newest n checkpoints (rank 0 prunes). */
  keepLast?: number;
  /** Any JSON, kept in the manifest (rank 0's is used). */
  metadata?: unknown;
  /** How long rank 0 waits for the other ranks' parts, and the others for the publish (default 10 min). */
  publishTimeoutMs?: number;
}

export interface LoadOptions {
  /** The step to load (default: the latest). */
  step?: number;
  /** Only these tensors (default: all). */
  names?: readonly string[];
  /**
   * Reads these tensors into the caller's memory (a model's allocated weights, say) instead of
   * new buffers: each view must be exactly the tensor's size, and the loaded tensor's `data` is a
   * Buffer over that view. Names here must be among those loaded.
   */
  into?: Readonly<Record<string, ArrayBufferView>>;
}

export interface LoadedTensor {
  readonly data: Buffer;
  readonly dtype?: string;
  readonly shape?: readonly number[];
}

const manifestFile = 'manifest.json';
/** The manifest version saves write; readCheckpointManifest reads 1 and 2. */
const manifestVersion = 2;
const stepPrefix = 'step-';
const stagingPrefix = '.staging-';
const removingPrefix = '.removing-';
const stepDigits = 12;
const tensorNameBytesMax = 1024;
const publishPollMs = 50;
const publishTimeoutMsDefault = 600_000;

export function stepDirName(step: number): string { return `${stepPrefix}${String(step).padStart(stepDigits, '0')}`; }

function stepOfName(name: string): number | undefined {
  const m = /^step-(\d{12,})$/.exec(name);
  return m === null ? undefined : Number(m[1]);
}

function trimDir(dir: string): string { return dir.replace(/\/+$/, '') || '/'; }

function invalid(detail: string): FlyfsError { return flyfsError('FLYFS_ERR_INVALID_ARGUMENT', detail); }

function checkStep(step: number): void {
  if (!Number.isSafeInteger(step) || step < 0 || step >= 10 ** stepDigits) throw invalid(`step must be an integer 0..${10 ** stepDigits - 1}, not ${step}`);
}

function isSpec(t: TensorInput): t is TensorSpec {
  return typeof t === 'object' && t !== null && 'data' in t && !ArrayBuffer.isView(t) && !(t instanceof Readable);
}

function partName(rank: number): string { return `part-${String(rank).padStart(5, '0')}.json`; }

/** Saves this rank's tensors as checkpoint `step` under `dir`, and publishes it (rank 0). */
export async function saveCheckpoint(fs: FileSystem, dir: string, step: number, tensors: Readonly<Record<string, TensorInput>>, o: SaveOptions = {}): Promise<CheckpointInfo> {
  const root = trimDir(dir);
  checkStep(step);
  const worldSize = o.worldSize ?? 1;
  const rank = o.rank ?? 0;
  if (!Number.isSafeInteger(worldSize) || worldSize < 1 || worldSize > limits.checkpointRanksMax) throw invalid(`worldSize must be 1..${limits.checkpointRanksMax}`);
  if (!Number.isSafeInteger(rank) || rank < 0 || rank >= worldSize) throw invalid(`rank must be 0..${worldSize - 1}`);
  if (worldSize > 1 && o.saveId === undefined) throw invalid('a save with several ranks needs a saveId that every rank passes');
  const saveId = o.saveId ?? randomUUID().slice(0, 8);
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(saveId)) throw invalid('saveId: 1–64 letters, digits, _ . -');
  if (o.keepLast !== undefined && (!Number.isSafeInteger(o.keepLast) || o.keepLast < 1)) throw invalid('keepLast must be a positive integer');
  const names = Object.keys(tensors);
  if (names.length > limits.checkpointTensorsMax) throw flyfsError('FLYFS_ERR_LIMIT', `at most ${limits.checkpointTensorsMax} tensors in one checkpoint`);
  for (const n of names) if (n.length === 0 || Buffer.byteLength(n) > tensorNameBytesMax) throw invalid(`tensor names are 1..${tensorNameBytesMax} bytes`);
  const timeoutMs = o.publishTimeoutMs ?? publishTimeoutMsDefault;
  const published = `${root}/${stepDirName(step)}`;
  if (await pathExists(fs, published)) throw flyfsError('FLYFS_ERR_EXISTS', `checkpoint ${step} exists`, { path: published });

  const staging = `${root}/${stagingPrefix}${String(step).padStart(stepDigits, '0')}-${saveId}`;
  await fs.mkdir(staging, { recursive: true });
  const entries: Record<string, TensorEntry> = {};
  const writeOne = async (k: number): Promise<void> => {
    const name = names[k]!;
    const input = tensors[name]!;
    const spec: TensorSpec = isSpec(input) ? input : { data: input };
    const file = `r${String(rank).padStart(5, '0')}-${String(k).padStart(6, '0')}.bin`;
    const written = await writeTensor(fs, `${staging}/${file}`, spec.data);
    entries[name] = {
      file, bytes: written.bytes, crc32c: written.crc32c, rank,
      ...(spec.dtype === undefined ? {} : { dtype: spec.dtype }),
      ...(spec.shape === undefined ? {} : { shape: [...spec.shape] }),
    };
  };
  // Bytes in flight are bounded as well as files: 8 tensors of 64 MiB at once saved at 0.13 GB/s,
  // 2 at 0.2 GB/s (chains of 3 on 2 cores; BENCHMARKS.md, checkpoint).
  await forEachWithinBudget(names.length, { limit: limits.checkpointFilesInflight, costMax: limits.checkpointSaveBytesInflight, cost: (k) => tensorWriteBytes(tensors[names[k]!]!) }, writeOne);
  // This rank's part, made visible whole by a rename.
  await fs.writeFile(`${staging}/${partName(rank)}.tmp`, JSON.stringify({ rank, worldSize, saveId, tensors: entries }));
  await fs.rename(`${staging}/${partName(rank)}.tmp`, `${staging}/${partName(rank)}`);

  const deadline = Date.now() + timeoutMs;
  if (rank !== 0) {
    // The others wait until rank 0 has published (or the step is there from this save).
    while (!(await pathExists(fs, `${published}/${manifestFile}`))) {
      if (Date.now() > deadline) throw flyfsError('FLYFS_ERR_TIMEOUT', `checkpoint ${step} was not published within ${timeoutMs} ms`, { path: published });
      await sleep(publishPollMs);
    }
    return { step, path: published };
  }
  const merged: Record<string, TensorEntry> = {};
  for (let r = 0; r < worldSize; r++) {
    const partPath = `${staging}/${partName(r)}`;
    let text: string | undefined;
    for (;;) {
      text = await readTextIfExists(fs, partPath);
      if (text !== undefined) break;
      if (Date.now() > deadline) throw flyfsError('FLYFS_ERR_TIMEOUT', `rank ${r} did not save its part of checkpoint ${step} within ${timeoutMs} ms`, { path: partPath });
      await sleep(publishPollMs);
    }
    const part = JSON.parse(text) as { rank: number; worldSize: number; saveId: string; tensors: Record<string, TensorEntry> };
    if (part.rank !== r || part.worldSize !== worldSize || part.saveId !== saveId) {
      throw flyfsError('FLYFS_ERR_BAD_FORMAT', `part of rank ${r} was saved with rank ${part.rank}, worldSize ${part.worldSize}, saveId ${part.saveId}`, { path: partPath });
    }
    for (const [name, e] of Object.entries(part.tensors)) {
      if (Object.hasOwn(merged, name)) throw invalid(`tensor '${name}' was saved by ranks ${merged[name]!.rank} and ${r}`);
      merged[name] = e;
    }
  }
  const manifest: CheckpointManifest = {
    format: 'flyfs-checkpoint', version: manifestVersion, step, worldSize, createdAt: new Date().toISOString(),
    ...(o.metadata === undefined ? {} : { metadata: o.metadata }),
    tensors: merged,
  };
  const text = JSON.stringify(manifest);
  if (Buffer.byteLength(text) > limits.checkpointManifestBytesMax) throw flyfsError('FLYFS_ERR_LIMIT', `the manifest exceeds ${limits.checkpointManifestBytesMax} bytes`);
  await fs.writeFile(`${staging}/${manifestFile}`, text);
  try {
    await fs.rename(staging, published);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ENOTEMPTY' || code === 'EEXIST') throw flyfsError('FLYFS_ERR_EXISTS', `checkpoint ${step} was published by another save`, { path: published, cause: err });
    throw err;
  }
  await removeAbandoned(fs, root, step);
  if (o.keepLast !== undefined) await pruneCheckpoints(fs, root, o.keepLast);
  return { step, path: published };
}

/** The bytes a tensor's write keeps in flight: a view's size, a stream's piece writer's bound. */
function tensorWriteBytes(input: TensorInput): number {
  const data = isSpec(input) ? input.data : input;
  return ArrayBuffer.isView(data) ? data.byteLength : pieceWriterDefaults.pieceBytes * pieceWriterDefaults.inflight;
}

async function writeTensor(fs: FileSystem, path: string, data: TensorData): Promise<{ bytes: number; crc32c: number }> {
  const h = await fs.open(path, 'wx');
  try {
    if (ArrayBuffer.isView(data)) {
      const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      const sum = crc32c(bytes);
      if (bytes.length > 0) await h.write(bytes, 0, bytes.length, 0);
      return { bytes: bytes.length, crc32c: sum };
    }
    const w = new PieceWriter(h, { ...pieceWriterDefaults, checksum: crc32c });
    const source: AsyncIterable<unknown> = data instanceof ReadableStream ? Readable.fromWeb(data as never) : data;
    for await (const piece of source) {
      if (!(piece instanceof Uint8Array)) throw invalid(`a tensor stream yields bytes (Uint8Array), not ${typeof piece}`);
      await w.append(piece);
    }
    await w.finish();
    return { bytes: w.length, crc32c: w.checksum };
  } finally {
    await h.close();
  }
}

/**
 * Removes staging folders of saves of steps up to `step` (their saves were abandoned or lost)
 * and what an interrupted prune left in `.removing-*` folders.
 */
async function removeAbandoned(fs: FileSystem, root: string, step: number): Promise<void> {
  for (const name of await fs.readdir(root)) {
    const m = /^\.staging-(\d{12,})-/.exec(name);
    if ((m !== null && Number(m[1]) <= step) || name.startsWith(removingPrefix)) await fs.rm(`${root}/${name}`, { recursive: true, force: true });
  }
}

/**
 * Keeps the newest `keep` published checkpoints under `dir`, removing older ones. Each goes in
 * one atomic step (renamed out of the step names) before its files are deleted, so a listed
 * checkpoint is never a half-removed one, also when the pruner dies midway.
 */
export async function pruneCheckpoints(fs: FileSystem, dir: string, keep: number): Promise<number[]> {
  const all = await listCheckpoints(fs, dir);
  const drop = all.slice(0, Math.max(0, all.length - keep));
  const root = trimDir(dir);
  for (const c of drop) {
    const doomed = `${root}/${removingPrefix}${stepDirName(c.step)}-${randomUUID().slice(0, 8)}`;
    await fs.rename(c.path, doomed);
    await fs.rm(doomed, { recursive: true, force: true });
  }
  return drop.map((c) => c.step);
}

/** Published checkpoints under `dir`, oldest first. */
export async function listCheckpoints(fs: FileSystem, dir: string): Promise<CheckpointInfo[]> {
  const root = trimDir(dir);
  let names: string[];
  try { names = await fs.readdir(root); } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return [];
    throw err;
  }
  const out: CheckpointInfo[] = [];
  for (const n of names) {
    const step = stepOfName(n);
    if (step !== undefined) out.push({ step, path: `${root}/${n}` });
  }
  return out.sort((a, b) => a.step - b.step);
}

/** The newest published checkpoint, or undefined when there is none. */
export async function latestCheckpoint(fs: FileSystem, dir: string): Promise<CheckpointInfo | undefined> {
  const all = await listCheckpoints(fs, dir);
  return all[all.length - 1];
}

/** The manifest of checkpoint `step` (default: the latest), checked. */
export async function readCheckpointManifest(fs: FileSystem, dir: string, step?: number): Promise<CheckpointManifest> {
  const root = trimDir(dir);
  let s = step;
  if (s === undefined) {
    const l = await latestCheckpoint(fs, root);
    if (l === undefined) throw flyfsError('FLYFS_ERR_NOT_FOUND', `no checkpoint under ${root}`, { path: root });
    s = l.step;
  }
  checkStep(s);
  const path = `${root}/${stepDirName(s)}/${manifestFile}`;
  const text = await fs.readFile(path, 'utf8') as string;
  let m: Partial<CheckpointManifest>;
  try { m = JSON.parse(text) as Partial<CheckpointManifest>; } catch { throw flyfsError('FLYFS_ERR_BAD_FORMAT', `${path} is not JSON`, { path }); }
  if (m.format !== 'flyfs-checkpoint' || (m.version !== 1 && m.version !== 2) || m.step !== s || typeof m.tensors !== 'object' || m.tensors === null) {
    throw flyfsError('FLYFS_ERR_BAD_FORMAT', `${path} is not a flyfs checkpoint manifest of step ${s}`, { path });
  }
  for (const [name, e] of Object.entries(m.tensors)) {
    const sum = m.version === 1 ? e?.crc32 : e?.crc32c;
    if (typeof e?.file !== 'string' || !/^r\d{5}-\d{6}\.bin$/.test(e.file) || !Number.isSafeInteger(e.bytes) || e.bytes < 0 || !isUint32(sum)) {
      throw flyfsError('FLYFS_ERR_BAD_FORMAT', `${path}: entry of tensor '${name}'`, { path });
    }
  }
  return m as CheckpointManifest;
}

function isUint32(v: unknown): v is number { return Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) <= 0xffffffff; }

/** The checksum a manifest of `version` keeps for a tensor, of `data`, and the kept value. */
function tensorChecksum(version: 1 | 2, e: TensorEntry, data: Uint8Array): { name: string; got: number; want: number } {
  return version === 1 ? { name: 'CRC-32', got: crc32(data), want: e.crc32! } : { name: 'CRC32C', got: crc32c(data), want: e.crc32c! };
}

/** Reads all of the file at `path` into `into`, which must be the file's exact size. */
async function readExactly(fs: FileSystem, path: string, into: Uint8Array, what: string): Promise<void> {
  const h = await fs.open(path, 'r');
  try {
    const size = (await h.stat()).size;
    if (size !== into.byteLength) throw flyfsError('FLYFS_ERR_CORRUPT', `${what}: ${size} bytes, the manifest says ${into.byteLength}`, { path });
    for (let got = 0; got < into.byteLength;) {
      const { bytesRead } = await h.read(into, got, into.byteLength - got, got);
      if (bytesRead === 0) throw flyfsError('FLYFS_ERR_CORRUPT', `${what}: the file ended at ${got} of ${into.byteLength} bytes`, { path });
      got += bytesRead;
    }
  } finally {
    await h.close();
  }
}

/** Loads all or some tensors of a checkpoint in parallel, each checked against its size and checksum. */
export async function loadCheckpoint(fs: FileSystem, dir: string, o: LoadOptions = {}): Promise<{ step: number; manifest: CheckpointManifest; tensors: Record<string, LoadedTensor> }> {
  const root = trimDir(dir);
  const manifest = await readCheckpointManifest(fs, root, o.step);
  const names = o.names ?? Object.keys(manifest.tensors);
  for (const n of names) {
    if (!Object.hasOwn(manifest.tensors, n)) throw flyfsError('FLYFS_ERR_NOT_FOUND', `checkpoint ${manifest.step} has no tensor '${n}'`);
  }
  const into = o.into ?? {};
  const loading = new Set(names);
  for (const [n, view] of Object.entries(into)) {
    if (!loading.has(n)) throw invalid(`into names tensor '${n}', which this load does not load`);
    if (!ArrayBuffer.isView(view)) throw invalid(`into['${n}'] is not an ArrayBufferView`);
    const want = manifest.tensors[n]!.bytes;
    if (view.byteLength !== want) throw invalid(`into['${n}'] holds ${view.byteLength} bytes; tensor '${n}' has ${want}`);
  }
  const base = `${root}/${stepDirName(manifest.step)}`;
  const tensors: Record<string, LoadedTensor> = {};
  await forEachParallel(names.length, limits.checkpointFilesInflight, async (k) => {
    const name = names[k]!;
    const e = manifest.tensors[name]!;
    const path = `${base}/${e.file}`;
    const view = Object.hasOwn(into, name) ? into[name]! : undefined;
    const data = view === undefined ? Buffer.allocUnsafe(e.bytes) : Buffer.from(view.buffer, view.byteOffset, view.byteLength);
    await readExactly(fs, path, data, `tensor '${name}'`);
    const sum = tensorChecksum(manifest.version, e, data);
    if (sum.got !== sum.want) throw flyfsError('FLYFS_ERR_CORRUPT', `tensor '${name}': ${sum.name} mismatch`, { path });
    tensors[name] = { data, ...(e.dtype === undefined ? {} : { dtype: e.dtype }), ...(e.shape === undefined ? {} : { shape: e.shape }) };
  });
  return { step: manifest.step, manifest, tensors };
}

function sleep(ms: number): Promise<void> { return new Promise((r) => setTimeout(r, ms)); }
