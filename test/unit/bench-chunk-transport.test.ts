import { describe, expect, it } from 'vitest';
import { defaultRegistry } from '../../bench/index.js';
import { runChunkTransportBench } from '../../bench/chunk-transport.js';

describe('chunk-transport benchmark', () => {
  it('is registered', () => {
    expect(defaultRegistry().get('chunk-transport')?.name).toBe('chunk-transport');
  });

  // A tiny configuration: the shape of the output is checked, never the timings.
  it('measures reads and writes per transport and size against the tcp baseline', { timeout: 120_000 }, async () => {
    const figures = await runChunkTransportBench({ sizeBytes: 0, runs: 1, log: () => undefined }, {
      sizes: [64 * 1024, 256 * 1024], readBytes: 2 << 20, writeBytes: 1 << 20, concurrency: 4, transports: ['framed', 'grpc', 'grpc-stream'],
    });
    expect(figures.map((f) => f.name)).toEqual([
      'framed read 64 KiB', 'framed write 64 KiB', 'grpc read 64 KiB', 'grpc write 64 KiB', 'grpc-stream read 64 KiB', 'grpc-stream write 64 KiB',
      'framed read 256 KiB', 'framed write 256 KiB', 'grpc read 256 KiB', 'grpc write 256 KiB', 'grpc-stream read 256 KiB', 'grpc-stream write 256 KiB',
    ]);
    for (const f of figures) {
      expect(f.value).toBeGreaterThan(0);
      expect(f.baseline).toBe('tcp loopback stream');
      expect(f.ratio).toBeCloseTo(f.value / f.baselineValue, 9);
    }
  });
});
