// Restore: lists the checkpoints, loads the latest (or --step N) — every tensor checked against
// its CRC-32 — and prints what it holds; --only NAME loads just that tensor.
//
//   node examples/restore.mjs
//   node examples/restore.mjs --step 100 --only model.weights
import { connect } from 'flyfs';
import { listCheckpoints, loadCheckpoint } from 'flyfs/checkpoint';
import { clusterAddress, flags } from './cluster.mjs';

const o = flags({ checkpoints: '/examples/checkpoints', step: -1, only: '' });
const fs = await connect(clusterAddress());
try {
  const all = await listCheckpoints(fs, o.checkpoints);
  console.log(`checkpoints: ${all.map((c) => c.step).join(', ') || 'none'}`);
  if (all.length > 0) {
    const ck = await loadCheckpoint(fs, o.checkpoints, {
      ...(o.step >= 0 ? { step: o.step } : {}),
      ...(o.only ? { names: [o.only] } : {}),
    });
    console.log(`checkpoint ${ck.step}: saved ${ck.manifest.createdAt}, metadata ${JSON.stringify(ck.manifest.metadata)}`);
    for (const [name, t] of Object.entries(ck.tensors)) {
      const head = t.dtype === 'float32' ? Array.from(new Float32Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + Math.min(16, t.data.length))), (v) => v.toFixed(4)) : [];
      console.log(`  ${name}: ${t.dtype ?? 'bytes'} [${(t.shape ?? [t.data.length]).join(', ')}], ${t.data.length} bytes, verified ${head.length ? `(${head.join(', ')}, …)` : ''}`);
    }
  }
} finally {
  await fs.close();
}
