import type { ChunkKey } from '../../common/ids.js';

/** A chunk id as a map key. */
export function chunkName(chunk: ChunkKey): string {
  return `${chunk.inodeId}:${chunk.index}`;
}
