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

const native = loadAddon().addon?.crc32c;

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
