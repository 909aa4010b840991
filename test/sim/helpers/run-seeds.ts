// Runs a range of metadata-chain simulation seeds outside vitest and prints the failures:
//   npx vite-node test/sim/helpers/run-seeds.ts <from> <to>
// FLYFS_SIM_TRACE=1 (roles, crashes, partitions) or =msgs (every replica message) traces a run.
import { runMetaChainSim } from './meta-chain-sim.js';

const from = Number(process.argv[2] ?? 1);
const to = Number(process.argv[3] ?? from);
const started = Date.now();
let failures = 0;
const totals: Record<string, number> = {};
for (let seed = from; seed <= to; seed++) {
  const r = runMetaChainSim({ seed });
  for (const [k, v] of Object.entries(r.stats)) totals[k] = (totals[k] ?? 0) + v;
  if (r.failure !== undefined) { failures++; if (failures <= 20) console.log(`seed ${seed}: ${r.failure}`); }
}
console.log(`${failures} failing of ${to - from + 1} seeds in ${Date.now() - started} ms; totals ${JSON.stringify(totals)}`);
