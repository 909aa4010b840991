import { describe, expect, it } from 'vitest';
import { runDatasetBench, type DatasetBenchConfig } from '../../bench/dataset.js';
import { defaultRegistry } from '../../bench/index.js';

// A tiny configuration: the shape of the output is checked, never the timings.
const tiny: DatasetBenchConfig = {
  sampleSizesBytes: [64 * 1024, 256 * 1024],
  datasetBytes: 1024 * 1024,
  batchSize: 4,
  prefetch: 1,
  seed: 7,
  epochMs: 20_000,
};

describe('dataset benchmark', () => {
  it('is registered', () => {
    expect(defaultRegistry().get('dataset')?.defaultSizeBytes).toBe(1024 ** 3);
  });

  it('rejects a size too small for one sample', async () => {
    await expect(runDatasetBench({ sizeBytes: 4096, runs: 1, log: () => undefined }, { ...tiny, datasetBytes: 4096 })).rejects.toThrow(/--size/);
  });

  it('reads an epoch per sample size through the loader and from a local O_DIRECT file', { timeout: 60_000 }, async () => {
    const lines: string[] = [];
    const figures = await runDatasetBench({ sizeBytes: tiny.datasetBytes, runs: 2, log: (l) => lines.push(l) }, tiny);

    expect(figures.map((f) => f.name)).toEqual([
      'flyfs dataset epoch, 64 KiB samples in 4 MiB chunks (loader: batch 4, prefetch 1, shuffled, CRC-32 checked)',
      'flyfs dataset epoch, 256 KiB samples in 4 MiB chunks (loader: batch 4, prefetch 1, shuffled, CRC-32 checked)',
    ]);
    for (const f of figures) {
      expect(f.unit).toBe('GB/s');
      expect(f.baseline).toBe('local file, same order, O_DIRECT io_uring reads, qd 8 (no page cache)');
      expect(f.value).toBeGreaterThan(0);
      expect(f.baselineValue).toBeGreaterThan(0);
      expect(f.ratio).toBeCloseTo(f.value / f.baselineValue, 9);
      expect(f.runs).toHaveLength(2);
      expect(f.baselineRuns).toHaveLength(2);
    }
    // Only samples of 256 KiB and more have a target.
    const targets = lines.filter((l) => /^dataset: target (HOLDS|MISSES)/.test(l));
    expect(targets).toHaveLength(1);
    expect(targets[0]).toContain(`${figures[1]!.name} >= 0.8x ${figures[1]!.baseline}`);
    expect(lines.some((l) => l.includes('stopped at its'))).toBe(false);
  });
});
