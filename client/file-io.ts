// Striped file I/O: a byte range of a file is split into chunk spans, each sent to the head of
// its chain (layout rule in common/layout.ts), many at once within a bound on bytes and chunks
// in flight. Retryable failures refresh the routing info and retry within the deadline.
import { FlyfsError, flyfsError } from '../common/errors.js';
import { limits } from '../common/limits.js';
import { forEachWithinBudget } from '../common/parallel.js';
import { chainOfChunk, chunkSpans, type ChunkSpan, type FileLayout } from '../common/layout.js';
import type { ChunkTransport, ReadChunkArgs, StorageEndpoint } from './chunk-transport.js';
import type { RoutingCache, ChainRoute } from './routing.js';

export interface FileIoContext {
  transport: ChunkTransport;
  routing: RoutingCache;
  clientId: string;
  nextRequestId: () => number;
  inflightBytesMax: number;
  deadlineMs: number;
}

/** Runs tasks with at most clientInflightChunksMax tasks and `bytesMax` bytes at once; fails fast on the first error. */
function runBounded<T extends { readonly length: number }>(spans: readonly T[], bytesMax: number, task: (s: T) => Promise<void>): Promise<void> {
  return forEachWithinBudget(spans.length, { limit: limits.clientInflightChunksMax, costMax: bytesMax, cost: (k) => spans[k]!.length }, (k) => task(spans[k]!));
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

/** One range read: [position, position + length) of a file into `into`, clipped at `fileLength`. */
export interface RangeRead {
  readonly layout: FileLayout;
  readonly inodeId: number;
  readonly fileLength: number;
  readonly position: number;
  readonly into: Uint8Array;
  readonly length: number;
}

/**
 * Reads [position, position + length) into `into` (which is at least `length` long), clipped at
 * `fileLength`. Chunks never written, or shorter than their share, read as zeros (holes).
 * Returns the bytes read.
 */
export async function readRange(ctx: FileIoContext, layout: FileLayout, inodeId: number, fileLength: number,
  position: number, into: Uint8Array, length: number): Promise<number> {
  let out = 0 as number | Error;
  await readRanges(ctx, [{ layout, inodeId, fileLength, position, into, length }], (_i, r) => { out = r; });
  if (out instanceof Error) throw out;
  return out;
}

/**
 * Reads many ranges (of one or many files) at once: their chunk reads that go to one storage
 * server travel in one request (ReadChunks) where the transport has it, within the bytes-in-
 * flight bound; a chunk read that fails inside a batch is retried alone (other replicas, fresh
 * routing). `done(i, bytes | error)` is called for each range as soon as all of its chunks are in.
 */
export async function readRanges(ctx: FileIoContext, reads: readonly RangeRead[], done: (index: number, result: number | Error) => void): Promise<void> {
  interface Span extends ChunkSpan { readonly req: number }
  const left: number[] = [];
  const failed: (Error | undefined)[] = [];
  const sizes: number[] = [];
  const spans: Span[] = [];
  reads.forEach((r, i) => {
    const n = Math.max(0, Math.min(r.length, r.fileLength - r.position));
    sizes.push(n);
    const mine = n === 0 ? [] : chunkSpans(r.layout.chunkSizeBytes, r.position, n);
    left.push(mine.length);
    failed.push(undefined);
    for (const s of mine) spans.push({ ...s, req: i });
  });
  reads.forEach((_r, i) => { if (left[i] === 0) done(i, 0); });
  const finish = (s: Span, err?: unknown): void => {
    if (err !== undefined && failed[s.req] === undefined) failed[s.req] = err instanceof Error ? err : new Error(String(err));
    if (--left[s.req]! === 0) done(s.req, failed[s.req] ?? sizes[s.req]!);
  };
  /** Where span s's bytes belong: transports that can, receive them straight there. */
  const dest = (s: Span): Uint8Array => reads[s.req]!.into.subarray(s.rangeOffset, s.rangeOffset + s.length);
  const place = (s: Span, data: Uint8Array): void => {
    const into = reads[s.req]!.into;
    const got = Math.min(data.byteLength, s.length);
    const inPlace = data.buffer === into.buffer && data.byteOffset === into.byteOffset + s.rangeOffset;
    if (!inPlace) into.set(data.subarray(0, got), s.rangeOffset);
    if (got < s.length) into.fill(0, s.rangeOffset + got, s.rangeOffset + s.length);
  };
  const chainOf = (s: Span): number => chainOfChunk(reads[s.req]!.layout, s.index);
  const argsOf = (s: Span, route: ChainRoute): ReadChunkArgs => ({
    chainId: route.chainId, chainVersion: route.chainVersion, inodeId: reads[s.req]!.inodeId, index: s.index, offset: s.chunkOffset, length: s.length,
  });
  const readOne = async (s: Span): Promise<void> => {
    try {
      const r = await withRoute(ctx, chainOf(s), (route) => readAnyReplica(route, s.index, (to) => ctx.transport.readChunk(to, argsOf(s, route), dest(s))));
      place(s, r.data);
      finish(s);
    } catch (err) {
      finish(s, err);
    }
  };
  const batchRead = ctx.transport.readChunks?.bind(ctx.transport);
  if (batchRead === undefined || spans.length === 1) {
    await runBounded(spans, ctx.inflightBytesMax, readOne);
    return;
  }
  // Group by the replica that serves each chunk first; cut batches at the request's bounds.
  interface Batch { to: StorageEndpoint; items: { span: Span; args: ReadChunkArgs }[]; length: number }
  const open = new Map<string, Batch>();
  const batches: Batch[] = [];
  // Chunks without a route now go alone, through the retrying path.
  const alone: Span[] = [];
  const batchBytesMax = Math.min(limits.readBatchBytesMax, ctx.inflightBytesMax);
  for (const s of spans) {
    const route = await ctx.routing.route(chainOf(s)).catch(() => undefined);
    const to = route?.readers[s.index % route.readers.length];
    if (route === undefined || to === undefined) { alone.push(s); continue; }
    let b = open.get(to.dataAddress);
    if (b === undefined || b.items.length >= limits.readBatchChunksMax || b.length + s.length > batchBytesMax) {
      b = { to, items: [], length: 0 };
      open.set(to.dataAddress, b);
      batches.push(b);
    }
    b.items.push({ span: s, args: argsOf(s, route) });
    b.length += s.length;
  }
  await runBounded(batches, ctx.inflightBytesMax, async (b) => {
    const results = await batchRead(b.to, b.items.map((i) => i.args), b.items.map((i) => dest(i.span))).catch(() => undefined);
    await Promise.all(b.items.map(async (item, k) => {
      const r = results?.[k];
      if (r !== undefined && r.ok) { place(item.span, r.data); finish(item.span); } else await readOne(item.span);
    }));
  });
  await runBounded(alone, ctx.inflightBytesMax, readOne);
}
