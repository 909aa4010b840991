// Batch I/O through the SDK: many reads and writes of several files submitted at once, each
// completion delivered once with its own result or error, reads of all items sharing requests.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type BatchCompletion, type FileSystem } from '../../client/index.js';
import { seededBytes, startTestCluster } from '../helpers/cluster.js';

const chunk = 65_536;

describe('batch I/O', () => {
  let fs: FileSystem;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    const c = await startTestCluster('batch-io', { metaservers: 1, storageServers: 3, targetsPerServer: 1 });
    cleanup = c.cleanup;
    fs = await connect(c.cluster.clusterAddress);
    await fs.mkdir('/b', { chunkSizeBytes: chunk, stripe: 1 });
  });

  afterAll(async () => { await fs?.close(); await cleanup?.(); });

  it('answers every item once, in completion order, with per-item results and errors', async () => {
    const a = seededBytes(1, 5 * chunk + 123);
    const b = seededBytes(2, 2 * chunk);
    await fs.writeFile('/b/a', a);
    await fs.writeFile('/b/b', b);
    const ha = await fs.open('/b/a', 'r');
    const hb = await fs.open('/b/b', 'r+');
    const hw = await fs.open('/b/w', 'w');
    const batch = fs.batch();
    const want = new Map<number, { into: Buffer; expect: Buffer }>();
    // 30 reads of both files at scattered offsets, some across chunk boundaries, some past EOF.
    for (let i = 0; i < 30; i++) {
      const src = i % 2 === 0 ? a : b;
      const position = (i * 20_011) % (src.length + 5000);
      const length = 1 + ((i * 7919) % (chunk + 3000));
      const into = Buffer.alloc(length);
      batch.read(i % 2 === 0 ? ha : hb, into, 0, length, position, `r${i}`);
      want.set(i, { into, expect: src.subarray(position, position + length) });
    }
    const w = seededBytes(3, 3 * chunk);
    for (let i = 0; i < 3; i++) batch.write(hw, w, i * chunk, chunk, i * chunk, `w${i}`);
    batch.write(ha, Buffer.from('x'), 0, 1, 0, 'refused');      // a read-only handle
    batch.read(hw, Buffer.alloc(10), 0, 10, 0, 'refused-read'); // a write-only handle
    expect(batch.size).toBe(35);

    const seen: BatchCompletion[] = [];
    for await (const c of batch.submit()) seen.push(c);
    expect(seen.map((c) => c.index).sort((x, y) => x - y)).toEqual([...Array(35).keys()]);
    for (const [i, { into, expect: e }] of want) {
      const c = seen.find((s) => s.index === i)!;
      expect(c.error, `read ${i}`).toBeUndefined();
      expect(c.tag).toBe(`r${i}`);
      expect(c.bytes, `read ${i}`).toBe(e.length);
      expect(Buffer.compare(into.subarray(0, e.length), e), `read ${i}`).toBe(0);
    }
    for (let i = 0; i < 3; i++) expect(seen.find((s) => s.tag === `w${i}`)).toMatchObject({ op: 'write', bytes: chunk });
    expect(seen.find((s) => s.tag === 'refused')?.error?.code).toBe('EBADF');
    expect(seen.find((s) => s.tag === 'refused-read')?.error?.code).toBe('EBADF');
    await hw.close();
    await ha.close();
    await hb.close();
    expect(Buffer.compare(await fs.readFile('/b/w') as Buffer, w)).toBe(0);
    // A batch is submitted once.
    await expect((async () => { for await (const _ of batch.submit()) { /* none */ } })()).rejects.toMatchObject({ code: 'EINVAL' });
  });
});
