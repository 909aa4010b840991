// A reference sparse-attention consumer on the CPU (DeepSeek-V3.2's shape, small dimensions of
// compute): a lightning indexer scores every cached token from the indexer-key pool, the top-k
// tokens are selected, exactly those tokens' MLA latents are fetched with gatherTokens, and
// attention runs over them. It shows the calls an inference engine makes and, run against a
// dense in-memory copy of the same cache (denseSparseAttention), proves the store returns the
// right bytes: both paths run the same arithmetic on what should be the same bytes.
//
// Entry formats (FlashMLA's FP8 cache): a latent entry is 512 FP8 e4m3 values in 4 tiles of 128,
// 4 float32 scales (one per tile), then 64 BF16 rope values = 656 bytes; an indexer key is 128
// FP8 e4m3 values and a float32 scale = 132 bytes.
import { flyfsError } from '../common/errors.js';
import type { KvClient } from './client.js';
import { bytesPerToken, entryOffset, layerBytes, poolBase, type KvLayout } from './layout.js';

export const latentDims = 512;
export const ropeDims = 64;
export const indexerDims = 128;
const tile = 128;

/** FP8 e4m3 (fn: no infinities, 0x7f/0xff NaN) to float. */
const fp8 = new Float32Array(256);
for (let b = 0; b < 256; b++) {
  const sign = b & 0x80 ? -1 : 1;
  const e = (b >> 3) & 0xf;
  const m = b & 7;
  fp8[b] = (b & 0x7f) === 0x7f ? Number.NaN : sign * (e === 0 ? (m / 8) * 2 ** -6 : (1 + m / 8) * 2 ** (e - 7));
}

const bf16Bits = new Uint32Array(1);
const bf16Value = new Float32Array(bf16Bits.buffer);

export function decodeIndexerKey(b: Uint8Array, at: number, out: Float32Array): void {
  const scale = new DataView(b.buffer, b.byteOffset + at + indexerDims, 4).getFloat32(0, true);
  for (let i = 0; i < indexerDims; i++) out[i] = fp8[b[at + i]!]! * scale;
}

/** A latent entry as 576 floats: 512 dequantized latent values, then 64 rope values. */
export function decodeLatent(b: Uint8Array, at: number, out: Float32Array): void {
  const dv = new DataView(b.buffer, b.byteOffset + at, 656);
  for (let t = 0; t < latentDims / tile; t++) {
    const scale = dv.getFloat32(latentDims + 4 * t, true);
    for (let i = 0; i < tile; i++) out[t * tile + i] = fp8[b[at + t * tile + i]!]! * scale;
  }
  for (let i = 0; i < ropeDims; i++) {
    bf16Bits[0] = dv.getUint16(latentDims + 16 + 2 * i, true) << 16;
    out[latentDims + i] = bf16Value[0]!;
  }
}

export interface SparseQuery {
  /** Indexer query per indexer head (128 floats each) and the heads' weights. */
  readonly indexerQ: readonly Float32Array[];
  readonly indexerW: Float32Array;
  /** The attention query over latent + rope (576 floats). */
  readonly q: Float32Array;
  readonly topK: number;
  readonly softmaxScale: number;
}

/** Lightning-indexer scores: Σ_h w_h · ReLU(q_h · k_s), over `count` packed indexer keys. */
export function indexerScores(keys: Uint8Array, count: number, query: SparseQuery): Float64Array {
  const k = new Float32Array(indexerDims);
  const scores = new Float64Array(count);
  for (let s = 0; s < count; s++) {
    decodeIndexerKey(keys, s * (indexerDims + 4), k);
    let total = 0;
    query.indexerQ.forEach((qh, h) => {
      let dot = 0;
      for (let i = 0; i < indexerDims; i++) dot += qh[i]! * k[i]!;
      total += query.indexerW[h]! * Math.max(0, dot);
    });
    scores[s] = total;
  }
  return scores;
}

/** The k highest scores' token indices, ascending (ties and NaNs broken by index). */
export function selectTopK(scores: Float64Array, k: number): Int32Array {
  const order = Array.from({ length: scores.length }, (_, i) => i);
  const v = (i: number): number => (Number.isNaN(scores[i]!) ? Number.NEGATIVE_INFINITY : scores[i]!);
  order.sort((a, b) => v(b) - v(a) || a - b);
  return Int32Array.from(order.slice(0, Math.min(k, order.length)).sort((a, b) => a - b));
}

/** Softmax attention of q over the packed latent entries; values are the 512 latent dims (MLA). */
export function attend(latents: Uint8Array, count: number, query: SparseQuery): Float64Array {
  const x = new Float32Array(latentDims + ropeDims);
  const logits = new Float64Array(count);
  const values: Float32Array[] = [];
  for (let s = 0; s < count; s++) {
    decodeLatent(latents, s * 656, x);
    let dot = 0;
    for (let i = 0; i < x.length; i++) dot += query.q[i]! * x[i]!;
    logits[s] = dot * query.softmaxScale;
    values.push(x.slice(0, latentDims));
  }
  let max = Number.NEGATIVE_INFINITY;
  for (const l of logits) if (l > max) max = l;
  let sum = 0;
  const p = logits.map((l) => { const e = Math.exp(l - max); sum += e; return e; });
  const out = new Float64Array(latentDims);
  for (let s = 0; s < count; s++) {
    const w = p[s]! / sum;
    const val = values[s]!;
    for (let i = 0; i < latentDims; i++) out[i] = out[i]! + w * val[i]!;
  }
  return out;
}

function checkFormat(l: KvLayout): void {
  if (l.latentBytesPerToken !== 656 || l.indexerBytesPerToken !== indexerDims + 4) {
    throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', 'the reference consumer reads FlashMLA FP8 layouts (656 B latents, 132 B indexer keys)');
  }
}

export interface SparseResult { readonly indices: Int32Array; readonly output: Float64Array }

/** Sparse attention for one layer over the cached pages `keys`, reading from the store. */
export async function sparseAttention(client: KvClient, keys: readonly Uint8Array[], layer: number, query: SparseQuery): Promise<SparseResult> {
  checkFormat(client.layout);
  const tokens = keys.length * client.layout.pageTokens;
  // The indexer reads one layer of the indexer pool of every page: contiguous per page.
  const pages = await client.getPages(keys, { pool: 'indexer', layers: [layer] });
  if (pages.some((p) => p === null)) throw flyfsError('FLYFS_ERR_NOT_FOUND', 'a page of the context is not cached');
  const indices = selectTopK(indexerScores(Buffer.concat(pages as Buffer[]), tokens, query), query.topK);
  const latents = await client.gatherTokens(keys, layer, indices, 'latent');
  return { indices, output: attend(latents, indices.length, query) };
}

/** The same computation over a dense in-memory copy of the pages (whole page bytes each). */
export function denseSparseAttention(layout: KvLayout, pages: readonly Uint8Array[], layer: number, query: SparseQuery): SparseResult {
  checkFormat(layout);
  const ib = layerBytes(layout, 'indexer');
  const indexer = Buffer.concat(pages.map((p) => p.subarray(poolBase(layout, 'indexer') + layer * ib, poolBase(layout, 'indexer') + (layer + 1) * ib)));
  const indices = selectTopK(indexerScores(indexer, pages.length * layout.pageTokens, query), query.topK);
  const bpt = bytesPerToken(layout, 'latent');
  const latents = Buffer.alloc(indices.length * bpt);
  indices.forEach((t, j) => {
    const page = pages[Math.floor(t / layout.pageTokens)]!;
    const at = entryOffset(layout, 'latent', layer, t % layout.pageTokens);
    latents.set(page.subarray(at, at + bpt), j * bpt);
  });
  return { indices, output: attend(latents, indices.length, query) };
}
