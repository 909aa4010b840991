import { describe, expect, it } from 'vitest';
import { checkpointTargets, runCheckpointBench, type CheckpointBenchConfig } from '../../bench/checkpoint.js';
import { defaultRegistry } from '../../bench/index.js';

const MiB = 1024 * 1024;

// A tiny configuration: the shape of the output is checked, never the timings. The tensors (3 MiB
// and a bit) are split into 1 MiB baseline pieces, so pieces and tensors do not line up.
const tiny: CheckpointBenchConfig = {
  checkpointBytes: 4 * (3 * MiB + 40),
  shards: 4,
  pieceBytes: 1 * MiB,
  passMsMax: 20_000,
};

describe('checkpoint benchmark', () => {
  it('is registered', () => {
    expect(defaultRegistry().get('checkpoint')?.defaultSizeBytes).toBe(4 * 1024 ** 3);
  });

  it('saves and loads a checkpoint against a sequential write and read of one file', { timeout: 60_000 }, async () => {
    const lines: string[] = [];
    const figures = await runCheckpointBench({ sizeBytes: tiny.checkpointBytes, runs: 2, log: (l) => lines.push(l) }, tiny);

    expect(figures.map((f) => [f.name, f.baseline])).toEqual([
      ['flyfs checkpoint save, 4 tensors of 3.00 MiB (saveCheckpoint)', 'sequential write, one 12.00 MiB flyfs file, 1 MiB pieces'],
      ["flyfs checkpoint load into the caller's tensors, 4 tensors of 3.00 MiB (loadCheckpoint into, CRC32C checked)", 'sequential read, one 12.00 MiB flyfs file, 1 MiB pieces, into one reused buffer'],
      ['flyfs checkpoint load into new buffers, 4 tensors of 3.00 MiB (loadCheckpoint, CRC32C checked)', 'sequential read, one 12.00 MiB flyfs file, 1 MiB pieces, into one reused buffer'],
    ]);
    for (const f of figures) {
      expect(f.unit).toBe('GB/s');
      expect(f.value).toBeGreaterThan(0);
      expect(f.baselineValue).toBeGreaterThan(0);
      expect(f.ratio).toBeCloseTo(f.value / f.baselineValue, 9);
      expect(f.runs).toHaveLength(2);
    }
    expect(checkpointTargets(figures).map((t) => typeof t.holds)).toEqual(['boolean', 'boolean', 'boolean']);
    expect(lines.filter((l) => /^checkpoint: target (HOLDS|MISSES)/.test(l))).toHaveLength(3);
  });
});
