// Disk faults at a storage server: a byte flipped in a chunk file on disk is caught by the
// checksummed read (EIO at the SDK, the server goes on serving) and by the background scrub,
// which reports it in /status and /metrics.
import { open as openFile } from 'node:fs/promises';
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
