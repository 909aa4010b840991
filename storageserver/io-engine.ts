// The storage server's file I/O: positional reads and writes, opens, fsync/fdatasync and closes
// on file descriptors, through one io_uring ring (the native addon, storageserver/native) or
// through Node's fs where io_uring is unavailable. Both engines keep the same contract, so the
// chunk engine and its tests run unchanged on either:
//   - read/write return the bytes transferred (a read is short only at end of file);
//   - failures reject with Node-style errors: `code` ('ENOENT', 'EBADF', ...), `errno` (negative),
//     `syscall`; callers map them to the registry at their edge;
//   - buffers from allocAligned suit O_DIRECT (address and size multiples of `alignment`).
// The ring batches: requests prepared in one turn of the event loop go to the kernel in one
// io_uring_enter. At most `ringEntries` are in flight; up to `queuedMax` more wait in JS.
import { createRequire } from 'node:module';
import fs, { constants as fsConstants } from 'node:fs';
import { getSystemErrorName } from 'node:util';

export type IoEngineKind = 'io_uring' | 'fs';
/** `auto`: io_uring where the kernel offers it, else fs. */
export type IoEngineChoice = IoEngineKind | 'auto';

export const ioEngineLimits = {
  /** Submission queue entries of the ring: requests in flight in the kernel at once. */
  ringEntries: 256,
  /** Requests waiting in JS for a free ring slot; one more is refused with EAGAIN. */
  queuedMax: 65_536,
  /** Address and size alignment of O_DIRECT buffers and offsets (the logical block size bound). */
  alignment: 4096,
  /** Completions reported to JS per callback. */
  completionsPerCallback: 512,
} as const;

export interface IoEngine {
  readonly kind: IoEngineKind;
  /** Why io_uring is not the engine (auto chose fs), for logs and /status. */
  readonly fallbackReason?: string;
  readonly alignment: number;
  /** Resolves to a file descriptor; `flags` are fs.constants bits (O_DIRECT allowed). */
  open(path: string, flags: number, mode?: number): Promise<number>;
  read(fd: number, buf: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  write(fd: number, buf: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  /** fdatasync when `dataOnly`, else fsync. */
  sync(fd: number, dataOnly: boolean): Promise<void>;
  /** ftruncate: the file's length becomes `length` (an O_DIRECT write pads to the alignment). */
  truncate(fd: number, length: number): Promise<void>;
  close(fd: number): Promise<void>;
  /** Memory aligned for O_DIRECT (not zeroed: read into it, use what was read); undefined where the engine cannot give it. */
  allocAligned(bytes: number): Buffer | undefined;
  /** Requests in the kernel or waiting for it. */
  inflight(): number;
  /** Closes the ring once nothing is in flight. */
  shutdown(): Promise<void>;
}

/** A Node-style errno error (as node:fs would throw). */
export function errnoError(negErrno: number, syscall: string, path?: string): NodeJS.ErrnoException {
  let code: string;
  try { code = getSystemErrorName(negErrno); } catch { code = `E${-negErrno}`; }
  const err = new Error(`${code}: ${syscall} failed${path === undefined ? '' : ` '${path}'`}`) as NodeJS.ErrnoException;
  err.code = code;
  err.errno = negErrno;
  err.syscall = syscall;
  if (path !== undefined) err.path = path;
  return err;
}

// ---- the native addon ----

interface NativeRing {
  readonly entries: number;
  readonly inflight: number;
  prepRead(slot: number, fd: number, buf: Uint8Array, offset: number, length: number, position: number): void;
  prepWrite(slot: number, fd: number, buf: Uint8Array, offset: number, length: number, position: number): void;
  prepFsync(slot: number, fd: number, datasync: boolean): void;
  prepOpen(slot: number, path: string, flags: number, mode: number): void;
  /** Prepared requests handed to the kernel, or -EAGAIN/-EBUSY when it is short of resources. */
  submit(): number;
  close(): void;
}

interface NativeAddon {
  Ring: new (entries: number, completions: Int32Array, onComplete: (count: number) => void) => NativeRing;
  allocAligned(bytes: number, alignment: number): Buffer;
  addressMod(buf: Uint8Array, offset: number, alignment: number): number;
  closeFd(fd: number): number;
  crc32c(buf: Uint8Array, previous: number): number;
  crc32cHardware(): boolean;
  crc32cBlocks?(buf: Uint8Array, blockBytes: number, out: Uint8Array): number;
  crc32cCheckBlocks?(buf: Uint8Array, blockBytes: number, sums: Uint8Array): number;
  tuneAllocator?(mmapThresholdBytes: number, trimThresholdBytes: number): boolean;
}

let addonCache: { addon?: NativeAddon; error?: string } | undefined;

/** The compiled addon (build/Release/flyfs_io.node, made by `npm install`), or why it is missing. */
export function loadAddon(): { addon?: NativeAddon; error?: string } {
  if (addonCache !== undefined) return addonCache;
  const require = createRequire(import.meta.url);
  // From the sources (storageserver/) and from the build (dist/storageserver/).
  const candidates = ['../build/Release/flyfs_io.node', '../../build/Release/flyfs_io.node'];
  const errors: string[] = [];
  for (const c of candidates) {
    try {
      addonCache = { addon: require(c) as NativeAddon };
      return addonCache;
    } catch (err) {
      errors.push(`${c}: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  addonCache = { error: `the io_uring addon is not built (${errors.join('; ')})` };
  return addonCache;
}

type Op =
  | { kind: 'read' | 'write'; fd: number; buf: Uint8Array; offset: number; length: number; position: number }
  | { kind: 'sync'; fd: number; dataOnly: boolean }
  | { kind: 'open'; path: string; flags: number; mode: number };

interface Pending { op: Op; resolve: (res: number) => void; reject: (err: unknown) => void }

const syscallOf: Record<Op['kind'], string> = { read: 'read', write: 'write', sync: 'fsync', open: 'open' };

function checkRange(buf: Uint8Array, offset: number, length: number, position: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > buf.byteLength) {
    throw new RangeError(`range [${offset}, ${offset + length}) outside a buffer of ${buf.byteLength} bytes`);
  }
  if (!Number.isSafeInteger(position) || position < 0) throw new RangeError(`position ${position} is not a non-negative integer`);
}

class UringEngine implements IoEngine {
  readonly kind = 'io_uring' as const;
  readonly alignment = ioEngineLimits.alignment;
  private readonly ring: NativeRing;
  private readonly completions = new Int32Array(2 * ioEngineLimits.completionsPerCallback);
  private readonly free: number[] = [];
  private readonly bySlot: Array<Pending | undefined>;
  private readonly waiting: Pending[] = [];
  private submitQueued = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly addon: NativeAddon, entries: number) {
    this.ring = new addon.Ring(entries, this.completions, (n) => this.onComplete(n));
    for (let i = this.ring.entries - 1; i >= 0; i--) this.free.push(i);
    this.bySlot = new Array<Pending | undefined>(this.ring.entries);
  }

  open(path: string, flags: number, mode = 0o644): Promise<number> {
    if (path.includes('\0')) return Promise.reject(errnoError(-22, 'open', path));
    return this.enqueue({ kind: 'open', path, flags, mode });
  }

  read(fd: number, buf: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    checkRange(buf, offset, length, position);
    return this.enqueue({ kind: 'read', fd, buf, offset, length, position });
  }

  write(fd: number, buf: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    checkRange(buf, offset, length, position);
    return this.enqueue({ kind: 'write', fd, buf, offset, length, position });
  }

  async sync(fd: number, dataOnly: boolean): Promise<void> {
    await this.enqueue({ kind: 'sync', fd, dataOnly });
  }

  /** Not a ring op (IORING_OP_FTRUNCATE needs Linux 6.9): Node's thread pool, as the fs engine. */
  truncate(fd: number, length: number): Promise<void> {
    return ftruncateFd(fd, length);
  }

  async close(fd: number): Promise<void> {
    const r = this.addon.closeFd(fd);
    if (r < 0) throw errnoError(r, 'close');
  }

  allocAligned(bytes: number): Buffer {
    return this.addon.allocAligned(bytes, this.alignment);
  }

  inflight(): number { return this.ring.inflight + this.waiting.length; }

  async shutdown(): Promise<void> {
    while (this.inflight() > 0) await new Promise((r) => setTimeout(r, 1));
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    if (!this.closed) { this.closed = true; this.ring.close(); }
  }

  private enqueue(op: Op): Promise<number> {
    if (this.closed) return Promise.reject(errnoError(-9, syscallOf[op.kind]));
    if (this.waiting.length >= ioEngineLimits.queuedMax) return Promise.reject(errnoError(-11, syscallOf[op.kind]));
    return new Promise<number>((resolve, reject) => {
      this.waiting.push({ op, resolve, reject });
      this.pump();
    });
  }

  /** Moves waiting requests into free slots; the kernel gets them at the end of this turn. */
  private pump(): void {
    while (this.waiting.length > 0 && this.free.length > 0) {
      const p = this.waiting.shift()!;
      const slot = this.free.pop()!;
      this.bySlot[slot] = p;
      const op = p.op;
      switch (op.kind) {
        case 'read': this.ring.prepRead(slot, op.fd, op.buf, op.offset, op.length, op.position); break;
        case 'write': this.ring.prepWrite(slot, op.fd, op.buf, op.offset, op.length, op.position); break;
        case 'sync': this.ring.prepFsync(slot, op.fd, op.dataOnly); break;
        case 'open': this.ring.prepOpen(slot, op.path, op.flags, op.mode); break;
      }
    }
    if (!this.submitQueued) {
      this.submitQueued = true;
      queueMicrotask(() => this.submit());
    }
  }

  private submit(): void {
    this.submitQueued = false;
    if (this.closed) return;
    const r = this.ring.submit();
    // The kernel is short of resources for now: the prepared entries stay queued; try again soon.
    if (r < 0 && this.retryTimer === undefined) {
      this.retryTimer = setTimeout(() => { this.retryTimer = undefined; this.submit(); }, 1);
    }
  }

  private onComplete(count: number): void {
    for (let i = 0; i < count; i++) {
      const slot = this.completions[2 * i]!;
      const res = this.completions[2 * i + 1]!;
      const p = this.bySlot[slot];
      this.bySlot[slot] = undefined;
      this.free.push(slot);
      if (p === undefined) continue;
      if (res < 0) p.reject(errnoError(res, syscallOf[p.op.kind], p.op.kind === 'open' ? p.op.path : undefined));
      else p.resolve(res);
    }
    if (this.waiting.length > 0) this.pump();
  }
}

// ---- the fallback: Node's fs (its thread pool) ----

function fsCall<T>(fn: (cb: (err: NodeJS.ErrnoException | null, value: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((err, value) => (err === null ? resolve(value) : reject(err))));
}

function ftruncateFd(fd: number, length: number): Promise<void> {
  return fsCall<void>((cb) => fs.ftruncate(fd, length, (e) => cb(e, undefined)));
}

class FsEngine implements IoEngine {
  readonly kind = 'fs' as const;
  readonly alignment = ioEngineLimits.alignment;
  private pending = 0;

  constructor(readonly fallbackReason: string | undefined, private readonly addon: NativeAddon | undefined) {}

  private track<T>(p: Promise<T>): Promise<T> {
    this.pending++;
    return p.finally(() => { this.pending--; });
  }

  open(path: string, flags: number, mode = 0o644): Promise<number> {
    return this.track(fsCall<number>((cb) => fs.open(path, flags, mode, cb)));
  }

  read(fd: number, buf: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    checkRange(buf, offset, length, position);
    return this.track(fsCall<number>((cb) => fs.read(fd, buf, offset, length, position, cb)));
  }

  write(fd: number, buf: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    checkRange(buf, offset, length, position);
    return this.track(fsCall<number>((cb) => fs.write(fd, buf, offset, length, position, cb)));
  }

  async sync(fd: number, dataOnly: boolean): Promise<void> {
    await this.track(fsCall<void>((cb) => (dataOnly ? fs.fdatasync(fd, (e) => cb(e, undefined)) : fs.fsync(fd, (e) => cb(e, undefined)))));
  }

  truncate(fd: number, length: number): Promise<void> {
    return this.track(ftruncateFd(fd, length));
  }

  async close(fd: number): Promise<void> {
    await fsCall<void>((cb) => fs.close(fd, (e) => cb(e, undefined)));
  }

  allocAligned(bytes: number): Buffer | undefined {
    return this.addon?.allocAligned(bytes, this.alignment);
  }

  inflight(): number { return this.pending; }

  async shutdown(): Promise<void> {
    while (this.pending > 0) await new Promise((r) => setTimeout(r, 1));
  }
}

/**
 * The engine for `choice`: io_uring (fails when unavailable), fs, or auto (io_uring where it
 * works, fs with the reason otherwise).
 */
export function createIoEngine(choice: IoEngineChoice, entries: number = ioEngineLimits.ringEntries): IoEngine {
  const { addon, error } = loadAddon();
  if (choice === 'fs') return new FsEngine(undefined, addon);
  if (addon === undefined) {
    if (choice === 'io_uring') throw new Error(`io_uring engine asked for, but ${error}`);
    return new FsEngine(error, undefined);
  }
  try {
    return new UringEngine(addon, entries);
  } catch (err) {
    const reason = `io_uring is unavailable: ${(err as Error).message}`;
    if (choice === 'io_uring') throw new Error(reason);
    return new FsEngine(reason, addon);
  }
}

/**
 * Lets glibc's malloc serve buffers up to `mmapThresholdBytes` from its heap (not a fresh mmap,
 * page-faulted in and unmapped again, per 4 MiB frame or read) and keep `trimThresholdBytes`
 * free at its top. Process-wide: the storage server calls it at start. False where not applied.
 */
export function tuneAllocator(o: { mmapThresholdBytes: number; trimThresholdBytes: number }): boolean {
  return loadAddon().addon?.tuneAllocator?.(o.mmapThresholdBytes, o.trimThresholdBytes) ?? false;
}

/** Whether O_DIRECT exists on this platform (Linux). */
export const oDirect: number = (fsConstants as Record<string, number>).O_DIRECT ?? 0;
