import { once } from 'node:events';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultRegistry } from '../../bench/index.js';
import { quantile, RespClient, RespError, runKvBench, startRedisServer, topKIndices, type KvBenchConfig } from '../../bench/kv.js';

// A tiny configuration: the shape of the output is checked, never the timings. Pages of 8 KiB
// (1 layer × 64 tokens × 128 B) and 32 KiB (4 layers), 256 KiB of each; a gather context of 32 pages.
const tiny: KvBenchConfig = {
  pageSizes: [
    { label: '8 KiB', layout: { layers: 1, pageTokens: 64, latentBytesPerToken: 96, indexerBytesPerToken: 32 } },
    { label: '32 KiB', layout: { layers: 4, pageTokens: 64, latentBytesPerToken: 96, indexerBytesPerToken: 32 } },
  ],
  bytesPerPageSize: 256 * 1024,
  readBatchPages: 8,
  readBatchesInflight: 2,
  redisInflight: 4,
  prefixPages: 10,
  lookups: 5,
  gatherLayout: { layers: 2, pageTokens: 64, latentBytesPerToken: 656, indexerBytesPerToken: 132 },
  contextTokens: 32 * 64,
  topK: 64,
  gatherLayer: 1,
  gathers: 3,
  figureMs: 20_000,
  putMsMax: 20_000,
  redisCommand: 'redis-server',
  installRedis: false,
  seed: 3,
};

const redisBinary = (() => {
  const r = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
})();

/** A server that answers every command with `reply`, one byte per write (every cut a parser can meet). */
async function tricklingServer(reply: Buffer): Promise<{ port: number; close(): void }> {
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    let sent = false;
    socket.on('data', async () => {
      if (sent) return;
      sent = true;
      for (const byte of reply) {
        socket.write(Buffer.of(byte));
        await new Promise((r) => setImmediate(r));
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { port: (server.address() as net.AddressInfo).port, close: () => server.close() };
}

describe('kv benchmark', () => {
  it('is registered', () => {
    expect(defaultRegistry().get('kv')?.defaultSizeBytes).toBe(512 * 1024 * 1024);
  });

  it('picks top-k distinct sorted tokens and nearest-rank quantiles', () => {
    const t = topKIndices(1000, 100, 1);
    expect(new Set(t).size).toBe(100);
    expect([...t]).toEqual([...t].sort((a, b) => a - b));
    expect(Math.min(...t)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...t)).toBeLessThan(1000);
    expect(topKIndices(1000, 100, 1)).toEqual(t);
    expect(topKIndices(50, 50, 2)).toEqual(Int32Array.from({ length: 50 }, (_, i) => i));
    const xs = Array.from({ length: 100 }, (_, i) => 100 - i);
    expect(quantile(xs, 0.5)).toBe(50);
    expect(quantile(xs, 0.99)).toBe(99);
    expect(quantile([7], 0.99)).toBe(7);
  });

  it('parses RESP replies cut at every byte', async () => {
    const value = Buffer.from('a\r\nb\0c');
    const reply = Buffer.concat([
      Buffer.from(`$${value.length}\r\n`), value, Buffer.from('\r\n'),
      Buffer.from('$-1\r\n$0\r\n\r\n+OK\r\n-ERR no\r\n:42\r\n*2\r\n$1\r\nx\r\n*1\r\n:7\r\n'),
    ]);
    const server = await tricklingServer(reply);
    const c = await RespClient.connect(server.port);
    try {
      const replies = Array.from({ length: 7 }, () => c.command(['PING']));
      const [bulk, nil, empty, ok, err, int, arr] = await Promise.all(replies);
      expect(bulk).toEqual(value);
      expect(nil).toBeNull();
      expect(empty).toEqual(Buffer.alloc(0));
      expect(ok).toBe('OK');
      expect(err).toBeInstanceOf(RespError);
      expect((err as RespError).message).toBe('ERR no');
      expect(int).toBe(42);
      expect(arr).toEqual([Buffer.from('x'), [7]]);
    } finally {
      await c.close();
      server.close();
    }
  });

  describe.runIf(redisBinary !== undefined)('against a real redis-server', () => {
    let tmp: string;
    let server: Awaited<ReturnType<typeof startRedisServer>>;
    beforeAll(async () => {
      tmp = await mkdtemp(path.join(os.tmpdir(), 'flyfs-bench-kv-test-'));
      server = await startRedisServer(redisBinary!, tmp);
    });
    afterAll(async () => {
      await server?.stop();
      await rm(tmp, { recursive: true, force: true });
    });

    it('sets and gets binary values, pipelined, in order', async () => {
      const c = await RespClient.connect(server.port);
      try {
        const keys = Array.from({ length: 64 }, (_, i) => Buffer.from([0, 13, 10, i]));
        const values = keys.map((_, i) => Buffer.alloc(i % 2 === 0 ? 10 : 300_000, i));
        await Promise.all(keys.map((k, i) => c.set(k, values[i]!)));
        const got = await Promise.all(keys.map((k) => c.get(k)));
        got.forEach((g, i) => expect(g?.equals(values[i]!)).toBe(true));
        expect(await c.get(Buffer.from('missing'))).toBeNull();
        expect(await c.exists([...keys.slice(0, 10), Buffer.from('missing')])).toBe(10);
        expect(await c.command(['NOSUCHCOMMAND'])).toBeInstanceOf(RespError);
      } finally {
        await c.close();
      }
    });

    it('runs every figure on a tiny config', { timeout: 90_000 }, async () => {
      const lines: string[] = [];
      const figures = await runKvBench({ sizeBytes: tiny.bytesPerPageSize, runs: 2, log: (l) => lines.push(l) }, tiny);
      expect(figures.map((f) => [f.unit, f.name.split(',')[0]])).toEqual([
        ['GB/s', 'kv getPages'], ['GB/s', 'kv getPages'],
        ['ms', 'kv lookupPrefix latency p50'], ['ms', 'kv lookupPrefix latency p99'],
        ['ms', 'kv gatherTokens'], ['ms', 'kv gatherTokens'],
      ]);
      expect(figures[0]!.name).toContain('8 KiB pages (1 layer × 64 tokens × 96+32 B), 32 pages in batches of 8, 2 in flight');
      expect(figures[0]!.baseline).toMatch(/^redis \S+ GET of the same pages, same order, 4 in flight on one connection/);
      expect(figures[2]!.name).toContain('10-page prefixes of 8 KiB pages');
      expect(figures[4]!.baseline).toBe('one contiguous read of the same 41 KiB from one flyfs file');
      expect(figures[5]!.baseline).toMatch(/^getPages of that layer's latent block \(41 KiB\) of each of the ~\d+ pages hit$/);
      for (const f of figures) {
        expect(f.value).toBeGreaterThan(0);
        expect(f.baselineValue).toBeGreaterThan(0);
        expect(f.ratio).toBeCloseTo(f.value / f.baselineValue, 9);
        expect(f.runs).toHaveLength(2);
      }
      expect(lines.filter((l) => /^kv: target (HOLDS|MISSES)/.test(l))).toHaveLength(3);
      expect(lines.some((l) => l.includes('stopped at its'))).toBe(false);
    });
  });

  it('says how to install a missing redis-server, and fails before starting anything', async () => {
    const lines: string[] = [];
    const missing = { ...tiny, redisCommand: redisBinary === undefined ? 'redis-server' : 'flyfs-test-no-such-redis-server' };
    await expect(runKvBench({ sizeBytes: tiny.bytesPerPageSize, runs: 1, log: (l) => lines.push(l) }, missing))
      .rejects.toThrow(/redis-server is missing \(the Redis baseline needs it\): install Debian's redis-server \(as root: apt-get update && apt-get install -y redis-server\)/);
    expect(lines.some((l) => l.includes('cluster up'))).toBe(false);
  });
});
