import { describe, expect, it } from 'vitest';
import { chainOfChunk, chooseChains, chunkSpans, splitMix64, validateChunkSize, validateRange } from '../../common/layout.js';
import { splitPath } from '../../common/names.js';
import { checkLimits, limits } from '../../common/limits.js';

describe('layout rule', () => {
  it('SplitMix64 gives the reference sequence for seed 0', () => {
    const g = splitMix64(0);
    // First SplitMix64 outputs for seed 0 are 0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4, shifted right by 11.
    expect(g.next().value).toBe(Number(0xe220a8397b1dcdafn >> 11n));
    expect(g.next().value).toBe(Number(0x6e789e6aa1b965f4n >> 11n));
  });

  it('chooses the same chains for the same seed, a permutation of the table, different across seeds', () => {
    const table = Array.from({ length: 12 }, (_, i) => i + 1);
    const a = chooseChains(table, 12, 42);
    expect(chooseChains(table, 12, 42)).toEqual(a);
    expect([...a].sort((x, y) => x - y)).toEqual(table);
    const seen = new Set(Array.from({ length: 20 }, (_, s) => chooseChains(table, 4, s).join(',')));
    expect(seen.size).toBeGreaterThan(15);
    expect(chooseChains(table, 4, 42)).toEqual(a.slice(0, 4));
    expect(() => chooseChains(table, 13, 1)).toThrow(/stripe/);
    expect(() => chooseChains(table, 0, 1)).toThrow(/stripe/);
  });

  it('maps chunk index to chains[index mod stripe]', () => {
    const layout = { chunkSizeBytes: 4096, stripe: 3, chainTableId: 1, chainTableVersion: 1, chains: [7, 3, 9], seed: 5 };
    expect([0, 1, 2, 3, 4, 5, 6].map((i) => chainOfChunk(layout, i))).toEqual([7, 3, 9, 7, 3, 9, 7]);
  });

  it('splits ranges at chunk boundaries', () => {
    expect(chunkSpans(100, 0, 0)).toEqual([]);
    expect(chunkSpans(100, 95, 110)).toEqual([
      { index: 0, chunkOffset: 95, length: 5, rangeOffset: 0 },
      { index: 1, chunkOffset: 0, length: 100, rangeOffset: 5 },
      { index: 2, chunkOffset: 0, length: 5, rangeOffset: 105 },
    ]);
  });

  it('validates chunk sizes and ranges', () => {
    expect(() => validateChunkSize(4096)).not.toThrow();
    expect(() => validateChunkSize(4095)).toThrow(/chunk size/);
    expect(() => validateChunkSize(limits.chunkSizeBytesMax * 2)).toThrow(/chunk size/);
    expect(() => validateRange(-1, 1)).toThrow(/offset/);
    expect(() => validateRange(0, -1)).toThrow(/length/);
    expect(() => validateRange(1.5, 1)).toThrow(/offset/);
    expect(() => validateRange(limits.fileBytesMax, 1)).toThrow(/beyond/);
  });
});

describe('names', () => {
  it('splits good paths and refuses bad names with registry codes', () => {
    expect(splitPath('/')).toEqual([]);
    expect(splitPath('//a///b/')).toEqual(['a', 'b']);
    const code = (p: string): string | undefined => { try { splitPath(p); return undefined; } catch (e) { return (e as { code: string }).code; } };
    expect(code('a/b')).toBe('FLYFS_ERR_INVALID_ARGUMENT');
    expect(code('/a/./b')).toBe('FLYFS_ERR_BAD_NAME');
    expect(code('/a/..')).toBe('FLYFS_ERR_BAD_NAME');
    expect(code('/a\0b')).toBe('FLYFS_ERR_BAD_NAME');
    expect(code('/' + 'x'.repeat(256))).toBe('FLYFS_ERR_NAME_TOO_LONG');
    expect(code('/' + 'é'.repeat(128))).toBe('FLYFS_ERR_NAME_TOO_LONG');
    expect(code('/' + 'x'.repeat(255))).toBeUndefined();
    expect(code('/a/'.repeat(2000))).toBe('FLYFS_ERR_NAME_TOO_LONG');
  });

  it('keeps the limits consistent', () => {
    expect(() => checkLimits()).not.toThrow();
    expect(() => checkLimits({ ...limits, frameBytesMax: limits.chunkSizeBytesMax })).toThrow(/fits one frame/);
  });
});
