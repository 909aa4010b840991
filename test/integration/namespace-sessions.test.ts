// Write sessions over a real cluster: an unlinked file lives on through its open handle and its
// chunks go after the close; a client that stops sending KeepAlive loses its sessions.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FileSystem } from '../../client/index.js';
import { connect } from '../../client/index.js';
import { chunkFilesOf, seededBytes, startTestCluster } from '../helpers/cluster.js';

const sessionTimeoutMs = 1_500;

async function chunkFiles(dataDir: string, inodeId: number): Promise<number> {
  return (await chunkFilesOf(dataDir, inodeId)).length;
}

async function eventually(check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('write sessions', () => {
  let dataDir: string;
  let address: string;
  let live: FileSystem;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    const c = await startTestCluster('sessions', {
      storageServers: 1, targetsPerServer: 2,
      extraArgs: { metaserver: ['--session-timeout-ms', String(sessionTimeoutMs), '--session-prune-interval-ms', '100', '--gc-interval-ms', '100'] },
    });
    cleanup = c.cleanup;
    dataDir = c.cluster.dataDir;
    address = c.cluster.clusterAddress;
    live = await connect(address, { keepAliveIntervalMs: 200 });
    await live.mkdir('/s', { chunkSizeBytes: 4096, stripe: 2 });
  }, 60_000);
  afterAll(async () => { await live?.close(); await cleanup?.(); });

  it('keeps an unlinked file readable and writable through its handle; its chunks go after close', async () => {
    const data = seededBytes(3, 20_000);
    const h = await live.open('/s/doomed', 'w+');
    await h.write(data, 0, data.length, 0);
    await live.unlink('/s/doomed');
    await expect(live.stat('/s/doomed')).rejects.toMatchObject({ code: 'ENOENT' });
    // Longer than the session timeout: KeepAlive holds the session (and the inode) alive.
    await new Promise((r) => setTimeout(r, sessionTimeoutMs + 500));
    await h.write(Buffer.from('more'), 0, 4, 20_000);
    const back = Buffer.alloc(20_004);
    const { bytesRead } = await h.read(back, 0, back.length, 0);
    expect(bytesRead).toBe(20_004);
    expect(back.subarray(0, 20_000).equals(data)).toBe(true);
    expect(back.subarray(20_000).toString()).toBe('more');
    expect(await chunkFiles(dataDir, h.fd)).toBe(5);
    await h.sync();
    await h.close();
    await eventually(async () => (await chunkFiles(dataDir, h.fd)) === 0, 10_000);
  }, 30_000);

  it('prunes the sessions of a client that stops KeepAlive, then finishes the deletion they held back', async () => {
    const silent = await connect(address, { keepAliveIntervalMs: 3_600_000 });
    try {
      const dead = await silent.open('/s/dead', 'w');
      await dead.write(Buffer.alloc(5000, 1), 0, 5000, 0);
      const kept = await live.open('/s/kept', 'w');
      await kept.write(Buffer.alloc(5000, 2), 0, 5000, 0);
      await live.unlink('/s/dead');
      await live.unlink('/s/kept');
      expect(await chunkFiles(dataDir, dead.fd)).toBe(2);
      await eventually(async () => (await chunkFiles(dataDir, dead.fd)) === 0, 10_000);
      await expect(dead.close()).rejects.toMatchObject({ code: 'ENOENT' });
      // The client that kept calling still has its session and its file.
      expect(await chunkFiles(dataDir, kept.fd)).toBe(2);
      await kept.close();
      await eventually(async () => (await chunkFiles(dataDir, kept.fd)) === 0, 10_000);
    } finally {
      await silent.close();
    }
  }, 30_000);
});
