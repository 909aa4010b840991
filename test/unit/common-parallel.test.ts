import { describe, expect, it } from 'vitest';
import { forEachParallel, forEachWithinBudget } from '../../common/parallel.js';

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

describe('forEachWithinBudget', () => {
  it('keeps the cost in flight within costMax, lets an oversize task run alone, starts tasks in order', async () => {
    const costs = [3, 3, 3, 10, 1, 1, 1, 1, 6, 2];
    let inflight = 0;
    let spent = 0;
    let peakSpent = 0;
    const started: number[] = [];
    await forEachWithinBudget(costs.length, { limit: 3, costMax: 6, cost: (k) => costs[k]! }, async (k) => {
      started.push(k);
      inflight++;
      spent += costs[k]!;
      if (costs[k]! > 6) expect(inflight).toBe(1);
      else peakSpent = Math.max(peakSpent, spent);
      expect(inflight).toBeLessThanOrEqual(3);
      await new Promise((r) => setTimeout(r, 1 + (k % 2)));
      inflight--;
      spent -= costs[k]!;
    });
    expect(started).toEqual(costs.map((_, i) => i));
    expect(peakSpent).toBe(6);
    await forEachWithinBudget(0, { limit: 1, costMax: 1, cost: () => 1 }, async () => { throw new Error('never'); });
  });

  it('rejects with the first failure and starts nothing after it', async () => {
    const started: number[] = [];
    await expect(forEachWithinBudget(100, { limit: 2, costMax: 100, cost: () => 1 }, async (k) => {
      started.push(k);
      await new Promise((r) => setTimeout(r, 1));
      if (k === 3) throw new Error('boom at 3');
    })).rejects.toThrow('boom at 3');
    const after = started.length;
    await new Promise((r) => setTimeout(r, 20));
    expect(started.length).toBe(after);
    expect(Math.max(...started)).toBeLessThan(10);
  });
});
