// GraySort records: gensort's layout, key-range partitions that preserve order, the radix sort
// against a plain comparison sort, and the checksum that tells the same records from others.
import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { SeededRandom } from '../../client/dataset/index.js';
import { genRecords, keyRangePartition, partitionRecords, recordBytes, sortRecords, summarize } from '../../client/jobs/graysort.js';

const records = (n: number, seed = 1, first = 0): Buffer => {
  const b = Buffer.alloc(n * recordBytes);
  genRecords(b, first, n, new SeededRandom(seed));
  return b;
};

describe('graysort records', () => {
  it('has gensort layout: key, 00 11, record number in hex, markers', () => {
    const b = records(3, 7, 0x1234);
    const r1 = b.subarray(100, 200);
    expect([r1[10], r1[11]]).toEqual([0x00, 0x11]);
    expect(r1.subarray(12, 44).toString('latin1')).toBe('00000000000000000000000000001235');
    expect([...r1.subarray(44, 48)]).toEqual([0x88, 0x99, 0xaa, 0xbb]);
    expect([...r1.subarray(96, 100)]).toEqual([0xcc, 0xdd, 0xee, 0xff]);
    expect(records(3, 7, 0x1234).equals(b)).toBe(true);
    expect(records(3, 8, 0x1234).equals(b)).toBe(false);
  });

  it('numbers records above 2^32 and fills every one of a long run, not only the first 16', () => {
    const first = 2 ** 40 + 0xabcdef01;
    const b = records(1000, 2, first);
    for (const r of [0, 15, 16, 17, 511, 999]) {
      const rec = b.subarray(r * 100, (r + 1) * 100);
      const n = first + r;
      expect(rec.subarray(12, 44).toString('latin1')).toBe(n.toString(16).toUpperCase().padStart(32, '0'));
      const filler = Array.from({ length: 12 }, (_, g) => ((n + g) % 16).toString(16).toUpperCase().repeat(4)).join('');
      expect(rec.subarray(48, 96).toString('latin1')).toBe(filler);
      expect([rec[10], rec[11], ...rec.subarray(44, 48), ...rec.subarray(96, 100)]).toEqual([0x00, 0x11, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]);
    }
    // The same records as generating them one at a time.
    const one = Buffer.alloc(100);
    const rnd = new SeededRandom(2);
    for (let r = 0; r < 40; r++) { genRecords(one, first + r, 1, rnd); expect(one.equals(b.subarray(r * 100, (r + 1) * 100))).toBe(true); }
  });

  it('sorts by key bytewise, stably, exactly as a comparison sort does', () => {
    const b = records(20_000, 3);
    // Some equal keys, to see stability.
    b.copy(b, 500 * 100, 7 * 100, 7 * 100 + 10);
    const sorted = sortRecords(b, 'test');
    const idx = Array.from({ length: 20_000 }, (_, i) => i).sort((x, y) => Buffer.compare(b.subarray(x * 100, x * 100 + 10), b.subarray(y * 100, y * 100 + 10)) || x - y);
    const want = Buffer.concat(idx.map((i) => b.subarray(i * 100, (i + 1) * 100)));
    expect(sorted.equals(want)).toBe(true);
    expect(summarize(sorted)).toEqual(summarize(b));
    expect(() => sortRecords(Buffer.alloc(150), 'x')).toThrow(/whole number/);
  });

  it('sorts keys that share long prefixes or tie on their first 8 bytes', () => {
    const comparisonSort = (b: Buffer): Buffer => {
      const idx = Array.from({ length: b.length / 100 }, (_, i) => i).sort((x, y) => Buffer.compare(b.subarray(x * 100, x * 100 + 10), b.subarray(y * 100, y * 100 + 10)) || x - y);
      return Buffer.concat(idx.map((i) => b.subarray(i * 100, (i + 1) * 100)));
    };
    for (const sharedBytes of [0, 3, 4, 5, 8, 10]) {
      const b = records(5_000, 11 + sharedBytes);
      for (let r = 0; r < 5_000; r++) b.fill(0x5a, r * 100, r * 100 + sharedBytes);
      expect(sortRecords(b, 'shared').equals(comparisonSort(b)), `${sharedBytes} shared key bytes`).toBe(true);
    }
    // Keys that differ only in bytes 8 and 9, some of them equal.
    const t = records(3_000, 4);
    for (let r = 0; r < 3_000; r++) { t.fill(7, r * 100, r * 100 + 8); t[r * 100 + 8] = r % 5; t[r * 100 + 9] = (r * 7) % 3; }
    expect(sortRecords(t, 'ties').equals(comparisonSort(t))).toBe(true);
    expect(sortRecords(Buffer.alloc(0), 'empty').length).toBe(0);
    // A buffer that does not start on a word.
    const odd = Buffer.alloc(1 + 300 * 100).subarray(1);
    records(300, 6).copy(odd);
    expect(sortRecords(odd, 'odd').equals(comparisonSort(odd))).toBe(true);
  });

  it('key ranges keep order across partitions and split uniform keys evenly', () => {
    const b = records(16_000, 5);
    const parts = partitionRecords(b, 8, 'test');
    expect(parts.reduce((n, p) => n + p.length, 0)).toBe(b.length);
    for (const p of parts) expect(Math.abs(p.length / 100 - 2000)).toBeLessThan(300);
    const joined = Buffer.concat(parts.map((p) => sortRecords(p, 'p')));
    expect(joined.equals(sortRecords(b, 'all'))).toBe(true);
    expect(keyRangePartition(Buffer.from([0xff, 0xff]), 0, 16)).toBe(15);
    expect(keyRangePartition(Buffer.from([0, 0]), 0, 16)).toBe(0);
  });

  it('the checksum changes when a record changes, not when the order does', () => {
    const b = records(100, 9);
    const s = summarize(b);
    const swapped = Buffer.concat([b.subarray(100), b.subarray(0, 100)]);
    expect(summarize(swapped)).toEqual(s);
    const changed = Buffer.from(b);
    changed[250] = changed[250]! ^ 1;
    expect(summarize(changed).checksum).not.toBe(s.checksum);
    // The sum of zlib's CRC-32 of every record (valsort's checksum).
    let want = 0n;
    for (let r = 0; r < 100; r++) want += BigInt(crc32(b.subarray(r * 100, (r + 1) * 100)));
    expect(s).toEqual({ records: 100, checksum: want });
  });
});
