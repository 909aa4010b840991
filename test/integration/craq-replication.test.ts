// A chain of 3 targets on 3 storage-server processes: every write is stored on each replica
// with identical bytes; with one server killed (-9) writes go on on the other two; restarted,
// it resyncs from its predecessor and holds exactly what the others hold.
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type FileSystem } from '../../client/index.js';
import type { LocalCluster } from '../../tools/local-cluster.js';
import { chunkFilesOf, seededBytes, startTestCluster } from '../helpers/cluster.js';

const chunkSizeBytes = 65_536;

interface ChainStatus { chainId: number; version: number; targetId: number; state: string }

async function chainsOf(cluster: LocalCluster): Promise<ChainStatus[]> {
  const out: ChainStatus[] = [];
  for (const n of cluster.nodes.filter((m) => m.role === 'storageserver' && m.state === 'running')) {
    const s = await (await fetch(`http://${n.httpAddress}/status`)).json() as { chains: ChainStatus[] };
    out.push(...s.chains);
  }
  return out;
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Each chunk index of the inode → the bytes of every replica's committed file of it. */
async function replicasOf(dir: string, ino: number): Promise<Map<number, Buffer[]>> {
  const out = new Map<number, Buffer[]>();
  for (const f of await chunkFilesOf(dir, ino)) {
    const index = Number(/(\d+)\.\d+$/.exec(f)![1]);
    const list = out.get(index) ?? [];
    list.push(await readFile(f));
    out.set(index, list);
  }
  return out;
}

function expectReplicated(replicas: Map<number, Buffer[]>, expected: Buffer): void {
  const chunks = Math.ceil(expected.length / chunkSizeBytes);
  expect([...replicas.keys()].sort((a, b) => a - b)).toEqual([...Array(chunks).keys()]);
  for (const [index, copies] of replicas) {
    const want = expected.subarray(index * chunkSizeBytes, (index + 1) * chunkSizeBytes);
    expect(copies, `chunk ${index}`).toHaveLength(3);
    for (const c of copies) expect(Buffer.compare(c, want), `chunk ${index}`).toBe(0);
  }
}

// Both I/O engines: the same replication with the node:fs fallback forced.
describe.each(['io_uring', 'fs'])('CRAQ over real storage servers (%s I/O)', (ioEngine) => {
  let cluster: LocalCluster;
  let cleanup: () => Promise<void>;
  let dir: string;
  let fs: FileSystem;

  beforeAll(async () => {
    const c = await startTestCluster('craq', {
      metaservers: 1, storageServers: 3, targetsPerServer: 1,
      extraArgs: { metaserver: ['--replicas', '3', '--lease-ms', '1000'], storageserver: ['--craq-tick-ms', '100', '--io-engine', ioEngine] },
    });
    cluster = c.cluster; cleanup = c.cleanup; dir = c.dir;
    fs = await connect(cluster.clusterAddress);
    await fs.mkdir('/d', { chunkSizeBytes, stripe: 1 });
  });

  afterAll(async () => { await fs?.close(); await cleanup?.(); });

  it('stores every write on all 3 replicas with identical bytes', async () => {
    const data = seededBytes(7, 4 * chunkSizeBytes + 1000);
    await fs.writeFile('/d/a', data);
    const { ino } = await fs.stat('/d/a');
    expectReplicated(await replicasOf(dir, ino), data);
    // A partial overwrite is copy-on-write at the head and reaches every replica whole.
    const patch = seededBytes(8, 5000);
    const fh = await fs.open('/d/a', 'r+');
    await fh.write(patch, 0, patch.length, chunkSizeBytes - 2000);
    await fh.close();
    patch.copy(data, chunkSizeBytes - 2000);
    expectReplicated(await replicasOf(dir, ino), data);
    expect(Buffer.compare(await fs.readFile('/d/a') as Buffer, data)).toBe(0);
  });

  for (const victim of ['storage-0', 'storage-2']) {
    it(`keeps writing with ${victim} killed, and resyncs it when it returns`, async () => {
      const data = seededBytes(victim === 'storage-0' ? 20 : 30, 3 * chunkSizeBytes);
      await fs.writeFile(`/d/${victim}`, data);
      const { ino } = await fs.stat(`/d/${victim}`);
      cluster.kill(victim, 'SIGKILL');
      // Written while the victim is down: the manager takes it out of the chain, the rest commit.
      const during = seededBytes(victim === 'storage-0' ? 21 : 31, 3 * chunkSizeBytes);
      await fs.writeFile(`/d/${victim}`, during);
      const extra = seededBytes(victim === 'storage-0' ? 22 : 32, 2 * chunkSizeBytes);
      await fs.writeFile(`/d/${victim}-new`, extra);
      await cluster.restartNode(victim);
      await waitFor('every target serving again', async () => {
        const chains = await chainsOf(cluster);
        return chains.length === 3 && chains.every((c) => c.state === 'TARGET_STATE_SERVING') && new Set(chains.map((c) => c.version)).size === 1 ? chains : undefined;
      }, 30_000);
      expectReplicated(await replicasOf(dir, ino), during);
      expectReplicated(await replicasOf(dir, (await fs.stat(`/d/${victim}-new`)).ino), extra);
      expect(Buffer.compare(await fs.readFile(`/d/${victim}`) as Buffer, during)).toBe(0);
    }, 60_000);
  }
});
