// CRC32C (Castagnoli, reflected polynomial 0x82F63B78). Chunk checksums on disk and in ChunkMeta
// use this; `crc32c(b, crc32c(a))` equals `crc32c(a ++ b)`. It runs in the native addon (SSE4.2's
// crc32 instruction: several GB/s) when that is built, else here in slicing-by-8 over eight
// 256-entry tables (about 0.7 GB/s on this machine: BENCHMARKS.md).
import { loadAddon } from './io-engine.js';

const POLY = 0x82f63b78;

function buildTables(): Uint32Array[] {
  const tables: Uint32Array[] = [];
  const t0 = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    t0[i] = c >>> 0;
  }
  tables.push(t0);
  for (let t = 1; t < 8; t++) {
    const prev = tables[t - 1]!;
    const next = new Uint32Array(256);
    for (let i = 0; i < 256; i++) next[i] = (prev[i]! >>> 8) ^ t0[prev[i]! & 0xff]!;
    tables.push(next);
  }
  return tables;
}

const [T0, T1, T2, T3, T4, T5, T6, T7] = buildTables() as [Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array];

const addon = loadAddon().addon;
const native = addon?.crc32c;
// Absent from an addon built before they existed: then the loops below.
const nativeBlocks = addon?.crc32cBlocks;
const nativeCheckBlocks = addon?.crc32cCheckBlocks;

/** CRC32C of `data`, continuing from `previous` (the CRC of the bytes before it; 0 to start). */
export function crc32c(data: Uint8Array, previous = 0): number {
  return native === undefined ? crc32cTable(data, previous) : native(data, previous);
}

/** The table-driven CRC32C (the fallback, and the reference the tests compare the addon with). */
export function crc32cTable(data: Uint8Array, previous = 0): number {
  let crc = ~previous >>> 0;
  let i = 0;
  const n = data.length;
  const end8 = n - (n % 8);
  while (i < end8) {
    const lo = (crc ^ (data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24))) >>> 0;
    crc = T7[lo & 0xff]! ^ T6[(lo >>> 8) & 0xff]! ^ T5[(lo >>> 16) & 0xff]! ^ T4[lo >>> 24]!
      ^ T3[data[i + 4]!]! ^ T2[data[i + 5]!]! ^ T1[data[i + 6]!]! ^ T0[data[i + 7]!]!;
    i += 8;
  }
  while (i < n) crc = T0[(crc ^ data[i++]!) & 0xff]! ^ (crc >>> 8);
  return ~crc >>> 0;
}

/**
 * The CRC32C of every `blockBytes` block of `data` (the last may be short) as u32 LE into `out`
 * (at least 4 bytes per block), and the CRC32C of all of `data`: one pass over the bytes.
 */
export function crc32cBlocks(data: Uint8Array, blockBytes: number, out: Uint8Array): number {
  if (nativeBlocks !== undefined) return nativeBlocks(data, blockBytes, out);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  let whole = 0;
  for (let at = 0, b = 0; at < data.length; at += blockBytes, b++) {
    const block = data.subarray(at, Math.min(data.length, at + blockBytes));
    view.setUint32(4 * b, crc32c(block), true);
    whole = crc32c(block, whole);
  }
  return whole;
}

/** -1 when each `blockBytes` block of `data` has the CRC32C `sums` gives for it (u32 LE from sums[0]); else the first bad block. */
export function crc32cCheckBlocks(data: Uint8Array, blockBytes: number, sums: Uint8Array): number {
  if (nativeCheckBlocks !== undefined) return nativeCheckBlocks(data, blockBytes, sums);
  const view = new DataView(sums.buffer, sums.byteOffset, sums.byteLength);
  for (let at = 0, b = 0; at < data.length; at += blockBytes, b++) {
    if (crc32c(data.subarray(at, Math.min(data.length, at + blockBytes))) !== view.getUint32(4 * b, true)) return b;
  }
  return -1;
}
