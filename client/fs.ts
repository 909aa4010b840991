// The file system a client gets from connect(): methods follow node:fs/promises.
import { randomUUID } from 'node:crypto';
import { flyfsError } from '../common/errors.js';
import { validateRange } from '../common/layout.js';
import { limits } from '../common/limits.js';
import { splitPath, joinPath } from '../common/names.js';
import { createChunkTransport, type ChunkTransport, type TransportKind } from './chunk-transport.js';
import { FileHandle, type HandleMode } from './file-handle.js';
import type { FileIoContext } from './file-io.js';
import { MetadataClient, OpenFlags, type MetadataTransportKind } from './metadata-client.js';
import { modeOf, ownerChange, timesChange, type TimeLike } from './node-args.js';
import { constants as fsConstants } from 'node:fs';
import { abortable, nodeCall, toNodeError, type NodeStyleError } from './node-errors.js';
import { RoutingCache } from './routing.js';
import { IoBatch } from './batch.js';
import type { Readable, Writable } from 'node:stream';
import { readStream, writeStream, type ReadStreamOptions, type WriteStreamOptions } from './streams.js';
import { FlyfsDirent, FlyfsStats } from './stats.js';

export interface ConnectOptions {
  /** Data path to the storage servers: 'framed' (default, the fastest: bench chunk-transport), 'grpc' (unary) or 'grpc-stream'. */
  transport?: TransportKind;
  /** Path to the metaservers: 'framed' (default: their framed RPC, bench meta) or 'grpc'. */
  metadataTransport?: MetadataTransportKind;
  /** Bytes one read or write keeps in flight to storage servers. */
  inflightBytesMax?: number;
  /** Deadline of one operation, retries included. */
  deadlineMs?: number;
  clientId?: string;
  /** How often KeepAlive goes out while write handles are open. Default limits.keepAliveIntervalMsDefault. */
  keepAliveIntervalMs?: number;
}

export type OpenFlagString = 'r' | 'r+' | 'rs+' | 'w' | 'wx' | 'w+' | 'wx+' | 'a' | 'ax' | 'a+' | 'ax+';

function parseFlags(flags: string | number): { bits: number; mode: HandleMode } {
  if (typeof flags === 'number') throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', 'numeric open flags are not supported; use a string');
  const f = flags.replace('s', '');
  const table: Record<string, number> = {
    'r': OpenFlags.read,
    'r+': OpenFlags.read | OpenFlags.write,
    'w': OpenFlags.write | OpenFlags.create | OpenFlags.truncate,
    'wx': OpenFlags.write | OpenFlags.create | OpenFlags.truncate | OpenFlags.exclusive,
    'w+': OpenFlags.read | OpenFlags.write | OpenFlags.create | OpenFlags.truncate,
    'wx+': OpenFlags.read | OpenFlags.write | OpenFlags.create | OpenFlags.truncate | OpenFlags.exclusive,
    'a': OpenFlags.write | OpenFlags.create | OpenFlags.append,
    'ax': OpenFlags.write | OpenFlags.create | OpenFlags.append | OpenFlags.exclusive,
    'a+': OpenFlags.read | OpenFlags.write | OpenFlags.create | OpenFlags.append,
    'ax+': OpenFlags.read | OpenFlags.write | OpenFlags.create | OpenFlags.append | OpenFlags.exclusive,
  };
  const bits = table[f];
  if (bits === undefined) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `unknown open flags '${flags}'`);
  return {
    bits,
    mode: { readable: (bits & OpenFlags.read) !== 0, writable: (bits & OpenFlags.write) !== 0, append: (bits & OpenFlags.append) !== 0 },
  };
}

type Encoding = BufferEncoding | null | undefined;
function encodingOf(options: { encoding?: Encoding } | BufferEncoding | null | undefined): Encoding {
  return typeof options === 'string' ? options : options?.encoding ?? null;
}

/** Normalizes a user path: absolute, validated components, no trailing slash. */
function norm(path: string): string {
  return joinPath(splitPath(path));
}

export class FileSystem {
  private readonly meta: MetadataClient;
  private readonly routing: RoutingCache;
  private readonly transport: ChunkTransport;
  private readonly io: FileIoContext;
  private nextRequestId = 1;
  private closed = false;

  /** @internal use connect(). */
  constructor(addresses: readonly string[], options: ConnectOptions = {}) {
    const clientId = options.clientId ?? randomUUID();
    this.meta = new MetadataClient(addresses, clientId, {
      ...(options.deadlineMs === undefined ? {} : { deadlineMs: options.deadlineMs }),
      ...(options.keepAliveIntervalMs === undefined ? {} : { keepAliveIntervalMs: options.keepAliveIntervalMs }),
      ...(options.metadataTransport === undefined ? {} : { metadataTransport: options.metadataTransport }),
    });
    this.routing = new RoutingCache(() => this.meta.routingInfo());
    this.transport = createChunkTransport(options.transport ?? 'framed');
    this.io = {
      transport: this.transport, routing: this.routing, clientId,
      nextRequestId: () => this.nextRequestId++,
      inflightBytesMax: options.inflightBytesMax ?? limits.clientInflightBytesDefault,
      deadlineMs: options.deadlineMs ?? limits.rpcDeadlineMsDefault,
    };
  }

  /** @internal fetches routing info once so the first I/O does not wait for it. */
  async init(): Promise<void> { await this.routing.refresh(); }

  async mkdir(path: string, options?: { recursive?: boolean; mode?: number; chunkSizeBytes?: number; stripe?: number } | number): Promise<string | undefined> {
    const o = typeof options === 'number' ? { mode: options } : options ?? {};
    return nodeCall('mkdir', path, async () => {
      const p = norm(path);
      const recursive = o.recursive ?? false;
      let firstCreated: string | undefined;
      if (recursive) {
        // Node returns the first directory created; find it before creating.
        const parts = splitPath(p);
        for (let i = 1; i <= parts.length; i++) {
          const sub = joinPath(parts.slice(0, i));
          try { await this.meta.stat(sub); } catch { firstCreated = sub; break; }
        }
      }
      const args: { recursive: boolean; mode: number; chunkSizeBytes?: number; stripe?: number } = { recursive, mode: o.mode ?? 0o777 };
      if (o.chunkSizeBytes !== undefined) args.chunkSizeBytes = o.chunkSizeBytes;
      if (o.stripe !== undefined) args.stripe = o.stripe;
      await this.meta.mkdir(p, args);
      return recursive ? firstCreated : undefined;
    });
  }

  async open(path: string, flags: OpenFlagString | string = 'r', mode = 0o666): Promise<FileHandle> {
    return nodeCall('open', path, async () => {
      const p = norm(path);
      const { bits, mode: handleMode } = parseFlags(flags);
      const { attrs, sessionId } = await this.meta.open(p, bits, mode);
      if (attrs.kind === 'directory' && handleMode.writable) throw flyfsError('FLYFS_ERR_IS_DIR', undefined, { path });
      return new FileHandle(this.io, this.meta, p, attrs, sessionId, handleMode);
    });
  }

  async readFile(path: string, options?: { encoding?: Encoding; flag?: string; signal?: AbortSignal } | BufferEncoding | null): Promise<Buffer | string> {
    const signal = typeof options === 'object' && options !== null ? options.signal : undefined;
    return abortable(signal, () => this.readFileNow(path, options));
  }

  private async readFileNow(path: string, options?: { encoding?: Encoding; flag?: string } | BufferEncoding | null): Promise<Buffer | string> {
    const handle = await this.open(path, typeof options === 'object' && options?.flag ? options.flag : 'r');
    try {
      const st = await this.meta.stat(handle.path).catch(() => undefined);
      if (st?.kind === 'directory') throw flyfsError('FLYFS_ERR_IS_DIR', undefined, { path });
      return await handle.readFile(encodingOf(options) ?? null);
    } catch (err) {
      throw err instanceof Error && 'flyfsCode' in err ? err : await nodeCall('read', path, () => Promise.reject(err));
    } finally {
      await handle.close();
    }
  }

  async writeFile(path: string, data: string | Uint8Array, options?: { encoding?: BufferEncoding; flag?: string; mode?: number; signal?: AbortSignal } | BufferEncoding): Promise<void> {
    const o = typeof options === 'string' ? { encoding: options } : options ?? {};
    return abortable(o.signal, () => this.writeFileNow(path, data, o));
  }

  private async writeFileNow(path: string, data: string | Uint8Array, o: { encoding?: BufferEncoding; flag?: string; mode?: number }): Promise<void> {
    const handle = await this.open(path, o.flag ?? 'w', o.mode ?? 0o666);
    let failed = true;
    try {
      await handle.writeFile(data, o.encoding === undefined ? {} : { encoding: o.encoding });
      failed = false;
    } finally {
      if (failed) await handle.close().catch(() => undefined);
      else await handle.close();
    }
  }

  async appendFile(path: string, data: string | Uint8Array, options?: { encoding?: BufferEncoding; mode?: number; signal?: AbortSignal } | BufferEncoding): Promise<void> {
    const o = typeof options === 'string' ? { encoding: options } : options ?? {};
    await this.writeFile(path, data, { ...o, flag: 'a' });
  }

  readdir(path: string, options: { withFileTypes: true; recursive?: boolean }): Promise<FlyfsDirent[]>;
  readdir(path: string, options?: { withFileTypes?: false; recursive?: boolean } | BufferEncoding): Promise<string[]>;
  async readdir(path: string, options?: { withFileTypes?: boolean; recursive?: boolean } | BufferEncoding): Promise<string[] | FlyfsDirent[]> {
    return nodeCall('scandir', path, async () => {
      const p = norm(path);
      const withTypes = typeof options === 'object' && options.withFileTypes === true;
      const recursive = typeof options === 'object' && options.recursive === true;
      const names: string[] = [];
      const dirents: FlyfsDirent[] = [];
      // Breadth first, as node:fs; unlike Node 20, a symlink to a directory is listed and not
      // followed (no loops).
      const queue: string[] = [''];
      for (let q = 0; q < queue.length; q++) {
        const rel = queue[q]!;
        const dir = rel === '' ? p : `${p === '/' ? '' : p}/${rel}`;
        for (const e of await this.meta.readdir(dir)) {
          const name = rel === '' ? e.name : `${rel}/${e.name}`;
          if (withTypes) dirents.push(new FlyfsDirent(e.name, dir, e.kind));
          else names.push(name);
          if (recursive && e.kind === 'directory') queue.push(name);
        }
        if (!recursive) break;
      }
      return withTypes ? dirents : names;
    });
  }

  async stat(path: string): Promise<FlyfsStats> {
    return nodeCall('stat', path, async () => new FlyfsStats(await this.meta.stat(norm(path))));
  }

  /** As stat, but a symlink in the last component is described itself, not followed. */
  async lstat(path: string): Promise<FlyfsStats> {
    return nodeCall('lstat', path, async () => new FlyfsStats(await this.meta.stat(norm(path), { noFollow: true })));
  }

  /** Creates `path` as a symlink to `target` (stored as given; `type` is accepted for Node's signature). */
  async symlink(target: string, path: string, _type?: string | null): Promise<void> {
    return nodeCall('symlink', target, async () => { await this.meta.symlink(target, norm(path)); }, path);
  }

  async readlink(path: string, _options?: { encoding?: BufferEncoding | null } | BufferEncoding | null): Promise<string> {
    return nodeCall('readlink', path, () => this.meta.readlink(norm(path)));
  }

  async link(existingPath: string, newPath: string): Promise<void> {
    return nodeCall('link', existingPath, async () => { await this.meta.link(norm(existingPath), norm(newPath)); }, newPath);
  }

  /** Sets the file's length exactly (symlinks followed); bytes past a shorter length read as zeros if it grows again. */
  async truncate(path: string, len = 0): Promise<void> {
    return nodeCall('open', path, async () => {
      validateRange(0, len, path);
      await this.meta.truncate({ path: norm(path) }, len);
    });
  }

  async chmod(path: string, mode: number | string): Promise<void> {
    return nodeCall('chmod', path, async () => { await this.meta.setattr({ path: norm(path) }, { mode: modeOf(mode) }); });
  }

  /** Owner ids are recorded, never enforced; -1 leaves one as it is. */
  async chown(path: string, uid: number, gid: number): Promise<void> {
    return nodeCall('chown', path, async () => { await this.meta.setattr({ path: norm(path) }, ownerChange(uid, gid)); });
  }

  async utimes(path: string, atime: TimeLike, mtime: TimeLike): Promise<void> {
    return nodeCall('utime', path, async () => { await this.meta.setattr({ path: norm(path) }, timesChange(atime, mtime)); });
  }

  async rename(oldPath: string, newPath: string): Promise<void> {
    return nodeCall('rename', oldPath, () => this.meta.rename(norm(oldPath), norm(newPath)), newPath);
  }

  async unlink(path: string): Promise<void> {
    return nodeCall('unlink', path, () => this.meta.unlink(norm(path)));
  }

  async rmdir(path: string): Promise<void> {
    return nodeCall('rmdir', path, () => this.meta.rmdir(norm(path)));
  }

  /** A Readable of a file, as node:fs's createReadStream (start/end inclusive, highWaterMark). */
  createReadStream(path: string, options: ReadStreamOptions = {}): Readable {
    return readStream(() => this.open(path, 'r'), options);
  }

  /** A Writable into a file, as node:fs's createWriteStream (flags default 'w', start). */
  createWriteStream(path: string, options: WriteStreamOptions & { flags?: string; mode?: number } = {}): Writable {
    return writeStream(() => this.open(path, options.flags ?? 'w', options.mode ?? 0o666), options);
  }

  /** A batch of reads and writes submitted at once, completions as they finish (client/batch.ts). */
  batch(): IoBatch {
    return new IoBatch(this.io);
  }

  /** Whether `path` exists (symlinks followed). Permission bits are recorded, never enforced,
   * so every mode is granted to an existing file, as to root on a local disk. */
  async access(path: string, _mode?: number): Promise<void> {
    return nodeCall('access', path, async () => { await this.meta.stat(norm(path)); });
  }

  /**
   * Copies a file's bytes to `dest` (created or replaced; with COPYFILE_EXCL, EEXIST if it
   * exists). The copy goes through the client: read in parallel from src's chains, written in
   * parallel to dest's.
   */
  async copyFile(src: string, dest: string, mode = 0): Promise<void> {
    return nodeCall('copyfile', src, async () => {
      const from = await this.meta.stat(norm(src));
      if (from.kind === 'directory') throw flyfsError('FLYFS_ERR_IS_DIR', undefined, { path: src });
      const exclusive = (mode & fsConstants.COPYFILE_EXCL) !== 0;
      const target = await this.meta.stat(norm(dest)).catch(() => undefined);
      if (target?.kind === 'directory') throw flyfsError('FLYFS_ERR_IS_DIR', undefined, { path: dest });
      if (exclusive && target !== undefined) throw flyfsError('FLYFS_ERR_EXISTS', undefined, { path: dest });
      const data = await this.readFile(src) as Buffer;
      await this.writeFile(dest, data, { flag: exclusive ? 'wx' : 'w' });
    }, dest);
  }

  /**
   * Removes a file or symlink; a directory only with `recursive` (everything under it, links
   * not followed). A missing path is ENOENT unless `force`. Like node:fs, a directory without
   * `recursive` is ERR_FS_EISDIR.
   */
  async rm(path: string, options: { recursive?: boolean; force?: boolean } = {}): Promise<void> {
    const p = norm(path);
    let st;
    try {
      st = await this.lstat(path);
    } catch (err) {
      if (options.force === true && (err as NodeStyleError).code === 'ENOENT') return;
      throw err;
    }
    if (!st.isDirectory()) return this.unlink(path);
    if (options.recursive !== true) {
      const e = toNodeError(flyfsError('FLYFS_ERR_IS_DIR', `Path is a directory: rm returned EISDIR (is a directory) ${path}`), 'rm', path);
      e.code = 'ERR_FS_EISDIR';
      throw e;
    }
    const entries = await this.readdir(path, { withFileTypes: true });
    // One entry at a time: a wide tree never puts unbounded requests in flight.
    for (const e of entries) await this.rm(`${p === '/' ? '' : p}/${e.name}`, { recursive: true, force: options.force ?? false });
    if (p !== '/') await this.rmdir(path);
  }

  /** Routing info as the client sees it (for tools). */
  async routingInfo(): ReturnType<MetadataClient['routingInfo']> {
    return this.meta.routingInfo();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.transport.close();
    this.meta.shutdown();
  }

  async [Symbol.asyncDispose](): Promise<void> { await this.close(); }
}
