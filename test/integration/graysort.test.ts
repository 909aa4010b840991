// GraySort through flyfs with the CLI a user runs: generate gensort records, sort them as a job
// (shuffle by key range, sort each partition, on worker processes), validate global order and
// that the output holds exactly the input's records; a damaged output fails validation.
// FLYFS_SORT_BYTES sets the size (default 256 MiB in CI; the 2 GiB with =2GiB).
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type FileSystem } from '../../client/index.js';
import { startTestCluster } from '../helpers/cluster.js';

const size = process.env['FLYFS_SORT_BYTES'] ?? '256MiB';

describe('graysort', () => {
  let fs: FileSystem;
  let address: string;
  let cleanup: () => Promise<void>;
  const cli = (args: string[]): Promise<{ code: number | null; out: string; err: string }> => new Promise((resolve) => {
    const p = spawn(process.execPath, ['dist/tools/cli.js', 'sort', ...args, '--cluster', address], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = ''; let err = '';
    p.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    p.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    p.on('close', (code) => resolve({ code, out, err }));
  });

  beforeAll(async () => {
    const c = await startTestCluster('graysort', { metaservers: 1, storageServers: 3, targetsPerServer: 1 });
    cleanup = c.cleanup;
    address = c.cluster.clusterAddress;
    fs = await connect(address);
  }, 60_000);

  afterAll(async () => { await fs?.close(); await cleanup?.(); });

  it(`sorts ${size} of gensort records and validates order and checksum`, async () => {
    const gen = await cli(['gen', '--size', size, '--out', '/sort/in', '--file-size', '32MiB', '--seed', '42']);
    expect(gen.code, gen.err).toBe(0);
    const records = Number(/generated (\d+) records/.exec(gen.out)![1]);
    const run = await cli(['run', '--in', '/sort/in', '--out', '/sort/out', '--job-dir', '/jobs/sort', '--partitions', '8', '--workers', '2']);
    expect(run.code, run.err).toBe(0);
    expect(run.out).toMatch(new RegExp(`sorted ${records} records`));
    const v = await cli(['validate', '--out', '/sort/out', '--in', '/sort/in']);
    expect(v.code, v.out + v.err).toBe(0);
    expect(v.out).toMatch(new RegExp(`records ${records}, checksum [0-9a-f]+, 8 files, order OK`));
    expect(v.out).toMatch(/the same records/);
    // One flipped byte in a key breaks the order or the checksum; a lost record breaks the count.
    const first = (await fs.readdir('/sort/out')).sort()[0]!;
    const h = await fs.open(`/sort/out/${first}`, 'r+');
    const b = Buffer.alloc(1);
    await h.read(b, 0, 1, 1000);
    b[0] = b[0]! ^ 0xff;
    await h.write(b, 0, 1, 1000);
    await h.close();
    const bad = await cli(['validate', '--out', '/sort/out', '--in', '/sort/in']);
    expect(bad.code).toBe(1);
    expect(bad.out).toMatch(/order BROKEN|DIFFERENT records/);
  }, 600_000);

  it('refuses bad sizes and missing arguments clearly', async () => {
    const r = await cli(['gen', '--size', 'lots', '--out', '/x']);
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/bad size 'lots'/);
    const m = await cli(['run', '--in', '/sort/in']);
    expect(m.err).toMatch(/--out is required/);
  });
});
