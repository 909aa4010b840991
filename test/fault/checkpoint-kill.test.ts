// Checkpoint publish under kill -9: a saver process writes checkpoints in a loop and is killed
// with SIGKILL at a random moment, 24 times. After every kill, `latest` must be a complete
// checkpoint whose every tensor loads, matches its CRC-32 and is exactly the bytes of that step;
// every listed checkpoint must load; and the next saver must carry on (removing what the killed
// one left half-written). Most kills must land inside a save, or the test proves nothing.
// FLYFS_SEED=<n> replays the kill times.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type FileSystem } from '../../client/index.js';
import { latestCheckpoint, listCheckpoints, loadCheckpoint } from '../../client/checkpoint/index.js';
import { SeededRandom } from '../../client/dataset/index.js';
import { startTestCluster } from '../helpers/cluster.js';
// @ts-expect-error: a plain ES module shared with the child process
import { tensorsOf } from './helpers/checkpoint-saver.mjs';

const seed = Number(process.env['FLYFS_SEED'] ?? Date.now() % 1_000_000);
const trials = 24;
const killAfterMsMin = 30;
const killAfterMsMax = 1_500;
const readyTimeoutMs = 20_000;
const dir = '/ckpt';
const saverPath = fileURLToPath(new URL('./helpers/checkpoint-saver.mjs', import.meta.url));

interface Saver { proc: ChildProcess; lines: string[]; ready: Promise<void>; exited: Promise<void> }

function startSaver(cluster: string): Saver {
  const proc = spawn(process.execPath, [saverPath, cluster, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`saver not ready within ${readyTimeoutMs} ms: ${stderr}`)), readyTimeoutMs);
    createInterface({ input: proc.stdout! }).on('line', (l) => {
      lines.push(l);
      if (l.startsWith('ready')) { clearTimeout(timer); resolve(); }
    });
    proc.once('exit', (code, signal) => { clearTimeout(timer); if (signal !== 'SIGKILL') reject(new Error(`saver exited ${code ?? signal}: ${stderr}`)); });
  });
  ready.catch(() => undefined);
  return { proc, lines, ready, exited };
}

describe('checkpoint publish under kill -9 of the saver', () => {
  let fs: FileSystem;
  let address: string;
  let cleanup: () => Promise<void>;
  const savers: Saver[] = [];

  beforeAll(async () => {
    const c = await startTestCluster('ckpt-kill', { metaservers: 1, storageServers: 3, targetsPerServer: 1 });
    cleanup = c.cleanup;
    address = c.cluster.clusterAddress;
    fs = await connect(address);
    await fs.mkdir(dir, { chunkSizeBytes: 65_536, stripe: 3 });
  }, 60_000);

  afterAll(async () => {
    for (const s of savers) if (s.proc.exitCode === null && s.proc.signalCode === null) s.proc.kill('SIGKILL');
    await Promise.all(savers.map((s) => s.exited));
    await fs?.close();
    await cleanup?.();
  }, 30_000);

  it(`latest is always a complete, checksum-valid checkpoint (${trials} kills)`, async () => {
    console.log(`checkpoint-kill: seed ${seed} (FLYFS_SEED=${seed} replays the kill times)`);
    const rnd = new SeededRandom(seed);
    let midSave = 0;
    let midPrune = 0;
    let lastLatest = 0;
    for (let t = 0; t < trials; t++) {
      const s = startSaver(address);
      savers.push(s);
      await s.ready;
      const after = killAfterMsMin + rnd.below(killAfterMsMax - killAfterMsMin);
      await new Promise((r) => setTimeout(r, after));
      s.proc.kill('SIGKILL');
      await s.exited;
      // A kill inside a save leaves its staging folder (removed by a later publish).
      const left = await fs.readdir(dir);
      if (left.some((n) => n.startsWith('.staging-'))) midSave++;
      if (left.some((n) => n.startsWith('.removing-'))) midPrune++;

      const latest = await latestCheckpoint(fs, dir);
      const saved = s.lines.filter((l) => l.startsWith('saved')).map((l) => Number(l.split(' ')[1]));
      if (saved.length > 0) expect(latest?.step).toBeGreaterThanOrEqual(saved[saved.length - 1]!);
      if (latest === undefined) continue;
      expect(latest.step).toBeGreaterThanOrEqual(lastLatest);
      lastLatest = latest.step;
      for (const c of await listCheckpoints(fs, dir)) {
        const l = await loadCheckpoint(fs, dir, { step: c.step });
        const want = tensorsOf(c.step) as Record<string, Buffer>;
        expect(Object.keys(l.tensors).sort()).toEqual(Object.keys(want).sort());
        for (const [name, data] of Object.entries(want)) expect(l.tensors[name]!.data.equals(data), `step ${c.step} tensor ${name}`).toBe(true);
        expect(l.manifest.metadata).toEqual({ step: c.step });
      }
    }
    console.log(`checkpoint-kill: ${trials} kills, ${midSave} left a half-written save, ${midPrune} a half-done prune, latest step ${lastLatest}`);
    expect(midSave).toBeGreaterThanOrEqual(trials / 2);
    // Saves also completed between kills (so pruning ran too), whatever the machine's load.
    expect(lastLatest).toBeGreaterThanOrEqual(4);
    // Leftovers of the killed saves are removed by the next publish.
    const s = startSaver(address);
    savers.push(s);
    await s.ready;
    await new Promise<void>((resolve) => { const i = setInterval(() => { if (s.lines.some((l) => l.startsWith('saved'))) { clearInterval(i); resolve(); } }, 20); });
    s.proc.kill('SIGKILL');
    await s.exited;
    const publishedAfter = (await latestCheckpoint(fs, dir))!.step;
    const stale = (await fs.readdir(dir)).filter((n) => (n.startsWith('.staging-') && Number(n.slice(9, 21)) < publishedAfter) || n.startsWith('.removing-'));
    expect(stale).toEqual([]);
    expect((await listCheckpoints(fs, dir)).length).toBeLessThanOrEqual(3);
  }, 240_000);
});
