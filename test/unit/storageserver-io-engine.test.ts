// The storage server's I/O engines through their one interface: the native io_uring ring and the
// node:fs fallback must behave the same (bytes moved, short reads at EOF, errno errors).
import fs from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIoEngine, ioEngineLimits, loadAddon, oDirect, type IoEngine, type IoEngineKind } from '../../storageserver/io-engine.js';

const { O_RDWR, O_RDONLY, O_CREAT, O_TRUNC } = fs.constants;

function pattern(seed: number, length: number): Buffer {
  const b = Buffer.alloc(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; b[i] = x & 0xff; }
  return b;
}

async function rejection(p: Promise<unknown>): Promise<NodeJS.ErrnoException> {
  try { await p; } catch (err) { return err as NodeJS.ErrnoException; }
  throw new Error('expected a rejection');
}

describe('io engine selection', () => {
  it('finds the addon built by npm install, and io_uring on this kernel', () => {
    expect(loadAddon().error).toBeUndefined();
    const e = createIoEngine('auto');
    expect(e.kind).toBe('io_uring');
    expect(e.fallbackReason).toBeUndefined();
    void e.shutdown();
  });

  it('gives the fs engine when it is forced', () => {
    const e = createIoEngine('fs');
    expect(e.kind).toBe('fs');
    void e.shutdown();
  });
});

describe.each<IoEngineKind>(['io_uring', 'fs'])('%s engine', (kind) => {
  let e: IoEngine;
  let dir: string;

  beforeAll(async () => {
    e = createIoEngine(kind);
    expect(e.kind).toBe(kind);
    dir = await mkdtemp(path.join(os.tmpdir(), `flyfs-io-${kind}-`));
  });

  afterAll(async () => {
    await e.shutdown();
    await rm(dir, { recursive: true, force: true });
  });

  it('writes and reads back aligned buffers with O_DIRECT, and syncs', async () => {
    const file = path.join(dir, 'direct');
    const fd = await e.open(file, O_RDWR | O_CREAT | O_TRUNC | oDirect, 0o600);
    const bytes = 256 * 1024;
    const out = e.allocAligned(bytes)!;
    expect(out.length).toBe(bytes);
    pattern(1, bytes).copy(out);
    expect(await e.write(fd, out, 0, bytes, 0)).toBe(bytes);
    await e.sync(fd, true);
    await e.sync(fd, false);
    const back = e.allocAligned(bytes)!;
    expect(await e.read(fd, back, 0, bytes, 0)).toBe(bytes);
    expect(back.equals(out)).toBe(true);
    // A middle block, read alone at its offset.
    const block = e.allocAligned(4096)!;
    expect(await e.read(fd, block, 0, 4096, 8 * 4096)).toBe(4096);
    expect(block.equals(out.subarray(8 * 4096, 9 * 4096))).toBe(true);
    await e.close(fd);
    expect((await readFile(file)).equals(out)).toBe(true);
  });

  it('moves unaligned ranges of ordinary buffers without O_DIRECT', async () => {
    const file = path.join(dir, 'buffered');
    const fd = await e.open(file, O_RDWR | O_CREAT | O_TRUNC, 0o600);
    const data = pattern(2, 10_007);
    // From the middle of a bigger buffer, to an odd file offset.
    const host = Buffer.concat([Buffer.alloc(13), data, Buffer.alloc(5)]);
    expect(await e.write(fd, host, 13, data.length, 3)).toBe(data.length);
    const back = Buffer.alloc(data.length + 20);
    expect(await e.read(fd, back, 7, data.length, 3)).toBe(data.length);
    expect(back.subarray(7, 7 + data.length).equals(data)).toBe(true);
    await e.close(fd);
    const onDisk = await readFile(file);
    expect(onDisk.length).toBe(3 + data.length);
    expect(onDisk.subarray(3).equals(data)).toBe(true);
  });

  it('reads short at the end of a file, and nothing past it', async () => {
    const file = path.join(dir, 'short');
    const data = pattern(3, 5000);
    await writeFile(file, data);
    const fd = await e.open(file, O_RDONLY);
    const buf = Buffer.alloc(8192);
    expect(await e.read(fd, buf, 0, 8192, 4096)).toBe(5000 - 4096);
    expect(buf.subarray(0, 5000 - 4096).equals(data.subarray(4096))).toBe(true);
    expect(await e.read(fd, buf, 0, 8192, 5000)).toBe(0);
    expect(await e.read(fd, buf, 0, 8192, 1 << 30)).toBe(0);
    await e.close(fd);
  });

  it('fails with errno codes: missing file, closed descriptor, wrong mode, misaligned O_DIRECT', async () => {
    const missing = await rejection(e.open(path.join(dir, 'no', 'such'), O_RDONLY));
    expect(missing.code).toBe('ENOENT');
    expect(missing.errno).toBe(-2);
    expect(missing.syscall).toBe('open');

    const file = path.join(dir, 'errors');
    await writeFile(file, pattern(4, 8192));
    const ro = await e.open(file, O_RDONLY);
    expect((await rejection(e.write(ro, Buffer.alloc(10), 0, 10, 0))).code).toBe('EBADF');
    await e.close(ro);
    expect((await rejection(e.read(ro, Buffer.alloc(10), 0, 10, 0))).code).toBe('EBADF');
    expect((await rejection(e.close(ro))).code).toBe('EBADF');

    const direct = await e.open(file, O_RDONLY | oDirect);
    const aligned = e.allocAligned(8192)!;
    // One byte past an aligned address, and an unaligned length.
    expect((await rejection(e.read(direct, aligned.subarray(1), 0, 4096, 0))).code).toBe('EINVAL');
    expect((await rejection(e.read(direct, aligned, 0, 100, 0))).code).toBe('EINVAL');
    await e.close(direct);

    expect(() => e.read(0, Buffer.alloc(4), 2, 4, 0)).toThrow(RangeError);
    expect(() => e.read(0, Buffer.alloc(4), 0, 4, -1)).toThrow(RangeError);
  });

  it('keeps many more requests in flight than the ring has entries, each answered right', async () => {
    const file = path.join(dir, 'many');
    const blocks = 512;
    const data = pattern(5, blocks * 4096);
    await writeFile(file, data);
    const fd = await e.open(file, O_RDONLY);
    const count = ioEngineLimits.ringEntries * 12;
    const reads = Array.from({ length: count }, async (_, i) => {
      const block = (i * 7919) % blocks;
      const buf = Buffer.alloc(4096);
      const n = await e.read(fd, buf, 0, 4096, block * 4096);
      return n === 4096 && buf.equals(data.subarray(block * 4096, (block + 1) * 4096));
    });
    // Writes and syncs mixed in, on another file.
    const wfd = await e.open(path.join(dir, 'many-out'), O_RDWR | O_CREAT | O_TRUNC, 0o600);
    const writes = Array.from({ length: 300 }, (_, i) => e.write(wfd, pattern(100 + i, 1000), 0, 1000, i * 1000));
    const answers = await Promise.all(reads);
    expect(answers.every(Boolean)).toBe(true);
    expect(await Promise.all(writes)).toEqual(new Array(300).fill(1000));
    await e.sync(wfd, true);
    expect(e.inflight()).toBe(0);
    await e.close(fd);
    await e.close(wfd);
    const written = await readFile(path.join(dir, 'many-out'));
    for (let i = 0; i < 300; i++) expect(written.subarray(i * 1000, (i + 1) * 1000).equals(pattern(100 + i, 1000))).toBe(true);
  });
});
