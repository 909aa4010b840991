// Striped file I/O: a byte range of a file is split into chunk spans, each sent to the head of
// its chain (layout rule in common/layout.ts), many at once within a bound on bytes and chunks
// in flight. Retryable failures refresh the routing info and retry within the deadline.
import { FlyfsError, flyfsError } from '../common/errors.js';
import { limits } from '../common/limits.js';
import { chainOfChunk, chunkSpans, type ChunkSpan, type FileLayout } from '../common/layout.js';
import type { ChunkTransport, StorageEndpoint } from './chunk-transport.js';
import type { RoutingCache, ChainRoute } from './routing.js';

export interface FileIoContext {
  transport: ChunkTransport;
  routing: RoutingCache;
  clientId: string;
  nextRequestId: () => number;
  inflightBytesMax: number;
  deadlineMs: number;
}

/** Runs tasks with at most `chunksMax` tasks and `bytesMax` bytes at once; fails fast on the first error. */
async function runBounded(spans: readonly ChunkSpan[], bytesMax: number, task: (s: ChunkSpan) => Promise<void>): Promise<void> {
  let next = 0;
  let inflightBytes = 0;
  let inflight = 0;
  let failed: unknown;
  await new Promise<void>((resolve, reject) => {
    const pump = (): void => {
      if (failed !== undefined) return;
      while (next < spans.length && inflight < limits.clientInflightChunksMax
        && (inflight === 0 || inflightBytes + spans[next]!.length <= bytesMax)) {
        const s = spans[next++]!;
        inflight++;
        inflightBytes += s.length;
        task(s).then(() => {
          inflight--;
          inflightBytes -= s.length;
          if (next >= spans.length && inflight === 0) resolve();
          else pump();
        }, (err: unknown) => {
          failed = err;
          reject(err);
        });
      }
      if (next >= spans.length && inflight === 0) resolve();
    };
    pump();
  });
}

async function withRoute<T>(ctx: FileIoContext, chainId: number, op: (route: ChainRoute) => Promise<T>): Promise<T> {
  const deadline = Date.now() + ctx.deadlineMs;
  let lastErr: FlyfsError | undefined;
  for (let attempt = 0; attempt <= limits.rpcRetriesMax; attempt++) {
    try {
      return await op(await ctx.routing.route(chainId));
    } catch (err) {
      const fe = err instanceof FlyfsError ? err : flyfsError('FLYFS_ERR_INTERNAL', String(err), { cause: err });
      if (!fe.retryable || Date.now() >= deadline) throw fe;
      lastErr = fe;
      await new Promise((r) => setTimeout(r, Math.min(25 * 2 ** attempt, 1000)));
      await ctx.routing.refresh().catch(() => undefined);
    }
  }
  throw lastErr ?? flyfsError('FLYFS_ERR_TIMEOUT');
}

/**
 * Reads from one serving replica, spreading chunks over them (by chunk index); a replica whose
 * copy is damaged (FLYFS_ERR_CHECKSUM) or that cannot answer now is skipped for the next one.
 */
async function readAnyReplica<T>(route: ChainRoute, index: number, read: (to: StorageEndpoint) => Promise<T>): Promise<T> {
  const n = route.readers.length;
  let last: unknown;
  for (let k = 0; k < n; k++) {
    try {
      return await read(route.readers[(index + k) % n]!);
    } catch (err) {
      last = err;
      const fe = err instanceof FlyfsError ? err : undefined;
      if (fe === undefined || !(fe.code === 'FLYFS_ERR_CHECKSUM' || fe.retryable)) throw err;
    }
  }
  throw last;
}

export async function writeRange(ctx: FileIoContext, layout: FileLayout, inodeId: number, position: number, data: Uint8Array): Promise<void> {
  const spans = chunkSpans(layout.chunkSizeBytes, position, data.byteLength);
  await runBounded(spans, ctx.inflightBytesMax, async (s) => {
    const chainId = chainOfChunk(layout, s.index);
    const requestId = ctx.nextRequestId();
    const piece = data.subarray(s.rangeOffset, s.rangeOffset + s.length);
    await withRoute(ctx, chainId, (route) => ctx.transport.writeChunk(route.endpoint, {
      chainId, chainVersion: route.chainVersion, inodeId, index: s.index, offset: s.chunkOffset,
      data: piece, chunkSizeBytes: layout.chunkSizeBytes, clientId: ctx.clientId, requestId,
    }));
  });
}

/**
 * Reads [position, position + length) into `into` (which is at least `length` long), clipped at
 * `fileLength`. Chunks never written, or shorter than their share, read as zeros (holes).
 * Returns the bytes read.
 */
export async function readRange(ctx: FileIoContext, layout: FileLayout, inodeId: number, fileLength: number,
  position: number, into: Uint8Array, length: number): Promise<number> {
  const n = Math.max(0, Math.min(length, fileLength - position));
  if (n === 0) return 0;
  const spans = chunkSpans(layout.chunkSizeBytes, position, n);
  await runBounded(spans, ctx.inflightBytesMax, async (s) => {
    const chainId = chainOfChunk(layout, s.index);
    const r = await withRoute(ctx, chainId, (route) => readAnyReplica(route, s.index, (to) => ctx.transport.readChunk(to, {
      chainId, chainVersion: route.chainVersion, inodeId, index: s.index, offset: s.chunkOffset, length: s.length,
    })));
    const got = Math.min(r.data.byteLength, s.length);
    into.set(r.data.subarray(0, got), s.rangeOffset);
    if (got < s.length) into.fill(0, s.rangeOffset + got, s.rangeOffset + s.length);
  });
  return n;
}
