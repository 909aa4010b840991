// The loader's order is pure: per-epoch permutations by seed, ranks dealt disjoint parts, resume
// from any cursor yields exactly the rest of the batches.
import { describe, expect, it } from 'vitest';
import { epochPermutation, planBatches, rankOrder, SeededRandom } from '../../client/dataset/index.js';

const plan = (n: number, o: Partial<Parameters<typeof planBatches>[1]> & { batchSize: number }) =>
  [...planBatches(n, { seed: 7, shuffle: true, rank: 0, worldSize: 1, epochs: 3, start: { epoch: 0, step: 0 }, ...o })];

describe('dataset order', () => {
  it('a permutation per epoch: every index once, reproducible by seed, different by epoch and seed', () => {
    for (const n of [0, 1, 2, 10, 1000, 4097]) {
      const p = epochPermutation(n, 42, 0);
      expect([...p].sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i));
      expect(epochPermutation(n, 42, 0)).toEqual(p);
    }
    const a = epochPermutation(1000, 42, 0);
    expect(epochPermutation(1000, 42, 1)).not.toEqual(a);
    expect(epochPermutation(1000, 43, 0)).not.toEqual(a);
    expect([...epochPermutation(50, 1, 0, false)]).toEqual(Array.from({ length: 50 }, (_, i) => i));
  });

  it('ranks partition each epoch: exactly once across ranks, counts within one', () => {
    for (const [n, world] of [[1003, 4], [3, 4], [16, 4], [1, 1], [97, 8]] as const) {
      for (let epoch = 0; epoch < 3; epoch++) {
        const seen = new Map<number, number>();
        const counts: number[] = [];
        for (let rank = 0; rank < world; rank++) {
          const mine = rankOrder(n, { seed: 5, epoch, rank, worldSize: world });
          counts.push(mine.length);
          for (const i of mine) seen.set(i, (seen.get(i) ?? 0) + 1);
        }
        expect(seen.size).toBe(n);
        expect([...seen.values()].every((c) => c === 1)).toBe(true);
        expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1);
      }
    }
  });

  it('resume from any cursor continues with exactly the remaining batches', () => {
    const all = plan(103, { batchSize: 10 });
    expect(all.length).toBe(3 * 11);
    for (const cut of [0, 1, 5, 10, 11, 12, 20, 32]) {
      const rest = plan(103, { batchSize: 10, start: all[cut]!.next });
      expect(rest.map((b) => [b.epoch, b.step, [...b.indices]])).toEqual(all.slice(cut + 1).map((b) => [b.epoch, b.step, [...b.indices]]));
    }
    // The last cursor points past the end.
    expect(plan(103, { batchSize: 10, start: all[all.length - 1]!.next })).toEqual([]);
  });

  it('draws without modulo bias over small ranges', () => {
    const r = new SeededRandom(1);
    const counts = [0, 0, 0];
    for (let i = 0; i < 30_000; i++) counts[r.below(3)]!++;
    for (const c of counts) expect(Math.abs(c - 10_000)).toBeLessThan(400);
  });
});
