import { describe, expect, it } from 'vitest';
import { defaultRegistry } from '../../bench/index.js';
import { metaTargets, runMetaBench, unitEntries, unitOps, type MetaBenchConfig } from '../../bench/meta.js';

// A tiny configuration: the shape of the output is checked, never the timings.
const tiny: MetaBenchConfig = {
  clients: 4,
  connections: 2,
  opsOneClient: 6,
  opsManyClients: 12,
  statsOneClient: 10,
  statsManyClients: 20,
  dirEntries: 25,
  readdirsOneClient: 2,
  readdirsManyClients: 4,
  figureMs: 5_000,
  baselineOpsSingle: 5,
  baselineOpsBatched: 20,
  batchOps: 10,
  baselineReaddirs: 3,
};

describe('meta benchmark', () => {
  it('is registered', () => {
    expect(defaultRegistry().get('meta')?.name).toBe('meta');
  });

  it('measures every operation from 1 and N clients against its lmdb baselines', { timeout: 120_000 }, async () => {
    const lines: string[] = [];
    const figures = await runMetaBench({ sizeBytes: 0, runs: 1, log: (l) => lines.push(l) }, tiny);

    const ops = ['create (open w|creat|excl + close)', 'create-only (open r|creat|excl, 1 RPC)', 'stat', 'rename', 'unlink'];
    for (const op of ops) {
      for (const clients of ['1 client', '4 clients']) {
        const baselines = figures.filter((f) => f.name === `flyfs ${op}, ${clients}`).map((f) => f.baseline);
        expect(baselines).toHaveLength(2);
        expect(baselines.some((b) => b.includes('1 op/txn'))).toBe(true);
        expect(baselines.some((b) => b.includes('10 ops/txn'))).toBe(true);
      }
    }
    for (const clients of ['1 client', '4 clients']) {
      expect(figures.find((f) => f.name === `flyfs readdir 25 entries, ${clients} (readdirs)`)?.unit).toBe(unitOps);
      expect(figures.find((f) => f.name === `flyfs readdir 25 entries, ${clients} (entries)`)?.unit).toBe(unitEntries);
    }
    expect(figures).toHaveLength(ops.length * 2 * 2 + 4);
    for (const f of figures) {
      expect(f.value).toBeGreaterThan(0);
      expect(Number.isFinite(f.value)).toBe(true);
      expect(f.baselineValue).toBeGreaterThan(0);
      expect(f.ratio).toBeCloseTo(f.value / f.baselineValue, 9);
      expect(f.runs).toHaveLength(1);
      expect(f.baseline).toMatch(/^lmdb .*plain lmdb, sync/);
    }

    const targets = metaTargets(figures, tiny);
    expect(targets.map((t) => typeof t.holds)).toEqual(['boolean', 'boolean']);
    expect(lines.filter((l) => /^meta: target (HOLDS|MISSES)/.test(l))).toHaveLength(2);
  });
});
