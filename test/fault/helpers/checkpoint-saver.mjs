// A training process that only checkpoints: saves steps latest+1, latest+2, … with keepLast 3
// until it is killed. Each step's tensors are derived from the step (tensorsOf), so whoever
// loads a checkpoint can tell whether its bytes are exactly that step's. Run from dist/:
//   node checkpoint-saver.mjs CLUSTER DIR
// Prints `saving N` before and `saved N` after each save.
import { fileURLToPath } from 'node:url';

/** xorshift32 bytes from a seed. */
function bytes(seed, length) {
  const b = Buffer.allocUnsafe(length);
  let x = (seed >>> 0) || 0x9e3779b9;
  for (let i = 0; i < length; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

/** The tensors of `step`: several shards of sizes that vary with the step, a few spanning many chunks. */
export function tensorsOf(step) {
  const out = {};
  for (let k = 0; k < 6; k++) out[`layer${k}.weight`] = bytes(step * 100 + k, 20_000 + ((step * 7_919 + k * 104_729) % 400_000));
  out['step'] = Buffer.from(JSON.stringify({ step }));
  return out;
}

async function main() {
  const [cluster, dir] = process.argv.slice(2);
  const root = new URL('../../../dist/client/', import.meta.url);
  const { connect } = await import(new URL('index.js', root).href);
  const { latestCheckpoint, saveCheckpoint } = await import(new URL('checkpoint/index.js', root).href);
  const fs = await connect(cluster, { deadlineMs: 20_000 });
  let step = ((await latestCheckpoint(fs, dir))?.step ?? 0) + 1;
  process.stdout.write(`ready ${step}\n`);
  for (;;) {
    process.stdout.write(`saving ${step}\n`);
    await saveCheckpoint(fs, dir, step, tensorsOf(step), { keepLast: 3, metadata: { step } });
    process.stdout.write(`saved ${step}\n`);
    step++;
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((err) => { process.stderr.write(`checkpoint-saver: ${err?.stack ?? err}\n`); process.exit(1); });
}
