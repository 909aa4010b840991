// Page keys match SGLang HiCache's chained get_hash_str (vectors computed with Python's hashlib
// from its definition), and the layout's offsets are the documented arithmetic.
import { describe, expect, it } from 'vitest';
import { pageKeys } from '../../kvcache/keys.js';
import { deepseekV32Layout, entryOffset, layerBytes, pageBytes, poolBase } from '../../kvcache/layout.js';

describe('kv keys and layout', () => {
  it('chains SHA-256 over u32le token ids like SGLang HiCache', () => {
    const tokens = [...Array.from({ length: 128 }, (_, i) => i), ...Array.from({ length: 64 }, () => 4_000_000_000), 1, 2, 3];
    const keys = pageKeys(tokens).map((k) => k.toString('hex'));
    expect(keys).toEqual([
      'fea7b32778ecbdd7adee1941e98c89cf96bbc762f5f1beb0be24e36a456fbbc5',
      '1617a7384eff5e9135098c24794739af884859cdb17c1a61a834e8d6ac997351',
      '90e0dfe8e40c281a672d85498ce9960cf8c9ecc9c163ad9b833825818cff4263',
    ]);
    expect(() => pageKeys([...Array.from({ length: 63 }, () => 1), -1])).toThrow(/u32/);
    expect(pageKeys(Array.from({ length: 63 }, () => 1))).toEqual([]);
  });

  it('DeepSeek-V3.2 pages: latent then indexer, layer-major, slot arithmetic', () => {
    const l = deepseekV32Layout;
    expect(layerBytes(l, 'latent')).toBe(64 * 656);
    expect(pageBytes(l)).toBe(61 * 64 * (656 + 132));
    expect(poolBase(l, 'indexer')).toBe(61 * 64 * 656);
    expect(entryOffset(l, 'latent', 2, 5)).toBe(2 * 64 * 656 + 5 * 656);
    expect(entryOffset(l, 'indexer', 60, 63)).toBe(61 * 64 * 656 + 60 * 64 * 132 + 63 * 132);
  });
});
