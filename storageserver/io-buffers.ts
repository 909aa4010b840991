// Aligned I/O buffers used again instead of allocated per O_DIRECT read or write
// (docs/chunk-engine.md, "Reads" and "Writes"). A chunk read or write takes a buffer of the
// smallest power-of-two size class that holds its window; a caller that is done with the bytes
// (the framed ReadChunks reply, once it has copied them into its payload; a write, once the
// kernel has written them) gives the view back, and the buffer serves a later read or write. Bytes still referenced
// must never be given back: a buffer the socket may still be sending stays with its reply and is
// collected as any Buffer. Only buffers this pool handed out are taken back, each at most once
// per take; at most `bytesMax` wait free.
import { assert } from '../common/errors.js';

export interface IoBufferPoolOptions {
  /** Allocates `bytes` of aligned memory (the I/O engine's allocAligned). */
  readonly alloc: (bytes: number) => Buffer;
  /** The smallest size class (a power of two, the I/O alignment or more). */
  readonly classBytesMin: number;
  /** Reads above the largest size class get a buffer of their own, never pooled. */
  readonly classBytesMax: number;
  /** Bytes of free buffers the pool keeps at most. */
  readonly bytesMax: number;
}

export class IoBufferPool {
  private readonly free = new Map<number, Buffer[]>();
  /** Buffers out with a reader, by their memory: what give() accepts. */
  private readonly out = new WeakMap<ArrayBuffer, Buffer>();
  private freeBytes = 0;

  constructor(private readonly o: IoBufferPoolOptions) {
    assert(Number.isInteger(Math.log2(o.classBytesMin)) && Number.isInteger(Math.log2(o.classBytesMax)) && o.classBytesMin <= o.classBytesMax, 'size classes are powers of two');
  }

  get freeBytesNow(): number { return this.freeBytes; }

  /** A buffer of at least `bytes` (not zeroed). */
  take(bytes: number): Buffer {
    if (bytes > this.o.classBytesMax) return this.o.alloc(bytes);
    let size = this.o.classBytesMin;
    while (size < bytes) size *= 2;
    const reused = this.free.get(size)?.pop();
    if (reused !== undefined) this.freeBytes -= size;
    const buf = reused ?? this.o.alloc(size);
    this.out.set(buf.buffer as ArrayBuffer, buf);
    return buf;
  }

  /** Gives back the buffer under `view` (a view of a taken buffer) once nothing uses its bytes. */
  give(view: Uint8Array): void {
    const buf = this.out.get(view.buffer as ArrayBuffer);
    if (buf === undefined) return;
    this.out.delete(view.buffer as ArrayBuffer);
    if (this.freeBytes + buf.length > this.o.bytesMax) return;
    let list = this.free.get(buf.length);
    if (list === undefined) { list = []; this.free.set(buf.length, list); }
    list.push(buf);
    this.freeBytes += buf.length;
  }
}
