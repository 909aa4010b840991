// Dataset loading and checkpoints through the SDK against a real cluster: packing, random access,
// epochs over ranks (exactly once, shuffled by seed, resumable), directory datasets, checksum
// verification; checkpoint save/load of buffers and streams, latest/list/retention, several
// ranks saving one step, refusals, loads into the caller's memory, manifest versions, and
// detection of damaged tensors.
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { crc32 } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type FileSystem } from '../../client/index.js';
import { openDataset, packDataset, type Batch } from '../../client/dataset/index.js';
import {
  latestCheckpoint, listCheckpoints, loadCheckpoint, readCheckpointManifest, saveCheckpoint, stepDirName,
} from '../../client/checkpoint/index.js';
import { crc32c } from '../../storageserver/crc32c.js';
import { seededBytes, startTestCluster } from '../helpers/cluster.js';

const sampleCount = 301;
const sampleOf = (i: number): Buffer => seededBytes(1000 + i, i % 37 === 0 ? 0 : 100 + ((i * 7919) % 6000));

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

describe('datasets and checkpoints', () => {
  let fs: FileSystem;
  let address: string;
  let dir: string;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    const c = await startTestCluster('dataset-ckpt', { metaservers: 1, storageServers: 3, targetsPerServer: 1 });
    cleanup = c.cleanup;
    dir = c.dir;
    address = c.cluster.clusterAddress;
    fs = await connect(address);
    await fs.mkdir('/d', { chunkSizeBytes: 65_536, stripe: 3 });
    await packDataset(fs, Array.from({ length: sampleCount }, (_, i) => sampleOf(i)), '/d/packed', { shardBytes: 128 * 1024 });
  });

  afterAll(async () => { await fs?.close(); await cleanup?.(); });

  it('packs into shards with an index; get(i) and getMany return each sample exactly', async () => {
    const ds = await openDataset(fs, '/d/packed');
    expect(ds.kind).toBe('packed');
    expect(ds.length).toBe(sampleCount);
    const names = (await fs.readdir('/d/packed')).sort();
    expect(names.filter((n) => n.startsWith('shard-')).length).toBeGreaterThan(3);
    expect(names).toContain('dataset.json');
    expect(names).toContain('index.bin');
    expect((await fs.readdir('/d')).filter((n) => n.includes('.packing-'))).toEqual([]);
    for (const i of [0, 1, 37, 150, sampleCount - 1]) expect((await ds.get(i)).equals(sampleOf(i))).toBe(true);
    const idx = [300, 3, 3, 74, 0, 199];
    const many = await ds.getMany(idx);
    idx.forEach((i, k) => expect(many[k]!.equals(sampleOf(i))).toBe(true));
    await expect(ds.get(sampleCount)).rejects.toMatchObject({ code: 'FLYFS_ERR_INVALID_ARGUMENT' });
    await expect(ds.get(-1)).rejects.toMatchObject({ code: 'FLYFS_ERR_INVALID_ARGUMENT' });
    await ds.close();
  });

  it('3 epochs over 4 ranks: every sample once per epoch, order by seed, differs by epoch; resume continues exactly', async () => {
    const world = 4;
    const run = async (seed: number): Promise<Batch[][]> => Promise.all(Array.from({ length: world }, async (_, rank) => {
      const ds = await openDataset(fs, '/d/packed');
      try { return await collect(ds.batches({ batchSize: 16, seed, rank, worldSize: world, epochs: 3, prefetch: 3 })); } finally { await ds.close(); }
    }));
    const a = await run(11);
    const orders: number[][] = [];
    for (let epoch = 0; epoch < 3; epoch++) {
      const seen = new Map<number, number>();
      const order: number[] = [];
      for (const rankBatches of a) {
        for (const b of rankBatches.filter((x) => x.epoch === epoch)) {
          b.indices.forEach((i, k) => {
            seen.set(i, (seen.get(i) ?? 0) + 1);
            order.push(i);
            expect(b.samples[k]!.equals(sampleOf(i))).toBe(true);
          });
        }
      }
      expect(seen.size).toBe(sampleCount);
      expect([...seen.values()].every((c) => c === 1)).toBe(true);
      orders.push(order);
    }
    expect(orders[1]).not.toEqual(orders[0]);
    expect(orders[2]).not.toEqual(orders[1]);
    const again = await run(11);
    expect(again.map((r) => r.map((b) => [b.epoch, b.step, [...b.indices]]))).toEqual(a.map((r) => r.map((b) => [b.epoch, b.step, [...b.indices]])));
    const other = await run(12);
    expect(other[0]!.map((b) => [...b.indices])).not.toEqual(a[0]!.map((b) => [...b.indices]));

    // Rank 1 stops mid-epoch 1 and resumes from the cursor of its last batch.
    const ds = await openDataset(fs, '/d/packed');
    const full = a[1]!;
    const cut = full.findIndex((b) => b.epoch === 1 && b.step === 2);
    const seenBefore: Batch[] = [];
    for await (const b of ds.batches({ batchSize: 16, seed: 11, rank: 1, worldSize: world, epochs: 3, prefetch: 2 })) {
      seenBefore.push(b);
      if (seenBefore.length === cut + 1) break;
    }
    const resumed = await collect(ds.batches({ batchSize: 16, seed: 11, rank: 1, worldSize: world, epochs: 3, start: seenBefore[cut]!.next }));
    expect([...seenBefore, ...resumed].map((b) => [b.epoch, b.step, [...b.indices]])).toEqual(full.map((b) => [b.epoch, b.step, [...b.indices]]));
    resumed.forEach((b) => b.indices.forEach((i, k) => expect(b.samples[k]!.equals(sampleOf(i))).toBe(true)));
    await ds.close();
  });

  it('a directory of sample files is a dataset too (sorted by name)', async () => {
    await fs.mkdir('/d/files');
    for (let i = 0; i < 20; i++) await fs.writeFile(`/d/files/s${String(i).padStart(3, '0')}`, sampleOf(i));
    await fs.mkdir('/d/files/subdir-ignored');
    const ds = await openDataset(fs, '/d/files');
    expect(ds.kind).toBe('directory');
    expect(ds.length).toBe(20);
    expect((await ds.get(7)).equals(sampleOf(7))).toBe(true);
    const batches = await collect(ds.batches({ batchSize: 6, seed: 1, rank: 0, worldSize: 2 }));
    const mine = batches.flatMap((b) => [...b.indices]);
    expect(mine.length).toBe(10);
    batches.forEach((b) => b.indices.forEach((i, k) => expect(b.samples[k]!.equals(sampleOf(i))).toBe(true)));
    await ds.close();
  });

  it('refuses bad options, an existing destination, a broken manifest; detects damaged samples', async () => {
    const ds = await openDataset(fs, '/d/packed');
    expect(() => ds.batches({ batchSize: 0 })).toThrow(/batchSize/);
    expect(() => ds.batches({ batchSize: 4, rank: 4, worldSize: 4 })).toThrow(/rank/);
    expect(() => ds.batches({ batchSize: 4, prefetch: 1_000 })).toThrow(/prefetch/);
    await ds.close();
    await expect(packDataset(fs, [Buffer.from('x')], '/d/packed')).rejects.toMatchObject({ code: 'FLYFS_ERR_EXISTS' });

    await packDataset(fs, Array.from({ length: 10 }, (_, i) => sampleOf(i + 1)), '/d/damaged', { shardBytes: 1 << 20 });
    const h = await fs.open('/d/damaged/shard-00000.bin', 'r+');
    await h.write(Buffer.from([0xff ^ sampleOf(1)[5]!]), 0, 1, 5);
    await h.close();
    const dd = await openDataset(fs, '/d/damaged');
    await expect(dd.get(0)).rejects.toMatchObject({ code: 'FLYFS_ERR_CORRUPT' });
    expect((await dd.get(1)).equals(sampleOf(2))).toBe(true);
    await dd.close();
    const unverified = await openDataset(fs, '/d/damaged', { verify: false });
    expect((await unverified.get(0)).length).toBe(sampleOf(1).length);
    await unverified.close();

    await fs.mkdir('/d/bad');
    await fs.writeFile('/d/bad/dataset.json', JSON.stringify({ format: 'flyfs-dataset', version: 1, samples: -3 }));
    await expect(openDataset(fs, '/d/bad')).rejects.toMatchObject({ code: 'FLYFS_ERR_BAD_FORMAT' });
    await fs.writeFile('/d/bad/dataset.json', '{not json');
    await expect(openDataset(fs, '/d/bad')).rejects.toMatchObject({ code: 'FLYFS_ERR_BAD_FORMAT' });
    await expect(openDataset(fs, '/d/nothing-here')).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('flyfs dataset pack packs a local folder; info describes it', async () => {
    const local = join(dir, 'samples');
    await mkdir(local);
    for (let i = 0; i < 12; i++) await writeFile(join(local, `x${String(i).padStart(2, '0')}.bin`), sampleOf(i + 50));
    const cli = (args: string[]): Promise<{ code: number | null; out: string; err: string }> => new Promise((resolve) => {
      const p = spawn(process.execPath, ['dist/tools/cli.js', ...args, '--cluster', address], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = ''; let err = '';
      p.stdout.on('data', (d: Buffer) => { out += d.toString(); });
      p.stderr.on('data', (d: Buffer) => { err += d.toString(); });
      p.on('close', (code) => resolve({ code, out, err }));
    });
    const r = await cli(['dataset', 'pack', local, 'flyfs:/d/from-cli', '--shard-size', '20000']);
    expect(r.err).not.toMatch(/error/i);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/packed 12 samples/);
    const ds = await openDataset(fs, '/d/from-cli');
    expect(ds.length).toBe(12);
    for (let i = 0; i < 12; i++) expect((await ds.get(i)).equals(sampleOf(i + 50))).toBe(true);
    await ds.close();
    const info = await cli(['dataset', 'info', '/d/from-cli', '--json']);
    expect(info.code).toBe(0);
    expect(JSON.parse(info.out)).toMatchObject({ kind: 'packed', samples: 12 });
    const again = await cli(['dataset', 'pack', local, 'flyfs:/d/from-cli']);
    expect(again.code).not.toBe(0);
    expect(again.err).toMatch(/exists/);
  });

  describe('checkpoints', () => {
    const tensorsOf = (step: number): Record<string, Buffer> => ({
      'model.embed': seededBytes(step * 10 + 1, 300_000),
      'model.layers.0.w': seededBytes(step * 10 + 2, 65_536 * 3 + 17),
      'optim/state': seededBytes(step * 10 + 3, 0),
      'rng': seededBytes(step * 10 + 4, 8),
    });

    it('saves buffers, typed arrays and streams; loads all or some, verified; dtype and shape kept', async () => {
      const weights = new Float32Array(50_000).map((_, i) => Math.sin(i));
      const streamed = seededBytes(77, 1_000_003);
      const web = seededBytes(78, 200_000);
      const info = await saveCheckpoint(fs, '/ck/a', 5, {
        w: { data: weights, dtype: 'float32', shape: [250, 200] },
        half: new Uint16Array(weights.buffer, 400, 1000),
        node: Readable.from((function* () { for (let o = 0; o < streamed.length; o += 65_000) yield streamed.subarray(o, o + 65_000); })()),
        web: new ReadableStream<Uint8Array>({ start(c) { c.enqueue(web.subarray(0, 5)); c.enqueue(web.subarray(5)); c.close(); } }),
        empty: Buffer.alloc(0),
      }, { metadata: { loss: 1.5, cursor: { epoch: 1, step: 9 } } });
      expect(info).toEqual({ step: 5, path: `/ck/a/${stepDirName(5)}` });
      const all = await loadCheckpoint(fs, '/ck/a');
      expect(all.step).toBe(5);
      expect(all.manifest.metadata).toEqual({ loss: 1.5, cursor: { epoch: 1, step: 9 } });
      expect(all.tensors['w']!.dtype).toBe('float32');
      expect(all.tensors['w']!.shape).toEqual([250, 200]);
      expect(new Float32Array(all.tensors['w']!.data.buffer, all.tensors['w']!.data.byteOffset, 50_000)).toEqual(weights);
      expect(all.tensors['half']!.data.equals(Buffer.from(weights.buffer, 400, 2000))).toBe(true);
      expect(all.tensors['node']!.data.equals(streamed)).toBe(true);
      expect(all.tensors['web']!.data.equals(web)).toBe(true);
      expect(all.tensors['empty']!.data.length).toBe(0);
      const some = await loadCheckpoint(fs, '/ck/a', { step: 5, names: ['node'] });
      expect(Object.keys(some.tensors)).toEqual(['node']);
      await expect(loadCheckpoint(fs, '/ck/a', { names: ['nope'] })).rejects.toMatchObject({ code: 'FLYFS_ERR_NOT_FOUND' });
      await expect(loadCheckpoint(fs, '/ck/a', { step: 6 })).rejects.toMatchObject({ code: 'ENOENT' });
      await expect(saveCheckpoint(fs, '/ck/a', 5, { x: Buffer.from('y') })).rejects.toMatchObject({ code: 'FLYFS_ERR_EXISTS' });
      expect((await fs.readdir('/ck/a')).filter((n) => n.startsWith('.staging-'))).toEqual([]);
    });

    it('latest, list and keepLast; abandoned staging folders are removed by the next save', async () => {
      expect(await latestCheckpoint(fs, '/ck/none')).toBeUndefined();
      await expect(loadCheckpoint(fs, '/ck/none')).rejects.toMatchObject({ code: 'FLYFS_ERR_NOT_FOUND' });
      await fs.mkdir('/ck/r/.staging-000000000002-deadbeef', { recursive: true });
      await fs.writeFile('/ck/r/.staging-000000000002-deadbeef/r00000-000000.bin', 'half a save');
      for (const step of [1, 2, 3, 10]) await saveCheckpoint(fs, '/ck/r', step, tensorsOf(step), { keepLast: 2 });
      expect((await listCheckpoints(fs, '/ck/r')).map((c) => c.step)).toEqual([3, 10]);
      expect((await fs.readdir('/ck/r')).sort()).toEqual([stepDirName(10), stepDirName(3)].sort());
      expect((await latestCheckpoint(fs, '/ck/r'))?.step).toBe(10);
      const l = await loadCheckpoint(fs, '/ck/r');
      for (const [name, data] of Object.entries(tensorsOf(10))) expect(l.tensors[name]!.data.equals(data)).toBe(true);
    });

    it('several ranks save one step; rank 0 publishes once every part is there', async () => {
      const world = 4;
      const conns = await Promise.all(Array.from({ length: world - 1 }, () => connect(address)));
      try {
        const fsOf = (r: number): FileSystem => (r === 0 ? fs : conns[r - 1]!);
        const part = (r: number): Record<string, Buffer> => ({ [`rank${r}.a`]: seededBytes(500 + r, 40_000 + r), [`rank${r}.b`]: seededBytes(600 + r, 70_000) });
        // Rank 0 starts first and must wait for the others.
        const saves = Array.from({ length: world }, (_, r) => new Promise((res) => setTimeout(res, r * 40))
          .then(() => saveCheckpoint(fsOf(r), '/ck/m', 7, part(r), { rank: r, worldSize: world, saveId: 'job1' })));
        const infos = await Promise.all(saves);
        expect(infos.every((i) => i.step === 7)).toBe(true);
        const m = await readCheckpointManifest(fs, '/ck/m');
        expect(m.worldSize).toBe(world);
        expect(Object.keys(m.tensors).sort()).toEqual(Array.from({ length: world }, (_, r) => [`rank${r}.a`, `rank${r}.b`]).flat().sort());
        const l = await loadCheckpoint(fs, '/ck/m');
        for (let r = 0; r < world; r++) for (const [n, d] of Object.entries(part(r))) expect(l.tensors[n]!.data.equals(d)).toBe(true);
        // The same name from two ranks is refused at publish, and nothing is published.
        const dup = await Promise.allSettled([0, 1].map((r) => saveCheckpoint(fsOf(r), '/ck/m', 8, { same: Buffer.from([r]) }, { rank: r, worldSize: 2, saveId: 'job2', publishTimeoutMs: 3_000 })));
        expect(dup[0]!.status).toBe('rejected');
        expect(String((dup[0] as PromiseRejectedResult).reason)).toMatch(/saved by ranks 0 and 1/);
        expect((await latestCheckpoint(fs, '/ck/m'))?.step).toBe(7);
        await expect(saveCheckpoint(fs, '/ck/m', 9, {}, { rank: 0, worldSize: 2 })).rejects.toThrow(/saveId/);
      } finally {
        for (const c of conns) await c.close();
      }
    });

    it('a damaged or truncated tensor fails its load with FLYFS_ERR_CORRUPT', async () => {
      await saveCheckpoint(fs, '/ck/c', 1, tensorsOf(1));
      const m = await readCheckpointManifest(fs, '/ck/c', 1);
      const file = `/ck/c/${stepDirName(1)}/${m.tensors['model.embed']!.file}`;
      const h = await fs.open(file, 'r+');
      await h.write(Buffer.from('!'), 0, 1, 1234);
      await h.close();
      await expect(loadCheckpoint(fs, '/ck/c')).rejects.toMatchObject({ code: 'FLYFS_ERR_CORRUPT' });
      expect((await loadCheckpoint(fs, '/ck/c', { names: ['rng'] })).tensors['rng']!.data.equals(tensorsOf(1)['rng']!)).toBe(true);
      await fs.truncate(`/ck/c/${stepDirName(1)}/${m.tensors['rng']!.file}`, 4);
      await expect(loadCheckpoint(fs, '/ck/c', { names: ['rng'] })).rejects.toMatchObject({ code: 'FLYFS_ERR_CORRUPT' });
    });

    it('loads into the caller\'s memory; refuses views of the wrong size or for tensors not loaded', async () => {
      const t = tensorsOf(4);
      await saveCheckpoint(fs, '/ck/i', 4, t);
      const embed = new Uint8Array(t['model.embed']!.length);
      const layer = new Float32Array(Math.ceil(t['model.layers.0.w']!.length / 4) + 1);
      const layerView = new Uint8Array(layer.buffer, 2, t['model.layers.0.w']!.length);
      const l = await loadCheckpoint(fs, '/ck/i', { into: { 'model.embed': embed, 'model.layers.0.w': layerView } });
      expect(l.tensors['model.embed']!.data.buffer).toBe(embed.buffer);
      expect(Buffer.from(embed).equals(t['model.embed']!)).toBe(true);
      expect(l.tensors['model.layers.0.w']!.data.buffer).toBe(layer.buffer);
      expect(l.tensors['model.layers.0.w']!.data.byteOffset).toBe(2);
      expect(Buffer.from(layerView).equals(t['model.layers.0.w']!)).toBe(true);
      for (const n of ['optim/state', 'rng']) expect(l.tensors[n]!.data.equals(t[n]!)).toBe(true);
      await expect(loadCheckpoint(fs, '/ck/i', { into: { rng: new Uint8Array(9) } })).rejects.toMatchObject({ code: 'FLYFS_ERR_INVALID_ARGUMENT' });
      await expect(loadCheckpoint(fs, '/ck/i', { names: ['rng'], into: { 'model.embed': embed } })).rejects.toMatchObject({ code: 'FLYFS_ERR_INVALID_ARGUMENT' });
      await expect(loadCheckpoint(fs, '/ck/i', { into: { nope: new Uint8Array(1) } })).rejects.toMatchObject({ code: 'FLYFS_ERR_INVALID_ARGUMENT' });
      const m = await readCheckpointManifest(fs, '/ck/i', 4);
      const h = await fs.open(`/ck/i/${stepDirName(4)}/${m.tensors['rng']!.file}`, 'r+');
      await h.write(Buffer.from('!'), 0, 1, 3);
      await h.close();
      await expect(loadCheckpoint(fs, '/ck/i', { names: ['rng'], into: { rng: new Uint8Array(8) } })).rejects.toMatchObject({ code: 'FLYFS_ERR_CORRUPT' });
    });

    it('manifests carry CRC32Cs (version 2); version-1 manifests (zlib CRC-32s) still load and are checked', async () => {
      const t = tensorsOf(5);
      await saveCheckpoint(fs, '/ck/v', 5, t);
      const m = await readCheckpointManifest(fs, '/ck/v', 5);
      expect(m.version).toBe(2);
      for (const [n, d] of Object.entries(t)) expect(m.tensors[n]!.crc32c).toBe(crc32c(d));
      const v1 = (sums: (n: string, d: Buffer) => number): string => JSON.stringify({
        ...m, version: 1,
        tensors: Object.fromEntries(Object.entries(m.tensors).map(([n, e]) => {
          const { crc32c: _dropped, ...rest } = e;
          return [n, { ...rest, crc32: sums(n, t[n]!) }];
        })),
      });
      const manifestPath = `/ck/v/${stepDirName(5)}/manifest.json`;
      await fs.writeFile(manifestPath, v1((_n, d) => crc32(d)));
      const l = await loadCheckpoint(fs, '/ck/v', { step: 5 });
      for (const [n, d] of Object.entries(t)) expect(l.tensors[n]!.data.equals(d)).toBe(true);
      await fs.writeFile(manifestPath, v1((n, d) => (n === 'rng' ? crc32(d) ^ 1 : crc32(d))));
      await expect(loadCheckpoint(fs, '/ck/v', { step: 5 })).rejects.toMatchObject({ code: 'FLYFS_ERR_CORRUPT' });
      await fs.writeFile(manifestPath, JSON.stringify({ ...m, version: 3 }));
      await expect(loadCheckpoint(fs, '/ck/v', { step: 5 })).rejects.toMatchObject({ code: 'FLYFS_ERR_BAD_FORMAT' });
    });
  });
});
