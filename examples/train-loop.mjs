// A training-loop sketch on flyfs: streams a packed dataset in shuffled batches (sharded by rank)
// and checkpoints the model, the optimizer state and the loader's cursor every N steps. Run it
// again and it resumes from the latest checkpoint, at the exact batch where it stopped.
//
//   npm start                      # in another terminal: a local cluster
//   node examples/train-loop.mjs --steps 200 --every 50
//   node examples/train-loop.mjs --steps 300   # resumes at step 200
//
// The "model" is a linear classifier over byte histograms, trained by SGD: small, but every
// number depends on every sample it saw, so a wrong resume shows up in the loss.
import { connect } from 'flyfs';
import { openDataset, packDataset } from 'flyfs/dataset';
import { latestCheckpoint, loadCheckpoint, saveCheckpoint } from 'flyfs/checkpoint';
import { clusterAddress, flags } from './cluster.mjs';

const o = flags({ steps: 200, every: 50, batch: 32, dataset: '/examples/dataset', checkpoints: '/examples/checkpoints', samples: 4096, rank: 0, world: 1, seed: 1 });
const features = 256;

/** Sample i: 2 KiB of bytes whose distribution depends on its label (i mod 2). */
function sample(i) {
  const b = Buffer.allocUnsafe(2048);
  let x = (i * 2654435761) >>> 0 || 1;
  for (let k = 0; k < b.length; k++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    b[k] = i % 2 === 0 ? x & 0x7f : 0x80 | (x & 0x7f);
  }
  b[0] = i % 2;
  return b;
}

function featuresOf(s) {
  const f = new Float32Array(features);
  for (let k = 1; k < s.length; k++) f[s[k]] += 1 / s.length;
  return f;
}

const fs = await connect(clusterAddress());
try {
  try {
    await fs.stat(`${o.dataset}/dataset.json`);
  } catch {
    console.log(`packing ${o.samples} samples into ${o.dataset}`);
    await fs.mkdir(o.dataset.slice(0, o.dataset.lastIndexOf('/')) || '/', { recursive: true });
    await packDataset(fs, (function* () { for (let i = 0; i < o.samples; i++) yield sample(i); })(), o.dataset, { shardBytes: 4 << 20 });
  }
  const ds = await openDataset(fs, o.dataset);

  // Resume from the latest checkpoint, if there is one.
  let weights = new Float32Array(features);
  let momentum = new Float32Array(features);
  let step = 0;
  let cursor = { epoch: 0, step: 0 };
  const latest = await latestCheckpoint(fs, o.checkpoints);
  if (latest !== undefined) {
    const ck = await loadCheckpoint(fs, o.checkpoints);
    const f32 = (t) => new Float32Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.length));
    weights = f32(ck.tensors['model.weights']);
    momentum = f32(ck.tensors['optim.momentum']);
    ({ step, cursor } = ck.manifest.metadata);
    console.log(`resumed from checkpoint ${latest.step} (epoch ${cursor.epoch}, batch ${cursor.step})`);
  }
  if (step >= o.steps) console.log(`already trained ${step} steps`);

  let loss = 0;
  for await (const batch of ds.batches({ batchSize: o.batch, seed: o.seed, rank: o.rank, worldSize: o.world, prefetch: 4, epochs: Infinity, start: cursor })) {
    if (step >= o.steps) break;
    const grad = new Float32Array(features);
    loss = 0;
    for (const s of batch.samples) {
      const x = featuresOf(s);
      const y = s[0];
      let z = 0;
      for (let k = 0; k < features; k++) z += weights[k] * x[k];
      const p = 1 / (1 + Math.exp(-z));
      loss += -(y * Math.log(p + 1e-9) + (1 - y) * Math.log(1 - p + 1e-9)) / batch.samples.length;
      for (let k = 0; k < features; k++) grad[k] += ((p - y) * x[k]) / batch.samples.length;
    }
    for (let k = 0; k < features; k++) { momentum[k] = 0.9 * momentum[k] + grad[k]; weights[k] -= 5 * momentum[k]; }
    step++;
    cursor = batch.next;
    if (step % o.every === 0 || step === o.steps) {
      await saveCheckpoint(fs, o.checkpoints, step, {
        'model.weights': { data: weights, dtype: 'float32', shape: [features] },
        'optim.momentum': { data: momentum, dtype: 'float32', shape: [features] },
      }, { keepLast: 3, metadata: { step, cursor, loss } });
      console.log(`step ${step}: loss ${loss.toFixed(4)} (epoch ${batch.epoch}); checkpoint saved`);
    }
  }
  await ds.close();
  console.log(`done at step ${step}, loss ${loss.toFixed(4)}`);
} finally {
  await fs.close();
}
