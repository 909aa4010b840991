import { describe, expect, it } from 'vitest';
import { IoBufferPool } from '../../storageserver/io-buffers.js';

describe('read buffer pool', () => {
  const make = (bytesMax = 1 << 20) => {
    let allocs = 0;
    const pool = new IoBufferPool({ alloc: (n) => { allocs++; return Buffer.allocUnsafe(n); }, classBytesMin: 4096, classBytesMax: 65_536, bytesMax });
    return { pool, allocs: () => allocs };
  };

  it('hands a given-back buffer to the next read of its size class', () => {
    const { pool, allocs } = make();
    const a = pool.take(5000);
    expect(a.length).toBe(8192);
    pool.give(a.subarray(100, 200));
    expect(pool.freeBytesNow).toBe(8192);
    const b = pool.take(6000);
    expect(b).toBe(a);
    expect(pool.freeBytesNow).toBe(0);
    expect(allocs()).toBe(1);
  });

  it('takes back only its own buffers, each once per take', () => {
    const { pool } = make();
    pool.give(Buffer.alloc(4096));
    expect(pool.freeBytesNow).toBe(0);
    const a = pool.take(4096);
    pool.give(a);
    pool.give(a);
    expect(pool.freeBytesNow).toBe(4096);
    expect(pool.take(4096)).toBe(a);
    expect(pool.take(4096)).not.toBe(a);
  });

  it('never pools reads above its largest class, nor keeps more than bytesMax free', () => {
    const { pool } = make(16_384);
    const big = pool.take(100_000);
    expect(big.length).toBe(100_000);
    pool.give(big);
    expect(pool.freeBytesNow).toBe(0);
    const bufs = [pool.take(8192), pool.take(8192), pool.take(8192)];
    for (const b of bufs) pool.give(b);
    expect(pool.freeBytesNow).toBe(16_384);
  });
});
