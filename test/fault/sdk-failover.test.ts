// The SDK's dataset and checkpoint paths across failovers (issue 5): 3 metaservers and 3 storage
// servers (chains of 3) as processes. While a dataset epoch is read (a packed dataset and a
// directory dataset at once) and while checkpoints are saved and loaded, one storage server is
// killed with SIGKILL and restarted, then the metaserver head is killed and restarted. Every
// sample must arrive exactly once per epoch with its exact bytes, every save must publish, and
// every checkpoint must load back exactly; work must go on inside each fault window.
// FLYFS_FAULT_LOGS=<dir> keeps the children's logs past the cleanup.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type FileSystem } from '../../client/index.js';
import { openDataset, packDataset } from '../../client/dataset/index.js';
import { latestCheckpoint, loadCheckpoint, saveCheckpoint } from '../../client/checkpoint/index.js';
import type { LocalCluster } from '../../tools/local-cluster.js';
import { seededBytes, startFaultCluster } from '../helpers/cluster.js';
import { sleep, waitFullChain } from './helpers/chain.js';

const chainArgs = ['--chain-heartbeat-ms', '50', '--chain-suspect-ms', '300', '--chain-lease-ms', '500'];
const opDeadlineMs = 30_000;
const chainFullTimeoutMs = 30_000;
const samples = 240;
const sampleOf = (i: number): Buffer => seededBytes(7_000 + i, 8_000 + ((i * 7_919) % 60_000));
/** Each fault: the victim stays down this long (work goes on), then is restarted. */
const downMs = 2_500;
/** Work between and after the faults. */
const settleMs = 1_000;
const runBoundMs = 90_000;

type Fault = { what: string; doneDuring: number };

describe('dataset and checkpoint across a storage server and a metaserver head failing', () => {
  let cluster: LocalCluster;
  let cleanup: (() => Promise<void>) | undefined;
  let fs: FileSystem;
  const expectedExits = new Set<string>();
  const unexpectedExits: string[] = [];

  beforeAll(async () => {
    const c = await startFaultCluster('sdk-failover', {
      metaservers: 3, storageServers: 3, targetsPerServer: 1, replicas: 3,
      extraArgs: { metaserver: [...chainArgs, '--lease-ms', '1000'], storageserver: ['--craq-tick-ms', '100'] },
    }, { expected: expectedExits, unexpected: unexpectedExits });
    cluster = c.cluster;
    cleanup = c.cleanup;
    await waitFullChain(cluster, chainFullTimeoutMs);
    fs = await connect(cluster.clusterAddress, { deadlineMs: opDeadlineMs });
    await fs.mkdir('/ds', { chunkSizeBytes: 65_536, stripe: 3 });
    await packDataset(fs, Array.from({ length: samples }, (_, i) => sampleOf(i)), '/ds/packed', { shardBytes: 1 << 20 });
    await fs.mkdir('/ds/files');
    for (let i = 0; i < samples; i += 2) await fs.writeFile(`/ds/files/s${String(i).padStart(4, '0')}`, sampleOf(i));
    await fs.mkdir('/ck', { chunkSizeBytes: 65_536, stripe: 3 });
  }, 120_000);

  afterAll(async () => {
    await fs?.close();
    await cleanup?.();
    expect(unexpectedExits).toEqual([]);
  }, 60_000);

  /** Kills one storage server, then the metaserver head, each for downMs, while `progress()` counts work. */
  async function faults(progress: () => number): Promise<Fault[]> {
    const out: Fault[] = [];
    await sleep(settleMs);
    const storage = cluster.nodes.find((n) => n.role === 'storageserver' && n.name.endsWith('1'))!;
    const head = (await waitFullChain(cluster, chainFullTimeoutMs)).byRole.head;
    for (const victim of [storage, head]) {
      const before = progress();
      expectedExits.add(victim.name);
      cluster.kill(victim.name, 'SIGKILL');
      await sleep(downMs);
      await cluster.restartNode(victim.name);
      await sleep(settleMs);
      out.push({ what: `${victim.role} ${victim.name}`, doneDuring: progress() - before });
    }
    return out;
  }

  it('a dataset epoch (packed and directory) reads every sample exactly once with its bytes', async () => {
    const seen = { packed: new Map<number, number>(), files: new Map<number, number>() };
    let batches = 0;
    let stop = false;
    const started = Date.now();
    const epochs = async (path: string, into: Map<number, number>, stride: number): Promise<number> => {
      let epoch = 0;
      // Epochs repeat until the faults are over; each must be whole.
      while (!stop && Date.now() - started < runBoundMs) {
        const ds = await openDataset(fs, path);
        const count = new Map<number, number>();
        try {
          for await (const b of ds.batches({ batchSize: 8, seed: 3, epochs: epoch + 1, start: { epoch, step: 0 }, prefetch: 2 })) {
            b.indices.forEach((i, k) => {
              count.set(i, (count.get(i) ?? 0) + 1);
              expect(b.samples[k]!.equals(sampleOf(i * stride)), `${path} epoch ${epoch} sample ${i}`).toBe(true);
            });
            batches++;
          }
        } finally { await ds.close(); }
        expect(count.size).toBe(samples / stride);
        expect([...count.values()].every((c) => c === 1)).toBe(true);
        for (const i of count.keys()) into.set(i, (into.get(i) ?? 0) + 1);
        epoch++;
      }
      return epoch;
    };
    const readers = Promise.all([epochs('/ds/packed', seen.packed, 1), epochs('/ds/files', seen.files, 2)]);
    readers.catch(() => { stop = true; });
    let done: Fault[];
    try { done = await faults(() => batches); } finally { stop = true; }
    const [packedEpochs, fileEpochs] = await readers;
    console.log(`sdk-failover dataset: ${packedEpochs} packed and ${fileEpochs} directory epochs, ${batches} batches; ${done.map((f) => `${f.doneDuring} batches across ${f.what}`).join(', ')}`);
    expect(packedEpochs).toBeGreaterThanOrEqual(1);
    expect(fileEpochs).toBeGreaterThanOrEqual(1);
    for (const f of done) expect(f.doneDuring, `batches read across the fault of ${f.what}`).toBeGreaterThan(0);
  }, 180_000);

  it('checkpoints save and load back exactly through both faults', async () => {
    const tensorsOf = (step: number): Record<string, Buffer> =>
      Object.fromEntries(Array.from({ length: 8 }, (_, k) => [`t${k}`, seededBytes(step * 16 + k, 30_000 + ((step + k) * 10_007) % 200_000)]));
    let saved = 0;
    let stop = false;
    const started = Date.now();
    const loop = (async () => {
      for (let step = 1; !stop && Date.now() - started < runBoundMs; step++) {
        await saveCheckpoint(fs, '/ck', step, tensorsOf(step), { keepLast: 2 });
        const l = await loadCheckpoint(fs, '/ck', { step });
        for (const [n, d] of Object.entries(tensorsOf(step))) expect(l.tensors[n]!.data.equals(d), `step ${step} ${n}`).toBe(true);
        saved++;
      }
    })();
    loop.catch(() => { stop = true; });
    let done: Fault[];
    try { done = await faults(() => saved); } finally { stop = true; }
    await loop;
    const latest = await latestCheckpoint(fs, '/ck');
    expect(latest?.step).toBe(saved);
    console.log(`sdk-failover checkpoint: ${saved} checkpoints saved and loaded; ${done.map((f) => `${f.doneDuring} across ${f.what}`).join(', ')}`);
    for (const f of done) expect(f.doneDuring, `checkpoints saved across the fault of ${f.what}`).toBeGreaterThan(0);
  }, 180_000);
});
