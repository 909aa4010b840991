// The examples run as a user runs them (node examples/…, the package imported by its name)
// against a real cluster: train with checkpoints, restore, and resume where training stopped.
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCluster } from '../helpers/cluster.js';

function run(script: string, args: string[], cluster: string): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [`examples/${script}`, ...args], { env: { ...process.env, FLYFS_CLUSTER: cluster }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = ''; let err = '';
    p.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    p.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    p.on('close', (code) => resolve({ code, out, err }));
  });
}

describe('examples', () => {
  let address: string;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    const c = await startTestCluster('examples', { metaservers: 1, storageServers: 3, targetsPerServer: 1 });
    cleanup = c.cleanup;
    address = c.cluster.clusterAddress;
  }, 60_000);

  afterAll(async () => { await cleanup?.(); });

  it('train-loop checkpoints, restore loads, a second run resumes at the saved step', async () => {
    const first = await run('train-loop.mjs', ['--steps', '60', '--every', '20', '--samples', '1024'], address);
    expect(first.err).toBe('');
    expect(first.code).toBe(0);
    expect(first.out).toMatch(/packing 1024 samples/);
    expect(first.out.match(/checkpoint saved/g)?.length).toBe(3);
    const loss = (s: string): number[] => [...s.matchAll(/loss (\d+\.\d+)/g)].map((m) => Number(m[1]));
    const firstLoss = loss(first.out);
    expect(firstLoss[firstLoss.length - 1]!).toBeLessThan(0.69);

    const restore = await run('restore.mjs', [], address);
    expect(restore.code).toBe(0);
    expect(restore.out).toMatch(/checkpoints: 20, 40, 60/);
    expect(restore.out).toMatch(/model\.weights: float32 \[256\], 1024 bytes, verified/);
    const only = await run('restore.mjs', ['--step', '40', '--only', 'optim.momentum'], address);
    expect(only.out).toMatch(/checkpoint 40/);
    expect(only.out).not.toMatch(/model\.weights/);

    const second = await run('train-loop.mjs', ['--steps', '100', '--every', '20', '--samples', '1024'], address);
    expect(second.code).toBe(0);
    expect(second.out).not.toMatch(/packing/);
    expect(second.out).toMatch(/resumed from checkpoint 60 \(epoch 1, batch 28\)/);
    expect(second.out).toMatch(/step 80: /);
    expect(second.out).toMatch(/done at step 100/);
    const after = await run('restore.mjs', [], address);
    expect(after.out).toMatch(/checkpoints: 60, 80, 100/);
  }, 120_000);
});
