// The local cluster `flyfs up` composes: a child that dies is reported, not silently restarted;
// with restart on, it comes back (same ports, same node) and its data is still served.
import { afterEach, describe, expect, it } from 'vitest';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { connect } from '../../client/index.js';
import { startLocalCluster, type LocalCluster, type LocalNode } from '../../tools/local-cluster.js';
import { isAlive, seededBytes, tempDir } from '../helpers/cluster.js';

function waitFor<T>(check: () => T | undefined, timeoutMs: number): Promise<T> {
  const until = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const poll = (): void => {
      const v = check();
      if (v !== undefined) resolve(v);
      else if (Date.now() > until) reject(new Error(`not within ${timeoutMs} ms`));
      else setTimeout(poll, 50);
    };
    poll();
  });
}

describe('local cluster', () => {
  let cluster: LocalCluster | undefined;
  let dir: string | undefined;

  afterEach(async () => {
    await cluster?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
    cluster = undefined;
    dir = undefined;
  });

  it('reports a child that dies and does not restart it', async () => {
    dir = await tempDir('lc-report');
    const exits: Array<{ node: LocalNode; signal: string | null }> = [];
    cluster = await startLocalCluster({
      dataDir: join(dir, 'data'), storageServers: 2, targetsPerServer: 1,
      onChildExit: (node, _code, signal) => exits.push({ node, signal }),
    });
    const victim = cluster.nodes.find((n) => n.name === 'storage-1')!;
    cluster.kill('storage-1', 'SIGKILL');
    const exit = await waitFor(() => exits[0], 5000);
    expect(exit.node.name).toBe('storage-1');
    expect(exit.signal).toBe('SIGKILL');
    await new Promise((r) => setTimeout(r, 500));
    expect(cluster.nodes.find((n) => n.name === 'storage-1')!.state).toBe('exited');
    expect(isAlive(victim.pid)).toBe(false);
    expect(exits.length).toBe(1);
  });

  it('restarts a dead child with --restart, as the same node, and serves its data again', async () => {
    dir = await tempDir('lc-restart');
    cluster = await startLocalCluster({ dataDir: join(dir, 'data'), storageServers: 2, targetsPerServer: 1, restart: true });
    const fs = await connect(cluster.clusterAddress);
    try {
      await fs.mkdir('/d', { chunkSizeBytes: 65536, stripe: 2 });
      const data = seededBytes(31, 300_000);
      await fs.writeFile('/d/f', data);
      const before = cluster.nodes.find((n) => n.name === 'storage-0')!;
      cluster.kill('storage-0', 'SIGKILL');
      const after = await waitFor(() => {
        const n = cluster!.nodes.find((m) => m.name === 'storage-0');
        return n && n.state === 'running' && n.pid !== before.pid ? n : undefined;
      }, 20_000);
      expect(after.nodeId).toBe(before.nodeId);
      expect(after.dataAddress).toBe(before.dataAddress);
      const back = await fs.readFile('/d/f') as Buffer;
      expect(Buffer.compare(back, data)).toBe(0);
    } finally {
      await fs.close();
    }
  });
});
