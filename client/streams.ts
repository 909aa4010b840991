// Node streams over flyfs files, with backpressure: a Readable that reads `highWaterMark` bytes
// at a time from `start` to `end` (inclusive, as node:fs), and a Writable that writes each chunk
// at the next position. Both follow node:fs's defaults (64 KiB reads, 16 KiB writes) and, like
// node:fs, close their handle when they end or are destroyed (autoClose).
import { Readable, Writable } from 'node:stream';
import { flyfsError } from '../common/errors.js';
import type { FileHandle } from './file-handle.js';

export interface ReadStreamOptions { start?: number; end?: number; highWaterMark?: number; autoClose?: boolean; signal?: AbortSignal }
export interface WriteStreamOptions { start?: number; highWaterMark?: number; autoClose?: boolean; signal?: AbortSignal }

const readHighWaterMarkDefault = 64 * 1024;
const writeHighWaterMarkDefault = 16 * 1024;

function checkPosition(name: string, v: number | undefined): void {
  if (v !== undefined && (!Number.isSafeInteger(v) || v < 0)) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `${name} must be a non-negative integer, got ${v}`);
}

/** A Readable over the handle `open` gives (opened when the stream starts). */
export function readStream(open: () => Promise<FileHandle>, o: ReadStreamOptions = {}): Readable {
  checkPosition('start', o.start);
  checkPosition('end', o.end);
  const highWaterMark = o.highWaterMark ?? readHighWaterMarkDefault;
  const last = o.end ?? Number.MAX_SAFE_INTEGER - 1;
  let position = o.start ?? 0;
  let handle: FileHandle | undefined;
  return new Readable({
    highWaterMark,
    ...(o.signal ? { signal: o.signal } : {}),
    construct(cb) { open().then((h) => { handle = h; cb(); }, (err: Error) => cb(err)); },
    read() {
      const n = Math.min(highWaterMark, last - position + 1);
      if (n <= 0 || handle === undefined) { this.push(null); return; }
      handle.read(Buffer.allocUnsafe(n), 0, n, position).then(({ bytesRead, buffer }) => {
        if (bytesRead === 0) { this.push(null); return; }
        position += bytesRead;
        this.push(buffer.subarray(0, bytesRead));
      }, (err: Error) => this.destroy(err));
    },
    destroy(err, cb) {
      if (handle === undefined || o.autoClose === false) { cb(err); return; }
      handle.close().then(() => cb(err), (e: Error) => cb(err ?? e));
    },
  });
}

/** A Writable over the handle `open` gives; each chunk goes at the next position from `start`. */
export function writeStream(open: () => Promise<FileHandle>, o: WriteStreamOptions = {}): Writable {
  checkPosition('start', o.start);
  let position = o.start;
  let handle: FileHandle | undefined;
  const close = (): Promise<void> => (handle === undefined || o.autoClose === false ? Promise.resolve() : handle.close());
  return new Writable({
    highWaterMark: o.highWaterMark ?? writeHighWaterMarkDefault,
    ...(o.signal ? { signal: o.signal } : {}),
    construct(cb) { open().then((h) => { handle = h; cb(); }, (err: Error) => cb(err)); },
    write(chunk: Buffer, _encoding, cb) {
      handle!.write(chunk, 0, chunk.length, position ?? null).then(({ bytesWritten }) => {
        if (position !== undefined) position += bytesWritten;
        cb();
      }, (err: Error) => cb(err));
    },
    final(cb) { close().then(() => { handle = undefined; cb(); }, (err: Error) => cb(err)); },
    destroy(err, cb) { close().then(() => cb(err), (e: Error) => cb(err ?? e)); },
  });
}
