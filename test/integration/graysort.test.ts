// GraySort through flyfs with the CLI a user runs: generate gensort records, sort them as a job
// (shuffle by key range, sort each partition, on worker processes), validate global order and
// that the output holds exactly the input's records; a damaged output fails validation (on a
// small sort).
// FLYFS_SORT_BYTES sets the size (default: the 2 GiB). The cluster keeps one replica per
// chain (3 storage servers, 3 chains of 1): the job moves the data through the chains three
// times (gen, phase 1, phase 2), and at 3 replicas those writes alone would take minutes on CI's
// 2 cores. Replication is the data path's business, tested elsewhere; the benchmark (bench/sort.ts)
// runs chains of 3.
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type FileSystem } from '../../client/index.js';
import { startTestCluster } from '../helpers/cluster.js';

const size = process.env['FLYFS_SORT_BYTES'] ?? '2GiB';

describe('graysort', () => {
  let fs: FileSystem;
  let address: string;
  let cleanup: () => Promise<void>;
  const cli = (args: string[]): Promise<{ code: number | null; out: string; err: string }> => new Promise((resolve) => {
    const t0 = Date.now();
    const p = spawn(process.execPath, ['dist/tools/cli.js', 'sort', ...args, '--cluster', address], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = ''; let err = '';
    p.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    p.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    p.on('close', (code) => { process.stderr.write(`graysort: sort ${args[0]} ${((Date.now() - t0) / 1000).toFixed(1)} s\n`); resolve({ code, out, err }); });
  });

  beforeAll(async () => {
    const c = await startTestCluster('graysort', { metaservers: 1, storageServers: 3, targetsPerServer: 1, replicas: 1 });
    cleanup = c.cleanup;
    address = c.cluster.clusterAddress;
    fs = await connect(address);
  }, 60_000);

  afterAll(async () => { await fs?.close(); await cleanup?.(); });

  const sortJob = async (dir: string, sizeText: string, fileSize: string, partitions: number): Promise<number> => {
    const gen = await cli(['gen', '--size', sizeText, '--out', `${dir}/in`, '--file-size', fileSize, '--seed', '42']);
    expect(gen.code, gen.err).toBe(0);
    const records = Number(/generated (\d+) records/.exec(gen.out)![1]);
    const run = await cli(['run', '--in', `${dir}/in`, '--out', `${dir}/out`, '--job-dir', `${dir}/job`, '--partitions', String(partitions), '--workers', '2']);
    expect(run.code, run.err).toBe(0);
    expect(run.out).toMatch(new RegExp(`sorted ${records} records`));
    return records;
  };
  const validate = (dir: string): ReturnType<typeof cli> => cli(['validate', '--out', `${dir}/out`, '--in', `${dir}/in`]);

  it(`sorts ${size} of gensort records and validates order and checksum`, async () => {
    const records = await sortJob('/sort', size, '32MiB', 8);
    const v = await validate('/sort');
    expect(v.code, v.out + v.err).toBe(0);
    expect(v.out).toMatch(new RegExp(`records ${records}, checksum [0-9a-f]+, 8 files, order OK`));
    expect(v.out).toMatch(/the same records/);
  }, 600_000);

  // On a small sort, so that the two failed validations do not read gigabytes again: what they
  // catch does not depend on the size.
  it('a flipped key byte breaks the order; a flipped payload byte, the checksum', async () => {
    const records = await sortJob('/small', '4MiB', '1MiB', 4);
    expect((await validate('/small')).code).toBe(0);
    const first = `/small/out/${(await fs.readdir('/small/out')).sort()[0]!}`;
    const flip = async (at: number): Promise<void> => {
      const h = await fs.open(first, 'r+');
      const b = Buffer.alloc(1);
      await h.read(b, 0, 1, at);
      b[0] = b[0]! ^ 0xff;
      await h.write(b, 0, 1, at);
      await h.close();
    };
    // Record 10's first key byte: keys in partition 0 of 4 start below 0x40, so it now sorts last.
    await flip(1000);
    const badOrder = await validate('/small');
    expect(badOrder.code).toBe(1);
    expect(badOrder.out).toMatch(/order BROKEN at part-00000\.gensort record 11/);
    await flip(1000);
    // A payload byte: the order holds, the records are not the input's.
    await flip(1050);
    const badSum = await validate('/small');
    expect(badSum.code).toBe(1);
    expect(badSum.out).toMatch(new RegExp(`records ${records}, checksum [0-9a-f]+, 4 files, order OK`));
    expect(badSum.out).toMatch(/DIFFERENT records/);
  }, 120_000);

  it('refuses bad sizes and missing arguments clearly', async () => {
    const r = await cli(['gen', '--size', 'lots', '--out', '/x']);
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/bad size 'lots'/);
    const m = await cli(['run', '--in', '/sort/in']);
    expect(m.err).toMatch(/--out is required/);
  });
});
