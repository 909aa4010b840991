// The update rule of a chunk: bytes at an offset over the committed content. The head applies it
// once and forwards the full result, so every replica stores the same bytes for a version.
import { assert } from '../../common/errors.js';
import type { ByteUpdate, ContentModel } from './types.js';

export const emptyContent: Uint8Array = new Uint8Array(0);

export function applyUpdate(base: Uint8Array, offsetBytes: number, bytes: Uint8Array): Uint8Array {
  assert(Number.isSafeInteger(offsetBytes) && offsetBytes >= 0, 'offset is a non-negative integer');
  const out = new Uint8Array(Math.max(base.length, offsetBytes + bytes.length));
  out.set(base, 0);
  out.set(bytes, offsetBytes);
  return out;
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The simulator's content model: content is the chunk's bytes, an update bytes at an offset. */
export const bytesModel: ContentModel<Uint8Array, ByteUpdate> = {
  empty: emptyContent,
  apply(base, u) {
    if (!Number.isSafeInteger(u.offsetBytes) || u.offsetBytes < 0 || u.offsetBytes + u.bytes.length > u.chunkSizeBytes) {
      return { refused: 'FLYFS_ERR_CHUNK_RANGE', detail: `offset ${u.offsetBytes} length ${u.bytes.length}` };
    }
    return applyUpdate(base?.content ?? emptyContent, u.offsetBytes, u.bytes);
  },
  bytesOf: (c) => c.length,
};
