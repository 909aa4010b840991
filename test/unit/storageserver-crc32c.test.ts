import { describe, expect, it } from 'vitest';
import { crc32c, crc32cBlocks, crc32cCheckBlocks, crc32cTable } from '../../storageserver/crc32c.js';
import { loadAddon } from '../../storageserver/io-engine.js';

function bitwise(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of data) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return ~c >>> 0;
}

describe('crc32c', () => {
  it('matches the standard test vectors (RFC 3720 B.4 and the check value)', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa);
    expect(crc32c(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43);
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i))).toBe(0x46dd794e);
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i))).toBe(0x113fdb5c);
    expect(crc32c(new Uint8Array(0))).toBe(0);
  });

  it('agrees with a bitwise reference at every length and alignment, and chains', () => {
    const seed = 12345;
    let x = seed;
    const data = Uint8Array.from({ length: 1000 }, () => { x = (x * 1103515245 + 12345) >>> 0; return x >>> 24; });
    for (let n = 0; n < 70; n++) {
      for (const start of [0, 1, 3, 7]) {
        const slice = data.subarray(start, start + n);
        expect(crc32c(slice)).toBe(bitwise(slice));
      }
    }
    expect(crc32c(data.subarray(333), crc32c(data.subarray(0, 333)))).toBe(crc32c(data));
  });

  it('the addon (used when built) and the table version agree, and the addon is built here', () => {
    const addon = loadAddon().addon;
    expect(addon, 'npm install builds the addon').toBeDefined();
    let x = 99;
    const data = Uint8Array.from({ length: 70_000 }, () => { x = (x * 1103515245 + 12345) >>> 0; return x >>> 24; });
    for (const [start, n] of [[0, 0], [1, 7], [3, 64], [5, 4095], [0, 70_000], [13, 65_536]] as const) {
      const slice = data.subarray(start, start + n);
      expect(addon!.crc32c(slice, 0)).toBe(crc32cTable(slice));
      expect(addon!.crc32c(slice, 0x1234)).toBe(crc32cTable(slice, 0x1234));
      expect(crc32c(slice)).toBe(bitwise(slice));
    }
  });
});

describe('crc32c of blocks', () => {
  let x = 777;
  const data = Uint8Array.from({ length: 5 * 4096 + 123 }, () => { x = (x * 1103515245 + 12345) >>> 0; return x >>> 24; });

  it('gives each block\'s CRC and the whole CRC in one call, at every length and alignment', () => {
    for (const n of [0, 1, 8, 4095, 4096, 4097, 3 * 4096, 3 * 4096 + 1, 5 * 4096 + 123 - 7]) {
      for (const start of [0, 1, 5]) {
        const slice = data.subarray(start, start + n);
        const out = Buffer.alloc(4 * Math.ceil(n / 4096));
        expect(crc32cBlocks(slice, 4096, out)).toBe(crc32cTable(slice));
        for (let b = 0; b * 4096 < n; b++) expect(out.readUInt32LE(4 * b)).toBe(crc32cTable(slice.subarray(b * 4096, (b + 1) * 4096)));
        expect(crc32cCheckBlocks(slice, 4096, out)).toBe(-1);
      }
    }
  });

  it('names the first damaged block', () => {
    const out = Buffer.alloc(4 * 6);
    crc32cBlocks(data, 4096, out);
    for (const at of [0, 4095, 4096, 3 * 4096 + 9, data.length - 1]) {
      const copy = Uint8Array.from(data);
      copy[at] = copy[at]! ^ 0x10;
      expect(crc32cCheckBlocks(copy, 4096, out)).toBe(Math.floor(at / 4096));
    }
  });
});
