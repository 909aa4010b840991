// GraySort records and the record operations of sort jobs. A record is 100 bytes in gensort's
// binary layout: a 10-byte random key; 0x00 0x11; the record number as 32 uppercase hex digits;
// 0x88 0x99 0xAA 0xBB; 48 filler bytes (a hex digit of the record number, repeated in groups of
// 4); 0xCC 0xDD 0xEE 0xFF. Records sort by key, bytewise. A sort job is: read gensort files →
// repartition by key range (partition = the key's first 16 bits scaled to n, so uniform keys
// give even partitions) → sort each partition → write; the outputs, in partition order, are the
// whole input sorted. `validateSorted` checks that like valsort: global order, record count,
// and an order-independent checksum (the sum of every record's CRC-32) equal to the input's.
import { flyfsError } from '../../common/errors.js';
import type { FileSystem } from '../fs.js';
import { SeededRandom } from '../dataset/order.js';

export const recordBytes = 100;
export const keyBytes = 10;

const hexCodes = Uint8Array.from('0123456789ABCDEF', (c) => c.charCodeAt(0));

/** The 100 − 26 bytes of record `n` that are the same every 16 records (all but the key and
 * the record number's low 16 hex digits; the high 16 are 0 for every n below 2^53). */
function writeFixedParts(buf: Buffer, o: number, n: number): void {
  buf[o + 10] = 0x00; buf[o + 11] = 0x11;
  buf.fill(hexCodes[0]!, o + 12, o + 28);
  buf[o + 44] = 0x88; buf[o + 45] = 0x99; buf[o + 46] = 0xaa; buf[o + 47] = 0xbb;
  for (let g = 0; g < 12; g++) buf.fill(hexCodes[(n + g) % 16]!, o + 48 + 4 * g, o + 52 + 4 * g);
  buf[o + 96] = 0xcc; buf[o + 97] = 0xdd; buf[o + 98] = 0xee; buf[o + 99] = 0xff;
}

/** Fills `buf` with `count` gensort records numbered from `first`, keys drawn from `rnd`. */
export function genRecords(buf: Buffer, first: number, count: number, rnd: SeededRandom): void {
  if (!(Number.isSafeInteger(first) && first >= 0 && first + count <= 2 ** 53)) throw new Error('assertion failed: record numbers below 2^53');
  // The fixed parts repeat every 16 records (1,600 bytes): write one period, then copy it
  // forward in doubling runs; per record only the key and the low hex digits remain.
  const period = Math.min(16, count) * recordBytes;
  for (let r = 0; r < Math.min(16, count); r++) writeFixedParts(buf, r * recordBytes, first + r);
  for (let done = period; done < count * recordBytes; done *= 2) buf.copyWithin(done, 0, Math.min(done, count * recordBytes - done));
  for (let r = 0; r < count; r++) {
    const o = r * recordBytes;
    const n = first + r;
    for (let k = 0; k < keyBytes; k += 2) { const v = rnd.nextU32(); buf[o + k] = v & 0xff; buf[o + k + 1] = (v >>> 8) & 0xff; }
    // The record number as 32 hex digits: the low 8 from n mod 2^32, the next 8 from n / 2^32.
    const lo = n >>> 0;
    const hi = Math.floor(n / 2 ** 32);
    for (let j = 0; j < 8; j++) { buf[o + 43 - j] = hexCodes[(lo >>> (4 * j)) & 15]!; buf[o + 35 - j] = hexCodes[(hi >>> (4 * j)) & 15]!; }
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

/** Radix digits of the 32-bit key prefixes that sortRecords orders (3 passes of 11 bits). */
const radixBits = 11;

/**
 * The records sorted by key (stable). Each record's key is cut to a 32-bit prefix (the 32 bits
 * after those every key here shares); an LSD radix sort orders those prefixes, carrying the
 * record indexes with them, and runs of equal prefixes are then ordered by the whole key. The
 * records are copied once, into their sorted places.
 */
export function sortRecords(buf: Buffer, what: string): Buffer {
  const count = checkRecords(buf, what);
  let keys = new Uint32Array(count);
  let idx = new Uint32Array(count);
  let min = 0xffffffff; let max = 0;
  for (let r = 0; r < count; r++) { const w = buf.readUInt32BE(r * recordBytes); if (w < min) min = w; if (w > max) max = w; }
  const shared = count === 0 || min === max ? 32 : Math.clz32((min ^ max) >>> 0);
  for (let r = 0; r < count; r++) {
    const o = r * recordBytes;
    const w1 = buf.readUInt32BE(o + 4);
    keys[r] = shared === 32 ? w1 : shared === 0 ? buf.readUInt32BE(o) : ((buf.readUInt32BE(o) << shared) | (w1 >>> (32 - shared))) >>> 0;
    idx[r] = r;
  }
  let keysTo = new Uint32Array(count);
  let idxTo = new Uint32Array(count);
  const counts = new Uint32Array(1 << radixBits);
  for (let shift = 0; shift < 32; shift += radixBits) {
    counts.fill(0);
    const mask = (1 << radixBits) - 1;
    for (let i = 0; i < count; i++) counts[(keys[i]! >>> shift) & mask]!++;
    let total = 0;
    for (let d = 0; d <= mask; d++) { const c = counts[d]!; counts[d] = total; total += c; }
    for (let i = 0; i < count; i++) { const k = keys[i]!; const at = counts[(k >>> shift) & mask]!++; keysTo[at] = k; idxTo[at] = idx[i]!; }
    [keys, keysTo, idx, idxTo] = [keysTo, keys, idxTo, idx];
  }
  for (let i = 0; i < count;) {
    let j = i + 1;
    while (j < count && keys[j] === keys[i]) j++;
    if (j - i > 1) idx.subarray(i, j).sort((x, y) => compareKeys(buf, x * recordBytes, buf, y * recordBytes) || x - y);
    i = j;
  }
  return permuteRecords(buf, idx);
}

/** The records of `buf` in the order `idx` names them. */
function permuteRecords(buf: Buffer, idx: Uint32Array): Buffer {
  const out = Buffer.allocUnsafe(buf.length);
  // Whole records as 25 words each: a copy call per 100 bytes costs several times more.
  const src = buf.byteOffset % 4 === 0 ? buf : Buffer.from(buf);
  const from = new Uint32Array(src.buffer, src.byteOffset, src.length / 4);
  const to = new Uint32Array(out.buffer, out.byteOffset, out.length / 4);
  if (out.byteOffset % 4 !== 0) throw new Error('assertion failed: a large Buffer starts word-aligned');
  const words = recordBytes / 4;
  for (let i = 0; i < idx.length; i++) {
    const s = idx[i]! * words;
    const d = i * words;
    for (let w = 0; w < words; w++) to[d + w] = from[s + w]!;
  }
  return out;
}

export interface RecordSummary { records: number; checksum: bigint }

/** CRC-32 (zlib's: reflected, polynomial 0xEDB88320) tables for slicing by 8 bytes. */
const crcTables = ((): Int32Array => {
  const t = new Int32Array(8 * 256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[i] = c;
  }
  for (let i = 0; i < 256; i++) for (let s = 1; s < 8; s++) t[s * 256 + i] = (t[(s - 1) * 256 + i]! >>> 8) ^ t[t[(s - 1) * 256 + i]! & 0xff]!;
  return t;
})();

/** zlib's crc32 of the record at `o` (a call to zlib per 100 bytes costs more than this). */
function recordCrc(buf: Buffer, o: number): number {
  const t = crcTables;
  let c = -1;
  for (let p = o; p < o + 96; p += 8) {
    const a = (buf[p]! | (buf[p + 1]! << 8) | (buf[p + 2]! << 16) | (buf[p + 3]! << 24)) ^ c;
    const b = buf[p + 4]! | (buf[p + 5]! << 8) | (buf[p + 6]! << 16) | (buf[p + 7]! << 24);
    c = t[1792 + (a & 0xff)]! ^ t[1536 + ((a >>> 8) & 0xff)]! ^ t[1280 + ((a >>> 16) & 0xff)]! ^ t[1024 + (a >>> 24)]!
      ^ t[768 + (b & 0xff)]! ^ t[512 + ((b >>> 8) & 0xff)]! ^ t[256 + ((b >>> 16) & 0xff)]! ^ t[b >>> 24]!;
  }
  for (let p = o + 96; p < o + recordBytes; p++) c = t[(c ^ buf[p]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/** Count and the sum of every record's CRC-32 (mod 2^64) of a buffer of records. */
export function summarize(buf: Buffer, into: RecordSummary = { records: 0, checksum: 0n }): RecordSummary {
  const count = buf.length / recordBytes;
  let sum = 0;
  for (let r = 0; r < count; r++) {
    sum += recordCrc(buf, r * recordBytes);
    // Exact while below 2^53: fold into the bigint well before that.
    if ((r & 0xfffff) === 0xfffff) { into.checksum += BigInt(sum); sum = 0; }
  }
  into.records += count;
  into.checksum = (into.checksum + BigInt(sum)) & 0xffffffffffffffffn;
  return into;
}

function compareKeys(a: Buffer, ai: number, b: Buffer, bi: number): number {
  for (let k = 0; k < keyBytes; k++) { const d = a[ai + k]! - b[bi + k]!; if (d !== 0) return d; }
  return 0;
}

export interface SortValidation extends RecordSummary { files: number; ordered: boolean; firstDisorder?: string; input?: RecordSummary; matchesInput?: boolean }

/** Files of a folder, in name order. */
async function filesIn(fs: FileSystem, dir: string): Promise<string[]> {
  return (await fs.readdir(dir, { withFileTypes: true })).filter((d) => d.isFile()).map((d) => `${dir}/${d.name}`).sort();
}

/** Files read ahead of the one being checked, by each pass of a validation. */
const validateReadAhead = 2;

/** Calls `fn` on each file's bytes in order, while the next few files are being read. */
async function eachFileInOrder(fs: FileSystem, paths: readonly string[], fn: (buf: Buffer, path: string) => void): Promise<void> {
  const reads: Array<Promise<Buffer> | undefined> = [];
  const start = (i: number): void => {
    if (i >= paths.length) return;
    const p = fs.readFile(paths[i]!) as Promise<Buffer>;
    p.catch(() => undefined); // awaited in turn below; a later read's failure waits till then
    reads[i] = p;
  };
  for (let i = 0; i < validateReadAhead; i++) start(i);
  for (let i = 0; i < paths.length; i++) {
    const buf = await reads[i]!;
    reads[i] = undefined;
    start(i + validateReadAhead);
    fn(buf, paths[i]!);
  }
}

/**
 * Reads the sort's output files (in name order) and checks global key order; with `inputDir`,
 * also that the output holds exactly the input's records (count and checksum). The input is
 * read and summed at the same time as the output.
 */
export async function validateSorted(fs: FileSystem, outDir: string, inputDir?: string): Promise<SortValidation> {
  const out = outDir.replace(/\/+$/, '');
  const outputs = await filesIn(fs, out);
  const sum: RecordSummary = { records: 0, checksum: 0n };
  let prev: Buffer | undefined;
  let firstDisorder: string | undefined;
  const checkOutput = (buf: Buffer, path: string): void => {
    const count = checkRecords(buf, path);
    if (count === 0) return;
    if (firstDisorder === undefined && prev !== undefined && compareKeys(prev, 0, buf, 0) > 0) firstDisorder = `${path.slice(out.length + 1)} record 0`;
    for (let r = 1; r < count && firstDisorder === undefined; r++) {
      if (compareKeys(buf, (r - 1) * recordBytes, buf, r * recordBytes) > 0) firstDisorder = `${path.slice(out.length + 1)} record ${r}`;
    }
    prev = Buffer.from(buf.subarray((count - 1) * recordBytes, (count - 1) * recordBytes + keyBytes));
    summarize(buf, sum);
  };
  const input: RecordSummary = { records: 0, checksum: 0n };
  const inDir = inputDir?.replace(/\/+$/, '');
  await Promise.all([
    eachFileInOrder(fs, outputs, checkOutput),
    inDir === undefined ? undefined : filesIn(fs, inDir).then((inputs) => eachFileInOrder(fs, inputs, (buf) => { summarize(buf, input); })),
  ]);
  const v: SortValidation = { ...sum, files: outputs.length, ordered: firstDisorder === undefined, ...(firstDisorder === undefined ? {} : { firstDisorder }) };
  if (inDir !== undefined) {
    v.input = input;
    v.matchesInput = input.records === sum.records && input.checksum === sum.checksum;
  }
  return v;
}
