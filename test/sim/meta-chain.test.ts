// The metaserver chain-replication core under a seeded simulation (test/sim/helpers/meta-chain-sim.ts):
// message loss, delay, duplication and reordering, crashes with and without unsynced writes,
// replica partitions and the epoch changes they cause. Every history is checked for
// linearizability and for acknowledged appends lost. A failing seed is printed; replay it with
//   FLYFS_SIM_SEED=<seed> npx vitest run test/sim/meta-chain.test.ts
import { describe, expect, it } from 'vitest';
import { runMetaChainSim } from './helpers/meta-chain-sim.js';

const replay = process.env.FLYFS_SIM_SEED;
const seedsTotal = Number(process.env.FLYFS_SIM_SEEDS ?? 5_000);
// Parts keep each test short, and the loop yields to the event loop between seeds, so the test
// worker keeps talking to vitest (a worker blocked for many seconds trips its RPC timeout).
const parts = 10;
const yieldEvery = 5;

describe('metaserver chain replication, simulated', () => {
  if (replay !== undefined) {
    it(`replays seed ${replay}`, () => {
      const r = runMetaChainSim({ seed: Number(replay) });
      console.log(JSON.stringify(r));
      expect(r.failure).toBeUndefined();
    });
    return;
  }
  for (let part = 0; part < parts; part++) {
    const from = 1 + Math.floor((seedsTotal * part) / parts);
    const to = Math.floor((seedsTotal * (part + 1)) / parts);
    it(`seeds ${from}..${to} keep every history linearizable and every acknowledged write`, async () => {
      const failures: string[] = [];
      let acked = 0; let reads = 0; let epochs = 0; let crashes = 0; let snapshots = 0;
      for (let seed = from; seed <= to; seed++) {
        if ((seed - from) % yieldEvery === 0) await new Promise<void>((resolve) => setImmediate(resolve));
        const r = runMetaChainSim({ seed });
        if (r.failure !== undefined) failures.push(`seed ${seed}: ${r.failure}`);
        acked += r.stats.acked; reads += r.stats.reads; epochs += r.stats.epochs; crashes += r.stats.crashes; snapshots += r.stats.snapshots;
      }
      if (failures.length > 0) console.error(`${failures.length} failing seeds; replay with FLYFS_SIM_SEED=<seed>\n${failures.slice(0, 20).join('\n')}`);
      expect(failures).toEqual([]);
      // The runs did real work: writes were acknowledged, epochs changed, crashes and snapshots happened.
      expect(acked).toBeGreaterThan((to - from + 1) * 20);
      expect(reads).toBeGreaterThan(to - from + 1);
      expect(epochs).toBeGreaterThan(to - from + 1);
      expect(crashes).toBeGreaterThan(0);
      expect(snapshots).toBeGreaterThan(0);
    });
  }
});
