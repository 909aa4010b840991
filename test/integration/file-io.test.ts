// Files through the client SDK against a real local cluster: exact round trips at the chunk
// and stripe boundaries, overwrite in the middle, short reads past EOF, and durability of data
// and metadata across a restart of every process.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { rm } from 'node:fs/promises';
import { connect, type FileSystem } from '../../client/index.js';
import { startLocalCluster, type LocalCluster } from '../../tools/local-cluster.js';
import { isAlive, seededBytes, tempDir } from '../helpers/cluster.js';

const chunkSize = 64 * 1024;
const stripe = 3;
const sizes: Array<[string, number]> = [
  ['0 B', 0], ['1 B', 1], ['chunkSize-1', chunkSize - 1], ['chunkSize', chunkSize], ['chunkSize+1', chunkSize + 1],
  ['3 stripes + 7', 3 * stripe * chunkSize + 7],
];

const pathFor = (name: string): string => `/t/${name.replace(/\W+/g, '_')}`;

// Both data paths, and both I/O engines of the storage servers (io_uring, node:fs forced).
describe.each([['framed', 'io_uring'], ['grpc-stream', 'fs']] as const)('files over a local cluster (%s data path, %s I/O)', (transport, ioEngine) => {
  let dir: string;
  let cluster: LocalCluster;
  let fs: FileSystem;
  const written = new Map<string, Buffer>();

  beforeAll(async () => {
    dir = await tempDir(`file-io-${transport}`);
    cluster = await startLocalCluster({
      // One target per chain: the subject here is striping over 6 chains (replication has its own suites).
      dataDir: join(dir, 'data'), storageServers: 3, targetsPerServer: 2, replicas: 1,
      extraArgs: { storageserver: ['--io-engine', ioEngine] },
    });
    fs = await connect(cluster.clusterAddress, { transport });
    await fs.mkdir('/t', { chunkSizeBytes: chunkSize, stripe });
  });

  afterAll(async () => {
    await fs?.close();
    await cluster?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it.each(sizes)('round-trips a file of %s exactly', async (name, size) => {
    const seed = 1000 + size;
    console.log(`${transport} ${name}: data seed ${seed}`);
    const data = seededBytes(seed, size);
    const path = pathFor(name);
    await fs.writeFile(path, data);
    written.set(path, data);
    const back = await fs.readFile(path);
    expect(back.length).toBe(size);
    expect(Buffer.compare(back as Buffer, data)).toBe(0);
    expect((await fs.stat(path)).size).toBe(size);
  });

  it('uses the directory layout: chunks spread over `stripe` chains', async () => {
    const st = await fs.stat(pathFor('3 stripes + 7'));
    expect(st.blksize).toBe(chunkSize);
    const info = await fs.routingInfo();
    expect(info.chains.length).toBe(6);
  });

  it('overwrites the middle of a file', async () => {
    const size = 5 * chunkSize + 123;
    const data = seededBytes(77, size);
    await fs.writeFile('/t/mid', data);
    const patch = seededBytes(78, chunkSize + 10);
    const at = chunkSize - 5;
    const h = await fs.open('/t/mid', 'r+');
    await h.write(patch, 0, patch.length, at);
    await h.close();
    patch.copy(data, at);
    const back = await fs.readFile('/t/mid') as Buffer;
    expect(back.length).toBe(size);
    expect(Buffer.compare(back, data)).toBe(0);
  });

  it('returns short reads past EOF, and 0 at EOF', async () => {
    const data = seededBytes(5, 1000);
    await fs.writeFile('/t/short', data);
    const h = await fs.open('/t/short', 'r');
    const buf = Buffer.alloc(4096, 0xee);
    const r1 = await h.read(buf, 0, 4096, 900);
    expect(r1.bytesRead).toBe(100);
    expect(Buffer.compare(buf.subarray(0, 100), data.subarray(900))).toBe(0);
    expect(buf[100]).toBe(0xee);
    expect((await h.read(buf, 0, 10, 1000)).bytesRead).toBe(0);
    expect((await h.read(buf, 0, 10, 5000)).bytesRead).toBe(0);
    await h.close();
  });

  it('reads sparse regions as zeros', async () => {
    const h = await fs.open('/t/sparse', 'w');
    const tail = seededBytes(9, 10);
    await h.write(tail, 0, 10, 4 * chunkSize);
    await h.close();
    const back = await fs.readFile('/t/sparse') as Buffer;
    expect(back.length).toBe(4 * chunkSize + 10);
    expect(back.subarray(0, 4 * chunkSize).every((b) => b === 0)).toBe(true);
    expect(Buffer.compare(back.subarray(4 * chunkSize), tail)).toBe(0);
  });

  it('keeps every file, directory and byte across a restart of every process', async () => {
    const pids = cluster.nodes.map((n) => n.pid);
    await fs.close();
    await cluster.stop();
    for (const pid of pids) expect(isAlive(pid)).toBe(false);
    cluster = await startLocalCluster({
      // One target per chain: the subject here is striping over 6 chains (replication has its own suites).
      dataDir: join(dir, 'data'), storageServers: 3, targetsPerServer: 2, replicas: 1,
      extraArgs: { storageserver: ['--io-engine', ioEngine] },
    });
    fs = await connect(cluster.clusterAddress, { transport });
    expect((await fs.readdir('/t')).sort()).toEqual([...written.keys(), '/t/mid', '/t/short', '/t/sparse'].map((p) => p.slice(3)).sort());
    for (const [path, data] of written) {
      const back = await fs.readFile(path) as Buffer;
      expect(Buffer.compare(back, data), path).toBe(0);
    }
    // The storage servers came back as the same nodes with the same targets: no new chains.
    expect((await fs.routingInfo()).chains.length).toBe(6);
  });
});
