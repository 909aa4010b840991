// Batch I/O (the idea of 3FS's USRBIO): queue many reads and writes of (handle, buffer, offset,
// length, position), submit them at once, and take completions as they finish, each with its own
// result or error. Reads of all items are planned together: chunk reads that go to one storage
// server share ReadChunks requests, whichever item they belong to; writes run in parallel. Bytes
// in flight stay within the client's bound.
import { flyfsError } from '../common/errors.js';
import { limits } from '../common/limits.js';
import { forEachWithinBudget } from '../common/parallel.js';
import type { FileHandle } from './file-handle.js';
import { readRanges, type FileIoContext, type RangeRead } from './file-io.js';
import { toNodeError, type NodeStyleError } from './node-errors.js';

export interface BatchCompletion {
  /** The item's place in the batch, in the order it was queued. */
  readonly index: number;
  readonly op: 'read' | 'write';
  /** Whatever the caller attached when queueing. */
  readonly tag: unknown;
  /** Bytes read (short at the end of the file) or written; 0 on error. */
  readonly bytes: number;
  readonly error?: NodeStyleError;
}

interface Item { op: 'read' | 'write'; handle: FileHandle; buffer: Uint8Array; offset: number; length: number; position: number; tag: unknown }

export class IoBatch {
  private readonly items: Item[] = [];
  private submitted = false;

  /** @internal Created by FileSystem.batch. */
  constructor(private readonly ctx: FileIoContext) {}

  get size(): number { return this.items.length; }

  read(handle: FileHandle, buffer: Uint8Array, offset = 0, length = buffer.byteLength - offset, position = 0, tag?: unknown): this {
    return this.add({ op: 'read', handle, buffer, offset, length, position, tag });
  }

  write(handle: FileHandle, buffer: Uint8Array, offset = 0, length = buffer.byteLength - offset, position = 0, tag?: unknown): this {
    return this.add({ op: 'write', handle, buffer, offset, length, position, tag });
  }

  private add(item: Item): this {
    if (this.submitted) throw toNodeError(flyfsError('FLYFS_ERR_INVALID_ARGUMENT', 'the batch was submitted already'), 'batch');
    if (this.items.length >= limits.ioBatchItemsMax) throw toNodeError(flyfsError('FLYFS_ERR_LIMIT', `at most ${limits.ioBatchItemsMax} items in one batch`), 'batch');
    this.items.push(item);
    return this;
  }

  /** Starts every item; yields each completion as it finishes. */
  async *submit(): AsyncGenerator<BatchCompletion> {
    if (this.submitted) throw toNodeError(flyfsError('FLYFS_ERR_INVALID_ARGUMENT', 'the batch was submitted already'), 'batch');
    this.submitted = true;
    const queue: BatchCompletion[] = [];
    let wake: (() => void) | undefined;
    const complete = (index: number, result: number | unknown): void => {
      const it = this.items[index]!;
      queue.push(typeof result === 'number'
        ? { index, op: it.op, tag: it.tag, bytes: result }
        : { index, op: it.op, tag: it.tag, bytes: 0, error: asNodeError(result, it) });
      wake?.();
    };
    const reads: RangeRead[] = [];
    const readIndex: number[] = [];
    const writes: number[] = [];
    this.items.forEach((it, i) => {
      if (it.op === 'write') { writes.push(i); return; }
      try {
        const r = it.handle.rangeRead(it.buffer, it.offset, it.length, it.position);
        if (r === null) complete(i, 0);
        else { reads.push(r); readIndex.push(i); }
      } catch (err) {
        complete(i, err);
      }
    });
    const running = Promise.all([
      readRanges(this.ctx, reads, (k, result) => complete(readIndex[k]!, result)),
      runWrites(this.items, writes, this.ctx.inflightBytesMax, complete),
    ]);
    running.catch(() => undefined);
    for (let yielded = 0; yielded < this.items.length; yielded++) {
      while (queue.length === 0) await new Promise<void>((r) => { wake = r; });
      wake = undefined;
      yield queue.shift()!;
    }
    await running;
  }
}

/** Writes the items in parallel, keeping their bytes in flight within `bytesMax` (one always goes). */
function runWrites(items: readonly Item[], order: readonly number[], bytesMax: number, complete: (i: number, r: number | unknown) => void): Promise<void> {
  // Each item's failure is delivered as its completion, so no task rejects.
  return forEachWithinBudget(order.length, { limit: Number.POSITIVE_INFINITY, costMax: bytesMax, cost: (k) => items[order[k]!]!.length }, async (k) => {
    const i = order[k]!;
    const it = items[i]!;
    let result: number | unknown;
    try {
      result = (await it.handle.write(it.buffer, it.offset, it.length, it.position)).bytesWritten;
    } catch (err) {
      result = err;
    }
    complete(i, result);
  });
}

function asNodeError(err: unknown, it: Item): NodeStyleError {
  if (err instanceof Error && 'flyfsCode' in err) return err as NodeStyleError;
  return toNodeError(err, it.op, it.handle.path);
}
