// The sort benchmark at a tiny size: the shape of its figures (never the timings), and that its
// GraySort output validated (the bench asserts it) against DuckDB's local sort of the same records.
import { describe, expect, it } from 'vitest';
import { runSortBench, sortBenchConfig } from '../../bench/sort.js';

describe('sort benchmark', () => {
  it('runs GraySort and a 3-stage SQL job against DuckDB in one local process', { timeout: 120_000 }, async () => {
    const lines: string[] = [];
    const cfg = { ...sortBenchConfig(3 * 1024 * 1024), fileBytes: 1024 * 1024, partitions: 3 };
    const figures = await runSortBench({ sizeBytes: cfg.bytes, runs: 1, log: (l) => lines.push(l) }, cfg);
    expect(figures.map((f) => f.baseline)).toEqual([
      'DuckDB ORDER BY in one process, local disk (the same records as Parquet)',
      'the same SQL in one local DuckDB process',
    ]);
    for (const f of figures) {
      expect(f.unit).toBe('GB/s');
      expect(f.value).toBeGreaterThan(0);
      expect(f.baselineValue).toBeGreaterThan(0);
      expect(f.ratio).toBeCloseTo(f.value / f.baselineValue, 6);
    }
    expect(lines.some((l) => /sort: target (HOLDS|MISSES)/.test(l))).toBe(true);
  });
});
