import { describe, expect, it } from 'vitest';
import { forEachParallel } from '../../common/parallel.js';

describe('forEachParallel', () => {
  it('runs every index once with at most `limit` in flight', async () => {
    let inflight = 0;
    let peak = 0;
    const seen: number[] = [];
    await forEachParallel(25, 4, async (k) => {
      inflight++;
      peak = Math.max(peak, inflight);
      await new Promise((r) => setTimeout(r, 1 + (k % 3)));
      seen.push(k);
      inflight--;
    });
    expect(seen.sort((a, b) => a - b)).toEqual(Array.from({ length: 25 }, (_, i) => i));
    expect(peak).toBe(4);
    await forEachParallel(0, 4, async () => { throw new Error('never'); });
  });

  it('rejects with the first failure and starts nothing after it', async () => {
    const started: number[] = [];
    await expect(forEachParallel(100, 2, async (k) => {
      started.push(k);
      await new Promise((r) => setTimeout(r, 1));
      if (k === 3) throw new Error('boom at 3');
    })).rejects.toThrow('boom at 3');
    expect(Math.max(...started)).toBeLessThan(10);
  });
});
