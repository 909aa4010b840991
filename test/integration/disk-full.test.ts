// A target filled to its disk-full watermark: new chunks are refused with ENOSPC, everything
// committed before reads back intact, and once deleted files' chunks are collected the freed
// space takes writes again. The storage server's folder is a small tmpfs this test mounts
// (the test runs as root, as CI does), so the file system really fills.
import { execFileSync } from 'node:child_process';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type FileSystem } from '../../client/index.js';
import { startLocalCluster, type LocalCluster } from '../../tools/local-cluster.js';
import { seededBytes, tempDir } from '../helpers/cluster.js';

const fsBytes = 48 * 1024 * 1024;
const fileBytes = 1024 * 1024;
/** Bounds the fill loop: the tmpfs holds fewer files than this. */
const filesMax = 64;

describe('disk full', () => {
  let dir: string;
  let mountPoint: string;
  let cluster: LocalCluster | undefined;
  let fs: FileSystem | undefined;

  beforeAll(async () => {
    dir = await tempDir('disk-full');
    mountPoint = join(dir, 'data', 'storage-0');
    await mkdir(mountPoint, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${fsBytes}`, 'tmpfs', mountPoint]);
    cluster = await startLocalCluster({
      dataDir: join(dir, 'data'), metaservers: 1, storageServers: 1, targetsPerServer: 1,
      extraArgs: { metaserver: ['--gc-interval-ms', '200'], storageserver: ['--disk-full-ratio', '0.5'] },
    });
    fs = await connect(cluster.clusterAddress);
    await fs.mkdir('/d', { chunkSizeBytes: fileBytes, stripe: 1 });
  });

  afterAll(async () => {
    await fs?.close();
    await cluster?.stop();
    try { execFileSync('umount', [mountPoint]); } catch { /* not mounted */ }
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses new chunks with ENOSPC above the watermark, loses nothing, and writes again once space is freed', async () => {
    const written: number[] = [];
    let refusal: NodeJS.ErrnoException | undefined;
    for (let i = 0; i < filesMax && refusal === undefined; i++) {
      try {
        await fs!.writeFile(`/d/f${i}`, seededBytes(i, fileBytes));
        written.push(i);
      } catch (err) {
        refusal = err as NodeJS.ErrnoException;
      }
    }
    expect(refusal?.code).toBe('ENOSPC');
    // About half of the file system: the watermark, not the end of the disk, stopped the writes.
    expect(written.length).toBeGreaterThan(10);
    expect(written.length).toBeLessThan(fsBytes / fileBytes);
    for (const i of written) expect(Buffer.compare(await fs!.readFile(`/d/f${i}`) as Buffer, seededBytes(i, fileBytes)), `file ${i}`).toBe(0);
    // Still refused while full.
    await expect(fs!.writeFile('/d/more', seededBytes(999, fileBytes))).rejects.toMatchObject({ code: 'ENOSPC' });

    // Free half: the GC removes their chunks from the target, and writes work again.
    const freed = written.slice(0, Math.ceil(written.length / 2));
    for (const i of freed) await fs!.unlink(`/d/f${i}`);
    const until = Date.now() + 20_000;
    let ok = false;
    while (!ok && Date.now() < until) {
      try {
        await fs!.writeFile('/d/after', seededBytes(1000, fileBytes));
        ok = true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    expect(ok).toBe(true);
    expect(Buffer.compare(await fs!.readFile('/d/after') as Buffer, seededBytes(1000, fileBytes))).toBe(0);
    for (const i of written.slice(freed.length)) expect(Buffer.compare(await fs!.readFile(`/d/f${i}`) as Buffer, seededBytes(i, fileBytes)), `file ${i}`).toBe(0);
  }, 60_000);
});
