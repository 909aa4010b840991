// Where a token's entries lie inside a page. A page holds two pools, each page-first and
// layer-major: [latent: layer 0 slots 0..63, layer 1 …][indexer: layer 0 slots 0..63, …].
// So (pool, layer, slot) is arithmetic: poolBase + layer × pageTokens × bytesPerToken + slot ×
// bytesPerToken. Defaults are DeepSeek-V3.2's: 61 layers, FlashMLA's FP8 latent of 656 B per
// token per layer (512 FP8 values, 4 float32 scales, 64 BF16 rope values) and the indexer's key
// of 132 B (128 FP8 values and a float32 scale).
import { flyfsError } from '../common/errors.js';
import { limits } from '../common/limits.js';

export type Pool = 'latent' | 'indexer';
export const pools: readonly Pool[] = ['latent', 'indexer'];

export interface KvLayout {
  readonly layers: number;
  readonly pageTokens: number;
  readonly latentBytesPerToken: number;
  readonly indexerBytesPerToken: number;
}

export const deepseekV32Layout: KvLayout = { layers: 61, pageTokens: 64, latentBytesPerToken: 656, indexerBytesPerToken: 132 };

/** A page is one chunk of its file, so it is at most the largest chunk. */
export const layoutLimits = { layersMax: 1024, pageTokensMax: 4096, bytesPerTokenMax: 65_536, pageBytesMax: limits.chunkSizeBytesMax } as const;

export function checkLayout(l: KvLayout): KvLayout {
  const int = (name: string, v: number, max: number): void => {
    if (!Number.isSafeInteger(v) || v < 1 || v > max) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `layout ${name} must be 1..${max}, not ${v}`);
  };
  int('layers', l.layers, layoutLimits.layersMax);
  int('pageTokens', l.pageTokens, layoutLimits.pageTokensMax);
  int('latentBytesPerToken', l.latentBytesPerToken, layoutLimits.bytesPerTokenMax);
  int('indexerBytesPerToken', l.indexerBytesPerToken, layoutLimits.bytesPerTokenMax);
  if (pageBytes(l) > layoutLimits.pageBytesMax) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `a page of this layout is ${pageBytes(l)} bytes; at most ${layoutLimits.pageBytesMax}`);
  return l;
}

export function bytesPerToken(l: KvLayout, pool: Pool): number {
  return pool === 'latent' ? l.latentBytesPerToken : l.indexerBytesPerToken;
}

/** Bytes of one layer of one pool in a page. */
export function layerBytes(l: KvLayout, pool: Pool): number { return l.pageTokens * bytesPerToken(l, pool); }

export function poolBytes(l: KvLayout, pool: Pool): number { return l.layers * layerBytes(l, pool); }

export function poolBase(l: KvLayout, pool: Pool): number { return pool === 'latent' ? 0 : poolBytes(l, 'latent'); }

export function pageBytes(l: KvLayout): number { return poolBytes(l, 'latent') + poolBytes(l, 'indexer'); }

/** Offset inside a page of token `slot`'s entry of `layer` in `pool`. */
export function entryOffset(l: KvLayout, pool: Pool, layer: number, slot: number): number {
  return poolBase(l, pool) + layer * layerBytes(l, pool) + slot * bytesPerToken(l, pool);
}

export function checkPool(pool: string): Pool {
  if (pool !== 'latent' && pool !== 'indexer') throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `pool must be latent or indexer, not ${pool}`);
  return pool;
}
