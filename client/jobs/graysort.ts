// GraySort records and the record operations of sort jobs. A record is 100 bytes in gensort's
// binary layout: a 10-byte random key; 0x00 0x11; the record number as 32 uppercase hex digits;
// 0x88 0x99 0xAA 0xBB; 48 filler bytes (a hex digit of the record number, repeated in groups of
// 4); 0xCC 0xDD 0xEE 0xFF. Records sort by key, bytewise. A sort job is: read gensort files →
// repartition by key range (partition = the key's first 16 bits scaled to n, so uniform keys
// give even partitions) → sort each partition → write; the outputs, in partition order, are the
// whole input sorted. `validateSorted` checks that like valsort: global order, record count,
// and an order-independent checksum (the sum of every record's CRC-32) equal to the input's.
import { crc32 } from 'node:zlib';
import { flyfsError } from '../../common/errors.js';
import type { FileSystem } from '../fs.js';
import { SeededRandom } from '../dataset/order.js';

export const recordBytes = 100;
export const keyBytes = 10;

const hex = '0123456789ABCDEF';

/** Fills `buf` with `count` gensort records numbered from `first`, keys drawn from `rnd`. */
export function genRecords(buf: Buffer, first: number, count: number, rnd: SeededRandom): void {
  for (let r = 0; r < count; r++) {
    const o = r * recordBytes;
    const n = first + r;
    for (let k = 0; k < keyBytes; k += 2) { const v = rnd.nextU32(); buf[o + k] = v & 0xff; buf[o + k + 1] = (v >>> 8) & 0xff; }
    buf[o + 10] = 0x00; buf[o + 11] = 0x11;
    let x = n;
    for (let d = 31; d >= 0; d--) { buf[o + 12 + d] = hex.charCodeAt(x % 16); x = Math.floor(x / 16); }
    buf[o + 44] = 0x88; buf[o + 45] = 0x99; buf[o + 46] = 0xaa; buf[o + 47] = 0xbb;
    for (let g = 0; g < 12; g++) buf.fill(hex.charCodeAt((n + g) % 16), o + 48 + 4 * g, o + 52 + 4 * g);
    buf[o + 96] = 0xcc; buf[o + 97] = 0xdd; buf[o + 98] = 0xee; buf[o + 99] = 0xff;
  }
}

/** The output partition of a key: its first 16 bits scaled to 0..n−1 (order preserving). */
export function keyRangePartition(buf: Buffer, at: number, n: number): number {
  return Math.floor(((buf[at]! << 8) | buf[at + 1]!) * n / 65536);
}

function checkRecords(buf: Buffer, what: string): number {
  if (buf.length % recordBytes !== 0) throw flyfsError('FLYFS_ERR_BAD_FORMAT', `${what}: ${buf.length} bytes is not a whole number of ${recordBytes}-byte records`);
  return buf.length / recordBytes;
}

/** Splits records into n pieces by key range (each piece keeps input order). */
export function partitionRecords(buf: Buffer, n: number, what: string): Buffer[] {
  const count = checkRecords(buf, what);
  const sizes = new Uint32Array(n);
  const parts = new Uint16Array(count);
  for (let r = 0; r < count; r++) { const p = keyRangePartition(buf, r * recordBytes, n); parts[r] = p; sizes[p]!++; }
  const out = Array.from(sizes, (s) => Buffer.allocUnsafe(s * recordBytes));
  const fill = new Uint32Array(n);
  for (let r = 0; r < count; r++) {
    const p = parts[r]!;
    buf.copy(out[p]!, fill[p]! * recordBytes, r * recordBytes, (r + 1) * recordBytes);
    fill[p]!++;
  }
  return out;
}

/** The records sorted by key: an LSD radix sort over the 10 key bytes (stable). */
export function sortRecords(buf: Buffer, what: string): Buffer {
  const count = checkRecords(buf, what);
  let idx = new Uint32Array(count);
  let tmp = new Uint32Array(count);
  for (let i = 0; i < count; i++) idx[i] = i;
  const counts = new Uint32Array(257);
  for (let b = keyBytes - 1; b >= 0; b--) {
    counts.fill(0);
    for (let i = 0; i < count; i++) counts[buf[idx[i]! * recordBytes + b]! + 1]!++;
    for (let v = 0; v < 256; v++) counts[v + 1]! += counts[v]!;
    for (let i = 0; i < count; i++) { const r = idx[i]!; tmp[counts[buf[r * recordBytes + b]!]!++] = r; }
    [idx, tmp] = [tmp, idx];
  }
  const out = Buffer.allocUnsafe(buf.length);
  for (let i = 0; i < count; i++) buf.copy(out, i * recordBytes, idx[i]! * recordBytes, (idx[i]! + 1) * recordBytes);
  return out;
}

export interface RecordSummary { records: number; checksum: bigint }

/** Count and the sum of every record's CRC-32 (mod 2^64) of a buffer of records. */
export function summarize(buf: Buffer, into: RecordSummary = { records: 0, checksum: 0n }): RecordSummary {
  const count = buf.length / recordBytes;
  let sum = 0;
  for (let r = 0; r < count; r++) sum += crc32(buf.subarray(r * recordBytes, (r + 1) * recordBytes));
  into.records += count;
  into.checksum = (into.checksum + BigInt(sum)) & 0xffffffffffffffffn;
  return into;
}

function compareKeys(a: Buffer, ai: number, b: Buffer, bi: number): number {
  for (let k = 0; k < keyBytes; k++) { const d = a[ai + k]! - b[bi + k]!; if (d !== 0) return d; }
  return 0;
}

export interface SortValidation extends RecordSummary { files: number; ordered: boolean; firstDisorder?: string; input?: RecordSummary; matchesInput?: boolean }

/**
 * Reads the sort's output files (in name order) and checks global key order; with `inputDir`,
 * also that the output holds exactly the input's records (count and checksum).
 */
export async function validateSorted(fs: FileSystem, outDir: string, inputDir?: string): Promise<SortValidation> {
  const out = outDir.replace(/\/+$/, '');
  const names = (await fs.readdir(out, { withFileTypes: true })).filter((d) => d.isFile()).map((d) => d.name).sort();
  const sum: RecordSummary = { records: 0, checksum: 0n };
  let prev: Buffer | undefined;
  let firstDisorder: string | undefined;
  for (const name of names) {
    const buf = await fs.readFile(`${out}/${name}`) as Buffer;
    const count = checkRecords(buf, `${out}/${name}`);
    for (let r = 0; r < count && firstDisorder === undefined; r++) {
      const at = r * recordBytes;
      if (prev !== undefined && compareKeys(prev, 0, buf, at) > 0) firstDisorder = `${name} record ${r}`;
      prev = buf.subarray(at, at + keyBytes);
    }
    if (count > 0) prev = Buffer.from(buf.subarray((count - 1) * recordBytes, (count - 1) * recordBytes + keyBytes));
    summarize(buf, sum);
  }
  const v: SortValidation = { ...sum, files: names.length, ordered: firstDisorder === undefined, ...(firstDisorder === undefined ? {} : { firstDisorder }) };
  if (inputDir !== undefined) {
    const input: RecordSummary = { records: 0, checksum: 0n };
    const dir = inputDir.replace(/\/+$/, '');
    for (const d of (await fs.readdir(dir, { withFileTypes: true })).filter((e) => e.isFile()).map((e) => e.name).sort()) {
      summarize(await fs.readFile(`${dir}/${d}`) as Buffer, input);
    }
    v.input = input;
    v.matchesInput = input.records === sum.records && input.checksum === sum.checksum;
  }
  return v;
}
