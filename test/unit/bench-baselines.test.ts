import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fsReadMs, fsWriteFsyncMs, pieces, tcpLoopbackStreamMs } from '../../bench/baselines.js';

describe('pieces', () => {
  it('repeats the pattern, cut short at the end, in pieces no larger than asked', () => {
    const pattern = Uint8Array.from([1, 2, 3, 4, 5]);
    const out = [...pieces({ totalBytes: 12, pattern }, 3)];
    expect(out.every((p) => p.length <= 3)).toBe(true);
    expect(Buffer.concat(out)).toEqual(Buffer.from([1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2]));
  });
});

describe('baselines', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'flyfs-bench-baselines-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('streams every byte over loopback TCP and times it', async () => {
    const source = { totalBytes: 9 * 1024 * 1024 + 17, pattern: randomBytes(3 * 1024 * 1024) };
    const ms = await tcpLoopbackStreamMs(source);
    expect(ms).toBeGreaterThan(0);
  });

  it('writes the same bytes to a local file with fsync, then reads them back', async () => {
    const pattern = randomBytes(5 * 1024 * 1024);
    const totalBytes = 11 * 1024 * 1024 + 3;
    const file = path.join(dir, 'baseline.bin');
    expect(await fsWriteFsyncMs(file, { totalBytes, pattern })).toBeGreaterThan(0);
    const written = await readFile(file);
    expect(written.equals(Buffer.concat([...pieces({ totalBytes, pattern }, 1 << 20)]))).toBe(true);
    expect(await fsReadMs(file, totalBytes)).toBeGreaterThan(0);
    await expect(fsReadMs(file, totalBytes + 1)).rejects.toThrow(/file ended/);
  });
});
