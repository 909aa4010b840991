// Disk faults at a storage server: a byte flipped in a chunk file on disk is caught by the
// checksummed read (EIO at the SDK when no other replica holds the chunk, the server goes on
// serving) and by the background scrub, which reports it in /status and /metrics. With a chain
// of 3, the read is served from a good replica and the scrub repairs the damaged copies.
import { open as openFile, readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type FileSystem } from '../../client/index.js';
import type { LocalCluster } from '../../tools/local-cluster.js';
import { chunkFilesOf, seededBytes, startTestCluster } from '../helpers/cluster.js';

const scrubIntervalMs = 200;

describe('disk faults', () => {
  let cluster: LocalCluster;
  let cleanup: () => Promise<void>;
  let dir: string;
  let fs: FileSystem;

  beforeAll(async () => {
    const c = await startTestCluster('disk-faults', {
      metaservers: 1, storageServers: 1, targetsPerServer: 1,
      extraArgs: { storageserver: ['--scrub-interval-ms', String(scrubIntervalMs)] },
    });
    cluster = c.cluster; cleanup = c.cleanup; dir = c.dir;
    fs = await connect(cluster.clusterAddress);
  });

  afterAll(async () => { await fs?.close(); await cleanup?.(); });

  it('catches a flipped byte on read and in the scrub; the server keeps serving other data', async () => {
    const good = seededBytes(1, 100_000);
    const bad = seededBytes(2, 100_000);
    await fs.writeFile('/good', good);
    await fs.writeFile('/bad', bad);
    const { ino } = await fs.stat('/bad');
    const files = await chunkFilesOf(dir, ino);
    expect(files).toHaveLength(1);
    const fh = await openFile(files[0]!, 'r+');
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, 5_000);
    b[0] = b[0]! ^ 0xff;
    await fh.write(b, 0, 1, 5_000);
    await fh.close();

    await expect(fs.readFile('/bad')).rejects.toMatchObject({ code: 'EIO' });
    expect(Buffer.compare(await fs.readFile('/good') as Buffer, good)).toBe(0);

    const storage = cluster.nodes.find((n) => n.role === 'storageserver')!;
    type Status = { scrub: Array<{ damagedCount: number; damaged: Array<{ inodeId: number; index: number }>; lastPassAtMs?: number }> };
    const until = Date.now() + 10_000;
    let status: Status;
    for (;;) {
      status = await (await fetch(`http://${storage.httpAddress}/status`)).json() as Status;
      if (status.scrub[0]!.damagedCount > 0 || Date.now() > until) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(status.scrub[0]!.damaged).toEqual([{ inodeId: ino, index: 0 }]);
    const metrics = await (await fetch(`http://${storage.httpAddress}/metrics`)).text();
    expect(metrics).toMatch(/flyfs_scrub_damaged_chunks\{target="[^"]+"\} 1/);
    expect((await fetch(`http://${storage.httpAddress}/healthz`)).status).toBe(200);

    // A whole rewrite replaces the damaged version; the next pass finds nothing.
    await fs.writeFile('/bad', bad);
    expect(Buffer.compare(await fs.readFile('/bad') as Buffer, bad)).toBe(0);
    const clean = Date.now() + 10_000;
    for (;;) {
      status = await (await fetch(`http://${storage.httpAddress}/status`)).json() as Status;
      if (status.scrub[0]!.damagedCount === 0 || Date.now() > clean) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(status.scrub[0]!.damagedCount).toBe(0);
  });
});

/** Flips one byte of a file on disk. */
async function flipByte(path: string, at: number): Promise<void> {
  const fh = await openFile(path, 'r+');
  const b = Buffer.alloc(1);
  await fh.read(b, 0, 1, at);
  b[0] = b[0]! ^ 0xff;
  await fh.write(b, 0, 1, at);
  await fh.close();
}

describe.each([
  { scrubIntervalMs: 600_000, what: 'a read is served from a good replica when two of three copies are damaged' },
  { scrubIntervalMs: 200, what: 'the scrub repairs damaged copies from a good replica' },
])('disk faults on a chain of 3 ($scrubIntervalMs ms scrub)', ({ scrubIntervalMs: interval, what }) => {
  const chunk = 65_536;
  let cluster: LocalCluster;
  let cleanup: () => Promise<void>;
  let dir: string;
  let fs: FileSystem;

  beforeAll(async () => {
    const c = await startTestCluster('disk-faults-3', {
      metaservers: 1, storageServers: 3, targetsPerServer: 1,
      extraArgs: { metaserver: ['--replicas', '3'], storageserver: ['--scrub-interval-ms', String(interval)] },
    });
    cluster = c.cluster; cleanup = c.cleanup; dir = c.dir;
    fs = await connect(cluster.clusterAddress);
    await fs.mkdir('/d', { chunkSizeBytes: chunk, stripe: 1 });
  });

  afterAll(async () => { await fs?.close(); await cleanup?.(); });

  it(what, async () => {
    // Three chunks: each one's first reader is a different replica, so damaged first choices occur.
    const data = seededBytes(40, 3 * chunk);
    await fs.writeFile('/d/f', data);
    const { ino } = await fs.stat('/d/f');
    const files = await chunkFilesOf(dir, ino);
    expect(files).toHaveLength(9);
    const damaged = files.filter((f) => !f.includes('/storage-2/'));
    expect(damaged).toHaveLength(6);
    for (const f of damaged) await flipByte(f, 1234);
    if (interval > 1000) {
      expect(Buffer.compare(await fs.readFile('/d/f') as Buffer, data)).toBe(0);
      return;
    }
    const until = Date.now() + 15_000;
    let bad = damaged.length;
    while (bad > 0 && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 100));
      bad = 0;
      for (const f of damaged) {
        const index = Number(/(\d+)\.\d+$/.exec(f)![1]);
        if (Buffer.compare(await readFile(f), data.subarray(index * chunk, (index + 1) * chunk)) !== 0) bad++;
      }
    }
    expect(bad).toBe(0);
    for (const n of cluster.nodes.filter((m) => m.role === 'storageserver')) {
      const status = await (await fetch(`http://${n.httpAddress}/status`)).json() as { scrub: Array<{ damagedCount: number }> };
      expect(status.scrub[0]!.damagedCount).toBe(0);
    }
    expect(Buffer.compare(await fs.readFile('/d/f') as Buffer, data)).toBe(0);
  });
});
