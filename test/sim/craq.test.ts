// The CRAQ core (storageserver/craq) under a seeded simulation (test/sim/helpers/craq-sim.ts):
// 2–4 replicas, message loss, duplication, delay and reordering, crashes (also between
// persisting and sending), reconfigurations by a simulated cluster manager (offline → syncing →
// serving). Checked: a read never returns uncommitted data or a version older than one already
// acknowledged; no version is torn, divergent or applied twice; after the chain settles every
// acknowledged write is readable, identically, from every serving replica.
// A failing seed is printed; replay it with CRAQ_SEED=<seed> npx vitest run test/sim/craq.test.ts
import { describe, expect, it } from 'vitest';
import type { CraqInput, CraqOutput } from '../../storageserver/craq/index.js';
import { chunkName } from '../../storageserver/craq/index.js';
import { runCraqSim, runSeeds } from './helpers/craq-sim.js';

const replay = process.env.CRAQ_SEED;
const seedsTotal = Number(process.env.CRAQ_SIM_SEEDS ?? 5_000);
const parts = 5;

describe('CRAQ chain replication, simulated', () => {
  if (replay !== undefined) {
    it(`replays seed ${replay}`, () => {
      const r = runCraqSim({ seed: Number(replay), trace: true });
      if (r.violations.length > 0 || process.env.CRAQ_TRACE === '1') console.log([...r.trace, ...r.violations].join('\n'));
      expect(r.violations).toEqual([]);
    });
    return;
  }

  for (let part = 0; part < parts; part++) {
    const from = 1 + Math.floor((seedsTotal * part) / parts);
    const count = Math.floor((seedsTotal * (part + 1)) / parts) - from + 1;
    it(`seeds ${from}..${from + count - 1}: committed reads only, nothing acknowledged lost`, async () => {
      const failures: string[] = [];
      // In slices, yielding between them, so the worker keeps answering vitest.
      for (let s = from; s < from + count; s += 100) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        failures.push(...runSeeds(s, Math.min(100, from + count - s)));
      }
      if (failures.length > 0) console.error(failures.slice(0, 20).join('\n'));
      expect(failures).toEqual([]);
    });
  }

  it('does real work: writes acknowledged, reads served, crashes and reconfigurations', () => {
    let acked = 0; let reads = 0; let crashes = 0; let reconfigurations = 0;
    for (let seed = 1; seed <= 200; seed++) {
      const s = runCraqSim({ seed }).stats;
      acked += s.writesAcked; reads += s.reads; crashes += s.crashes; reconfigurations += s.reconfigurations;
    }
    expect(acked).toBeGreaterThan(200 * 5);
    expect(reads).toBeGreaterThan(200);
    expect(crashes).toBeGreaterThan(200);
    expect(reconfigurations).toBeGreaterThan(200);
  });

  it('replays a seed exactly: the same trace twice', () => {
    const a = runCraqSim({ seed: 4242, trace: true });
    const b = runCraqSim({ seed: 4242, trace: true });
    expect(a.trace.length).toBeGreaterThan(500);
    expect(b.trace).toEqual(a.trace);
    expect(b.stats).toEqual(a.stats);
  });

  // The checker must catch broken replicas, or passing seeds mean nothing.
  it('catches a replica that answers reads with its pending version', () => {
    let caught = 0;
    for (let seed = 1; seed <= 300 && caught === 0; seed++) {
      const r = runCraqSim({
        seed,
        wrap: (replica, disk) => ({
          step(input: CraqInput): CraqOutput {
            const out = replica.step(input);
            if (input.kind !== 'read') return out;
            const pending = disk.get(chunkName(input.request.chunk))?.pending;
            if (pending === null || pending === undefined) return out;
            return { ...out, replies: out.replies.map((rep) => ({ ...rep, result: { ok: true as const, version: pending.version, content: pending.content } })) };
          },
        }),
      });
      if (r.violations.some((v) => v.includes('uncommitted'))) caught++;
    }
    expect(caught).toBeGreaterThan(0);
  });

  it('catches a syncing replica that declares itself in sync before it is', () => {
    let caught = 0;
    for (let seed = 1; seed <= 300 && caught === 0; seed++) {
      const r = runCraqSim({
        seed,
        wrap: (replica) => ({
          step(input: CraqInput): CraqOutput {
            // Every sync batch claims to be the last one, and carries no data.
            if (input.kind === 'peer' && input.message.body.kind === 'syncData') {
              const body = { ...input.message.body, chunks: [], pendings: [], removes: [], done: true };
              return replica.step({ kind: 'peer', message: { ...input.message, body } });
            }
            return replica.step(input);
          },
        }),
      });
      if (r.violations.length > 0) caught++;
    }
    expect(caught).toBeGreaterThan(0);
  });
});
