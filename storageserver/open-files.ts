// Open read-only descriptors of chunk version files, kept between reads (docs/chunk-engine.md,
// "Reads"): a version's file never changes once its record names it, so one descriptor serves
// every read of that version until the file is removed or replaced, and a read costs one I/O
// instead of an open, a read and a close. At most `max` are kept, least recently used closed
// first; one still in use by a read is closed when that read lets go of it. The chunk engine
// invalidates a path before it removes, renames over or rewrites that file.
import type { IoEngine } from './io-engine.js';

interface Entry {
  readonly flags: number;
  /** The descriptor once open; shared by reads that ask while the open is in flight. */
  readonly fd: Promise<number>;
  users: number;
  /** Out of the cache (evicted or invalidated): closed when the last user lets go. */
  dropped: boolean;
}

export interface OpenFile {
  readonly fd: number;
  /** Hands the descriptor back (once per acquire). */
  release(): void;
}

export class OpenFileCache {
  /** Insertion order is recency: a hit moves its entry to the end. */
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly io: IoEngine, private readonly max: number) {}

  get size(): number { return this.entries.size; }

  /** An open descriptor of `path` with `flags`; release it when the read is done. */
  async acquire(path: string, flags: number): Promise<OpenFile> {
    let e = this.entries.get(path);
    if (e !== undefined && e.flags !== flags) { this.drop(path, e); e = undefined; }
    if (e === undefined) {
      const fd = this.io.open(path, flags);
      e = { flags, fd, users: 0, dropped: false };
      const entry = e;
      // A failed open leaves nothing behind; its callers see the error.
      fd.catch(() => { if (this.entries.get(path) === entry) this.entries.delete(path); entry.dropped = true; });
      this.entries.set(path, e);
      this.evict();
    } else {
      this.entries.delete(path);
      this.entries.set(path, e);
    }
    e.users++;
    const entry = e;
    let fd: number;
    try {
      fd = await entry.fd;
    } catch (err) {
      entry.users--;
      throw err;
    }
    let released = false;
    return {
      fd,
      release: () => {
        if (released) return;
        released = true;
        entry.users--;
        if (entry.dropped && entry.users === 0) this.closeEntry(entry);
      },
    };
  }

  /** Forgets `path` (before its file is removed, renamed over or rewritten). */
  invalidate(path: string): void {
    const e = this.entries.get(path);
    if (e !== undefined) this.drop(path, e);
  }

  /** Closes everything not in use now; what is in use closes when released. */
  closeAll(): void {
    for (const [path, e] of [...this.entries]) this.drop(path, e);
  }

  private evict(): void {
    for (const [path, e] of this.entries) {
      if (this.entries.size <= this.max) return;
      this.drop(path, e);
    }
  }

  private drop(path: string, e: Entry): void {
    this.entries.delete(path);
    if (e.dropped) return;
    e.dropped = true;
    if (e.users === 0) this.closeEntry(e);
  }

  private closeEntry(e: Entry): void {
    e.fd.then((fd) => this.io.close(fd)).catch(() => undefined);
  }
}
