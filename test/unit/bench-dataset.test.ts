import { describe, expect, it } from 'vitest';
import { runDatasetBench, sampleSet, type DatasetBenchConfig } from '../../bench/dataset.js';
import { defaultRegistry } from '../../bench/index.js';

const KiB = 1024;

// A tiny configuration: the shape of the output is checked, never the timings. 4 KiB samples are
// bounded by count (64 of them), 256 KiB ones by bytes (4), mixed ones by either.
const tiny: DatasetBenchConfig = {
  sampleSizes: [4 * KiB, 256 * KiB, { minBytes: 4 * KiB, maxBytes: 256 * KiB }],
  datasetBytes: 1024 * KiB,
  samplesMax: 64,
  batchSize: 4,
  prefetch: 1,
  seed: 7,
  epochMs: 20_000,
};

describe('dataset benchmark', () => {
  it('is registered', () => {
    expect(defaultRegistry().get('dataset')?.defaultSizeBytes).toBe(1024 ** 3);
  });

  it('rejects a size too small for the largest sample', async () => {
    await expect(runDatasetBench({ sizeBytes: 4096, runs: 1, log: () => undefined }, { ...tiny, datasetBytes: 4096 })).rejects.toThrow(/--size/);
  });

  it('bounds each dataset by bytes and by count; mixed sizes are aligned, within bounds, and the same for a seed', () => {
    const small = sampleSet(4 * KiB, tiny);
    expect(small.lengths.length).toBe(64);
    expect(sampleSet(256 * KiB, tiny).lengths.length).toBe(4);
    const spec = { minBytes: 4 * KiB, maxBytes: 4096 * KiB };
    const mixed = sampleSet(spec, { datasetBytes: 1024 ** 3, samplesMax: 4096, seed: 1 });
    expect(mixed.totalBytes).toBeLessThanOrEqual(1024 ** 3);
    for (const n of mixed.lengths) {
      expect(n % 4096).toBe(0);
      expect(n).toBeGreaterThanOrEqual(spec.minBytes);
      expect(n).toBeLessThanOrEqual(spec.maxBytes);
    }
    // Log-uniform: about as many samples below the geometric middle (128 KiB) as above it.
    const below = mixed.lengths.filter((n) => n < 128 * KiB).length;
    expect(below / mixed.lengths.length).toBeGreaterThan(0.4);
    expect(below / mixed.lengths.length).toBeLessThan(0.6);
    expect(mixed.offsets[5]).toBe(mixed.lengths.slice(0, 5).reduce((a, b) => a + b, 0));
    expect(sampleSet(spec, { datasetBytes: 1024 ** 3, samplesMax: 4096, seed: 1 }).lengths).toEqual(mixed.lengths);
  });

  it('reads an epoch per sample size through the loader and from a local O_DIRECT file, in GB/s and samples/s', { timeout: 60_000 }, async () => {
    const lines: string[] = [];
    const figures = await runDatasetBench({ sizeBytes: tiny.datasetBytes, runs: 2, log: (l) => lines.push(l) }, tiny);

    const loader = '(loader: batch 4, prefetch 1, shuffled, CRC-32 checked)';
    const names = [
      `flyfs dataset epoch, 4 KiB samples in 4 MiB chunks ${loader}`,
      `flyfs dataset epoch, 256 KiB samples in 4 MiB chunks ${loader}`,
      `flyfs dataset epoch, mixed 4 KiB–256 KiB (log-uniform) samples in 4 MiB chunks ${loader}`,
    ];
    expect(figures.map((f) => [f.name, f.unit])).toEqual(names.flatMap((n) => [[n, 'GB/s'], [n, 'samples/s']]));
    for (const f of figures) {
      expect(f.baseline).toBe('local file, same order, O_DIRECT io_uring reads, qd 8 (no page cache)');
      expect(f.value).toBeGreaterThan(0);
      expect(f.baselineValue).toBeGreaterThan(0);
      expect(f.ratio).toBeCloseTo(f.value / f.baselineValue, 9);
      expect(f.runs).toHaveLength(2);
      expect(f.baselineRuns).toHaveLength(2);
    }
    // 64 samples of 4 KiB in an epoch: samples/s × 4 KiB = bytes/s.
    expect(figures[1]!.value * 4096 / 1e9).toBeCloseTo(figures[0]!.value, 6);
    // Only fixed sizes of 256 KiB and more have a target.
    const targets = lines.filter((l) => /^dataset: target (HOLDS|MISSES)/.test(l));
    expect(targets).toHaveLength(1);
    expect(targets[0]).toContain(`${figures[2]!.name} >= 0.8x ${figures[2]!.baseline}`);
    expect(lines.some((l) => l.includes('stopped at its'))).toBe(false);
  });
});
