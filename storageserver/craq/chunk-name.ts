import type { ChunkKey } from '../../common/ids.js';
import type { ClientId } from './types.js';

/** A chunk id as a map key. */
export function chunkName(chunk: ChunkKey): string {
  return `${chunk.inodeId}:${chunk.index}`;
}

/** A client write's id as a map key. */
export function writeName(client: ClientId, requestId: number): string {
  return `${client}:${requestId}`;
}
