// FileHandle, following node:fs/promises's: read, write, stat, truncate, sync, chmod, utimes, close
// (and readFile/writeFile on the handle). A write handle holds a write session at the metaserver;
// sync and close report the end of what it wrote, and the file's length becomes at least that
// (close-to-open consistency; writers to different ranges end with the exact length).
import { flyfsError } from '../common/errors.js';
import { validateRange } from '../common/layout.js';
import { readRange, writeRange, type FileIoContext, type RangeRead } from './file-io.js';
import type { InodeAttrs, MetadataClient } from './metadata-client.js';
import { modeOf, timesChange, type TimeLike } from './node-args.js';
import { abortable, nodeCall } from './node-errors.js';
import { FlyfsStats } from './stats.js';
import type { Readable, Writable } from 'node:stream';
import { readStream, writeStream, type ReadStreamOptions, type WriteStreamOptions } from './streams.js';

export interface HandleMode { readable: boolean; writable: boolean; append: boolean }

export interface ReadResult<T extends Uint8Array> { bytesRead: number; buffer: T }
export interface WriteResult<T> { bytesWritten: number; buffer: T }

export class FileHandle {
  private attrs: InodeAttrs;
  private closed = false;
  /** The file's length as this handle sees it: the opened length plus what it wrote since. */
  private length: number;
  /** The end of what this handle wrote and has not yet reported; undefined while it wrote nothing. */
  private writtenEnd: number | undefined;
  /** Position for reads and writes called without one. */
  private position = 0;
  private pending = new Set<Promise<unknown>>();

  /** @internal Created by FileSystem.open. */
  constructor(
    private readonly io: FileIoContext,
    private readonly meta: MetadataClient,
    readonly path: string,
    attrs: InodeAttrs,
    private readonly sessionId: number,
    private readonly mode: HandleMode,
  ) {
    this.attrs = attrs;
    this.length = attrs.length;
  }

  /** The inode number (Node's handle has an fd; flyfs hands out the inode). */
  get fd(): number { return this.attrs.inodeId; }

  private checkOpen(syscall: string): void {
    if (this.closed) throw flyfsError('FLYFS_ERR_BAD_HANDLE', `${syscall} on a closed handle`, { path: this.path });
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.pending.add(p);
    p.finally(() => this.pending.delete(p)).catch(() => undefined);
    return p;
  }

  /** read(buffer, offset?, length?, position?) or read({ buffer, offset, length, position }). */
  read<T extends Uint8Array>(buffer: T, offset?: number | null, length?: number | null, position?: number | null): Promise<ReadResult<T>>;
  read<T extends Uint8Array>(options: { buffer: T; offset?: number; length?: number; position?: number | null }): Promise<ReadResult<T>>;
  read(): Promise<ReadResult<Buffer>>;
  read<T extends Uint8Array>(a?: T | { buffer: T; offset?: number; length?: number; position?: number | null },
    offset?: number | null, length?: number | null, position?: number | null): Promise<ReadResult<T>> {
    let buffer: T;
    if (a === undefined) {
      buffer = Buffer.alloc(16384) as unknown as T;
    } else if (a instanceof Uint8Array) {
      buffer = a;
    } else {
      buffer = a.buffer; offset = a.offset; length = a.length; position = a.position;
    }
    return nodeCall('read', this.path, () => this.track(this.doRead(buffer, offset ?? 0, length ?? buffer.byteLength - (offset ?? 0), position)));
  }

  private async doRead<T extends Uint8Array>(buffer: T, offset: number, length: number, position: number | null | undefined): Promise<ReadResult<T>> {
    this.checkOpen('read');
    if (!this.mode.readable) throw flyfsError('FLYFS_ERR_BAD_HANDLE', 'handle is not open for reading', { path: this.path });
    const pos = position ?? this.position;
    validateRange(pos, length, this.path);
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + length > buffer.byteLength) {
      throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `offset ${offset} + length ${length} outside a buffer of ${buffer.byteLength}`, { path: this.path });
    }
    const layout = this.attrs.layout;
    const into = buffer.subarray(offset, offset + length);
    const bytesRead = layout ? await readRange(this.io, layout, this.attrs.inodeId, this.length, pos, into, length) : 0;
    if (position === null || position === undefined) this.position = pos + bytesRead;
    return { bytesRead, buffer };
  }

  /** write(buffer, offset?, length?, position?) or write(string, position?, encoding?). */
  write<T extends Uint8Array>(buffer: T, offset?: number | null, length?: number | null, position?: number | null): Promise<WriteResult<T>>;
  write(data: string, position?: number | null, encoding?: BufferEncoding): Promise<WriteResult<string>>;
  write(data: Uint8Array | string, a?: number | null, b?: number | null | BufferEncoding, c?: number | null): Promise<WriteResult<Uint8Array | string>> {
    if (typeof data === 'string') {
      const bytes = Buffer.from(data, (typeof b === 'string' ? b : 'utf8'));
      return nodeCall('write', this.path, () => this.track(this.doWrite(bytes, 0, bytes.byteLength, a)))
        .then((r) => ({ bytesWritten: r.bytesWritten, buffer: data }));
    }
    const offset = a ?? 0;
    const length = typeof b === 'number' ? b : data.byteLength - offset;
    return nodeCall('write', this.path, () => this.track(this.doWrite(data, offset, length, c)));
  }

  private async doWrite<T extends Uint8Array>(buffer: T, offset: number, length: number, position: number | null | undefined): Promise<WriteResult<T>> {
    this.checkOpen('write');
    if (!this.mode.writable) throw flyfsError('FLYFS_ERR_BAD_HANDLE', 'handle is not open for writing', { path: this.path });
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0 || offset + length > buffer.byteLength) {
      throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `offset ${offset} + length ${length} outside a buffer of ${buffer.byteLength}`, { path: this.path });
    }
    const pos = this.mode.append ? this.length : (position ?? this.position);
    validateRange(pos, length, this.path);
    const layout = this.attrs.layout;
    if (!layout) throw flyfsError('FLYFS_ERR_INTERNAL', 'file has no layout', { path: this.path });
    await writeRange(this.io, layout, this.attrs.inodeId, pos, buffer.subarray(offset, offset + length));
    this.length = Math.max(this.length, pos + length);
    this.writtenEnd = Math.max(this.writtenEnd ?? 0, pos + length);
    if (position === null || position === undefined || this.mode.append) this.position = pos + length;
    return { bytesWritten: length, buffer };
  }

  /** @internal For IoBatch: the range read `read(buffer, offset, length, position)` would do
   * (validated now; null for a file without data yet). */
  rangeRead(buffer: Uint8Array, offset: number, length: number, position: number): RangeRead | null {
    this.checkOpen('read');
    if (!this.mode.readable) throw flyfsError('FLYFS_ERR_BAD_HANDLE', 'handle is not open for reading', { path: this.path });
    validateRange(position, length, this.path);
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + length > buffer.byteLength) {
      throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `offset ${offset} + length ${length} outside a buffer of ${buffer.byteLength}`, { path: this.path });
    }
    const layout = this.attrs.layout;
    if (!layout) return null;
    return { layout, inodeId: this.attrs.inodeId, fileLength: this.length, position, into: buffer.subarray(offset, offset + length), length };
  }

  /** Reads into each buffer in turn from `position` (or the handle's position); short at EOF. */
  readv<T extends readonly Uint8Array[]>(buffers: T, position?: number | null): Promise<{ bytesRead: number; buffers: T }> {
    return nodeCall('read', this.path, () => this.track((async () => {
      this.checkOpen('read');
      let pos = position ?? this.position;
      const reads: Promise<ReadResult<Uint8Array>>[] = [];
      for (const b of buffers) { reads.push(this.doRead(b, 0, b.byteLength, pos)); pos += b.byteLength; }
      // Each read clips at the file's end, so the bytes read are a prefix of the buffers.
      const bytesRead = (await Promise.all(reads)).reduce((n, r) => n + r.bytesRead, 0);
      if (position === null || position === undefined) this.position += bytesRead;
      return { bytesRead, buffers };
    })()));
  }

  /** Writes the buffers one after another from `position` (or the handle's position), in parallel. */
  writev<T extends readonly Uint8Array[]>(buffers: T, position?: number | null): Promise<{ bytesWritten: number; buffers: T }> {
    return nodeCall('write', this.path, () => this.track((async () => {
      this.checkOpen('write');
      let bytesWritten = 0;
      if (this.mode.append) {
        for (const b of buffers) bytesWritten += (await this.doWrite(b, 0, b.byteLength, null)).bytesWritten;
        return { bytesWritten, buffers };
      }
      let pos = position ?? this.position;
      const writes: Promise<WriteResult<Uint8Array>>[] = [];
      for (const b of buffers) { writes.push(this.doWrite(b, 0, b.byteLength, pos)); pos += b.byteLength; }
      bytesWritten = (await Promise.all(writes)).reduce((n, r) => n + r.bytesWritten, 0);
      if (position === null || position === undefined) this.position += bytesWritten;
      return { bytesWritten, buffers };
    })()));
  }

  /** A Readable of this file (node:fs/promises's FileHandle.createReadStream); closes the handle at its end. */
  createReadStream(options: ReadStreamOptions = {}): Readable {
    return readStream(async () => this, options);
  }

  /** A Writable into this file (node:fs/promises's FileHandle.createWriteStream); closes the handle at its end. */
  createWriteStream(options: WriteStreamOptions = {}): Writable {
    return writeStream(async () => this, options);
  }

  async stat(): Promise<FlyfsStats> {
    return nodeCall('fstat', this.path, async () => {
      this.checkOpen('stat');
      const fresh = await this.meta.stat(this.path).catch(() => this.attrs);
      const attrs = fresh.inodeId === this.attrs.inodeId ? fresh : this.attrs;
      return new FlyfsStats({ ...attrs, length: Math.max(attrs.length, this.length) });
    });
  }

  /** Reads the whole file from the start. */
  async readFile(options?: { encoding?: BufferEncoding | null; signal?: AbortSignal } | BufferEncoding | null): Promise<Buffer | string> {
    const signal = typeof options === 'object' && options !== null ? options.signal : undefined;
    return abortable(signal, () => this.readWhole(options));
  }

  private async readWhole(options?: { encoding?: BufferEncoding | null } | BufferEncoding | null): Promise<Buffer | string> {
    const encoding = typeof options === 'string' ? options : options?.encoding ?? null;
    const buf = Buffer.allocUnsafe(this.length);
    let done = 0;
    while (done < buf.byteLength) {
      const { bytesRead } = await this.read(buf, done, buf.byteLength - done, done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    const out = done === buf.byteLength ? buf : buf.subarray(0, done);
    return encoding ? out.toString(encoding) : out;
  }

  /** Writes data at the current position (0 for a fresh handle), as Node's handle.writeFile. */
  async writeFile(data: string | Uint8Array, options?: { encoding?: BufferEncoding; signal?: AbortSignal } | BufferEncoding): Promise<void> {
    const encoding = typeof options === 'string' ? options : options?.encoding ?? 'utf8';
    const signal = typeof options === 'object' ? options.signal : undefined;
    const bytes = typeof data === 'string' ? Buffer.from(data, encoding) : data;
    await abortable(signal, async () => { await this.write(bytes, 0, bytes.byteLength, null); });
  }

  /** Sets the file's length exactly; bytes past a shorter length read as zeros if it grows again. */
  async truncate(len = 0): Promise<void> {
    return nodeCall('ftruncate', this.path, async () => {
      this.checkOpen('truncate');
      if (!this.mode.writable) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', 'handle is not open for writing', { path: this.path });
      validateRange(0, len, this.path);
      // What this handle wrote is recorded first, so the cut on storage sees it.
      await this.flush();
      this.attrs = await this.meta.truncate({ inodeId: this.attrs.inodeId }, len);
      this.length = len;
    });
  }

  /** Waits for this handle's writes and records their end at the metaserver. */
  async sync(): Promise<void> {
    return nodeCall('fsync', this.path, async () => {
      this.checkOpen('sync');
      await this.flush();
    });
  }

  /** As sync: flyfs writes are durable when acknowledged; only the length is left to record. */
  async datasync(): Promise<void> {
    return nodeCall('fdatasync', this.path, async () => {
      this.checkOpen('datasync');
      await this.flush();
    });
  }

  async chmod(mode: number | string): Promise<void> {
    return nodeCall('fchmod', this.path, async () => {
      this.checkOpen('chmod');
      this.attrs = await this.meta.setattr({ inodeId: this.attrs.inodeId }, { mode: modeOf(mode) });
    });
  }

  async utimes(atime: TimeLike, mtime: TimeLike): Promise<void> {
    return nodeCall('futime', this.path, async () => {
      this.checkOpen('utimes');
      this.attrs = await this.meta.setattr({ inodeId: this.attrs.inodeId }, timesChange(atime, mtime));
    });
  }

  private async flush(): Promise<void> {
    await Promise.allSettled([...this.pending]);
    if (!this.mode.writable || this.writtenEnd === undefined) return;
    this.attrs = await this.meta.sync(this.attrs.inodeId, this.sessionId, this.writtenEnd);
    this.writtenEnd = undefined;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.pending]);
    await nodeCall('close', this.path, async () => {
      if (this.mode.writable) this.attrs = await this.meta.close(this.attrs.inodeId, this.sessionId, this.writtenEnd);
    });
  }

  async [Symbol.asyncDispose](): Promise<void> { await this.close(); }
}
