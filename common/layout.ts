// The layout rule of SPEC.md: file offset -> chunk index -> chain.
// chain = layout.chains[index mod stripe]; layout.chains is a seeded permutation of the chain
// table's chains, defined here so every client and server computes the same list.
import { flyfsError } from './errors.js';
import { limits } from './limits.js';

export interface FileLayout {
  readonly chunkSizeBytes: number;
  readonly stripe: number;
  readonly chainTableId: number;
  readonly chainTableVersion: number;
  readonly chains: readonly number[];
  readonly seed: number;
}

/** SplitMix64 over BigInt, truncated to 53 bits: deterministic across machines and versions. */
export function* splitMix64(seed: number): Generator<number, never> {
  let state = BigInt.asUintN(64, BigInt(seed));
  const mask = (1n << 64n) - 1n;
  for (;;) {
    state = (state + 0x9e3779b97f4a7c15n) & mask;
    let z = state;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & mask;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & mask;
    z = z ^ (z >> 31n);
    yield Number(z >> 11n);
  }
}

/**
 * Picks `stripe` chains out of `tableChains` by a Fisher-Yates shuffle driven by SplitMix64(seed),
 * taking the first `stripe` of the shuffled list.
 */
export function chooseChains(tableChains: readonly number[], stripe: number, seed: number): number[] {
  if (stripe < 1 || stripe > tableChains.length) {
    throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `stripe ${stripe} with ${tableChains.length} chains`);
  }
  const list = [...tableChains];
  const rng = splitMix64(seed);
  for (let i = list.length - 1; i > 0; i--) {
    const j = rng.next().value % (i + 1);
    const a = list[i]!;
    list[i] = list[j]!;
    list[j] = a;
  }
  return list.slice(0, stripe);
}

export function chainOfChunk(layout: FileLayout, index: number): number {
  const chain = layout.chains[index % layout.stripe];
  if (chain === undefined) throw flyfsError('FLYFS_ERR_INTERNAL', `layout has ${layout.chains.length} chains, stripe ${layout.stripe}`);
  return chain;
}

export interface ChunkSpan {
  /** Chunk index in the file. */
  readonly index: number;
  /** Offset inside the chunk. */
  readonly chunkOffset: number;
  /** Bytes of this span. */
  readonly length: number;
  /** Offset of this span relative to the start of the whole range. */
  readonly rangeOffset: number;
}

/** Splits the byte range [offset, offset + length) of a file into per-chunk spans. */
export function chunkSpans(chunkSizeBytes: number, offset: number, length: number): ChunkSpan[] {
  const spans: ChunkSpan[] = [];
  let done = 0;
  while (done < length) {
    const pos = offset + done;
    const index = Math.floor(pos / chunkSizeBytes);
    const chunkOffset = pos - index * chunkSizeBytes;
    const n = Math.min(chunkSizeBytes - chunkOffset, length - done);
    spans.push({ index, chunkOffset, length: n, rangeOffset: done });
    done += n;
  }
  return spans;
}

export function validateChunkSize(chunkSizeBytes: number): void {
  if (!Number.isInteger(chunkSizeBytes) || chunkSizeBytes < limits.chunkSizeBytesMin || chunkSizeBytes > limits.chunkSizeBytesMax
    || chunkSizeBytes % limits.chunkSizeAlignBytes !== 0) {
    throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT',
      `chunk size ${chunkSizeBytes} must be a multiple of ${limits.chunkSizeAlignBytes} in [${limits.chunkSizeBytesMin}, ${limits.chunkSizeBytesMax}]`);
  }
}

/** Offsets and lengths from users: integers, not negative, and the end within fileBytesMax. */
export function validateRange(offset: number, length: number, path?: string): void {
  const opts = path === undefined ? {} : { path };
  if (!Number.isSafeInteger(offset) || offset < 0) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `offset ${offset}`, opts);
  if (!Number.isSafeInteger(length) || length < 0) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `length ${length}`, opts);
  if (offset + length > limits.fileBytesMax) {
    throw flyfsError('FLYFS_ERR_FILE_TOO_LARGE', `end ${offset + length} beyond ${limits.fileBytesMax}`, opts);
  }
}
