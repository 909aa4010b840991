// The KV cache service's index: namespaces, page records and page files, durable in LMDB; the
// LRU order, read leases and usage in memory (rebuilt at start). Pages live in flyfs files of
// `slotsPerFile` page slots each, created full-size (sparse) so every slot is inside the file.
// A put is two-phase: reserve (a slot, recorded durably with a deadline) → the client writes
// the page → commit (with the page's CRC-32). Only committed pages are found. Evicted or removed
// pages leave the index at once, but their slots are reused only once every read lease on them
// has run out, so a reader inside its lease never reads another page's bytes. After a restart
// no slot is reused for one lease period (leases are not persisted).
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { open, type Database, type RootDatabase } from 'lmdb';
import { flyfsError } from '../common/errors.js';
import { limits } from '../common/limits.js';
import type { Logger } from '../common/log.js';
import { checkKey } from './keys.js';
import { checkLayout, pageBytes, type KvLayout } from './layout.js';

export interface NamespaceSpec {
  readonly name: string;
  readonly tenant: string;
  readonly model: string;
  readonly kvFormat: string;
  readonly layout: KvLayout;
  /** 0: bounded only by the service's capacity. */
  readonly quotaBytes: number;
  /** 0: pages do not expire. */
  readonly ttlMs: number;
}

interface NamespaceRecord {
  readonly id: string;
  readonly spec: NamespaceSpec;
  readonly tokenHash: string;
  readonly dir: string;
  readonly slotsPerFile: number;
  readonly createdAt: number;
}

/** A page: reserved (r) or committed (c), in slot `slot` of file `file`. */
interface PageRecord {
  s: 'r' | 'c';
  file: number;
  slot: number;
  crc: number;
  /** Committed at (c), or reserved at (r). */
  t: number;
  /** Reservation id and deadline (r). */
  res?: string;
  exp?: number;
  pin: number;
  /** Last access, persisted lazily (LRU order after a restart). */
  a: number;
}

interface FileRecord { readonly no: number; readonly path: string; readonly slots: number }

/** What the index needs of flyfs: page files. */
export interface PageFiles {
  /** A folder whose files have chunks of `chunkBytes`. */
  mkdir(dir: string, chunkBytes: number): Promise<void>;
  /** Creates a file of exactly `bytes` (sparse). */
  create(path: string, bytes: number): Promise<void>;
  remove(path: string): Promise<void>;
  list(dir: string): Promise<string[]>;
}

export interface KvIndexOptions {
  readonly dataDir: string;
  /** The flyfs folder that holds every namespace's folder. */
  readonly root: string;
  readonly files: PageFiles;
  readonly capacityBytes: number;
  readonly highWatermark: number;
  readonly lowWatermark: number;
  readonly leaseMs: number;
  readonly reserveMs: number;
  /** Bytes of page data per file (slots per file = this / page size, at least 1). */
  readonly fileBytes: number;
  readonly now?: () => number;
  readonly logger: Logger;
}

export const kvLimits = {
  /** Keys of one request. */
  keysPerRequestMax: 4096,
  namespacesMax: 4096,
  nameBytesMax: 128,
  /** Pages one List answer names. */
  listMax: 10_000,
  /** How often last-access times are written back. */
  accessFlushMs: 1_000,
} as const;

export type ReserveStatus = 'RESERVED' | 'EXISTS' | 'BUSY' | 'NO_SPACE';

export interface Extent { readonly path: string; readonly offset: number; readonly length: number; readonly crc32: number }

interface NsState {
  readonly rec: NamespaceRecord;
  readonly pageBytes: number;
  /** A page's slot: its size rounded up to the chunk alignment; each slot is one chunk. */
  readonly slotBytes: number;
  /** Bytes of live pages (committed or reserved): what watermarks and quotas count. */
  usedBytes: number;
  /** Bytes of slots that left the index but wait for their leases to end before reuse. */
  heldBytes: number;
  /** Reserved pages (id → reservation and deadline): expiry and abort look here, not at every page. */
  readonly reserved: Map<string, { res: string; exp: number }>;
  pages: number;
  files: FileRecord[];
  free: Array<{ file: number; slot: number }>;
  /** Slots never used yet in the last file. */
  nextSlot: number;
  /** Creating a file: one at a time per namespace. */
  growing: Promise<void> | undefined;
}

const pageId = (nsId: string, key: Uint8Array): string => `${nsId}/${Buffer.from(key).toString('hex')}`;
const hashToken = (token: string): string => createHash('sha256').update(token).digest('hex');

export class KvIndex {
  private readonly env: RootDatabase;
  private readonly nsTable: Database<NamespaceRecord, string>;
  private readonly pages: Database<PageRecord, string>;
  private readonly fileTable: Database<FileRecord, string>;
  private readonly meta: Database<unknown, string>;
  private readonly ns = new Map<string, NsState>();
  /** Committed pages, least recently used first (Map keeps insertion order). */
  private readonly lru = new Map<string, NsState>();
  private readonly leases = new Map<string, number>();
  /** Slots waiting for their leases to end before reuse. */
  private deferred: Array<{ ns: NsState; file: number; slot: number; at: number }> = [];
  /** The earliest `at` of `deferred` (lookups check this, not the list). */
  private deferredNextAt = Number.POSITIVE_INFINITY;
  private readonly dirtyAccess = new Set<string>();
  /** Pages a reserve call is taking now (its records are written at its end). */
  private readonly reserving = new Set<string>();
  private readonly now: () => number;
  private readonly startedAt: number;
  private lastAccessFlush = 0;
  readonly counters = { lookups: 0, hits: 0, misses: 0, reserved: 0, committed: 0, aborted: 0, expiredReservations: 0, evicted: 0, expired: 0, removed: 0 };
  readonly adminToken: string;

  private constructor(private readonly o: KvIndexOptions) {
    mkdirSync(o.dataDir, { recursive: true });
    this.env = open({ path: o.dataDir, maxDbs: 8, overlappingSync: false });
    this.nsTable = this.env.openDB({ name: 'namespaces' });
    this.pages = this.env.openDB({ name: 'pages' });
    this.fileTable = this.env.openDB({ name: 'files' });
    this.meta = this.env.openDB({ name: 'meta' });
    this.now = o.now ?? Date.now;
    this.startedAt = this.now();
    let admin = this.meta.get('adminToken') as string | undefined;
    if (admin === undefined) {
      admin = randomBytes(24).toString('hex');
      this.meta.putSync('adminToken', admin);
    }
    this.adminToken = admin;
  }

  /** Opens the index and runs the recovery pass: expired reservations dropped, files checked against flyfs. */
  static async open(o: KvIndexOptions): Promise<KvIndex> {
    if (!(o.lowWatermark > 0 && o.lowWatermark < o.highWatermark && o.highWatermark <= 1)) {
      throw flyfsError('FLYFS_ERR_BAD_CONFIG', `watermarks must satisfy 0 < low (${o.lowWatermark}) < high (${o.highWatermark}) <= 1`);
    }
    const ix = new KvIndex(o);
    await ix.recover();
    return ix;
  }

  async close(): Promise<void> {
    this.flushAccess(true);
    await this.env.close();
  }

  // ---- namespaces ----

  checkAdmin(token: string): void {
    if (!safeEqual(token, this.adminToken)) throw flyfsError('FLYFS_ERR_NOT_PERMITTED', 'bad admin token');
  }

  async createNamespace(adminToken: string, spec: NamespaceSpec): Promise<{ state: NsState; token: string }> {
    this.checkAdmin(adminToken);
    checkSpec(spec);
    if (this.ns.has(spec.name)) throw flyfsError('FLYFS_ERR_EXISTS', `namespace ${spec.name} exists`);
    if (this.ns.size >= kvLimits.namespacesMax) throw flyfsError('FLYFS_ERR_LIMIT', `at most ${kvLimits.namespacesMax} namespaces`);
    const id = randomBytes(8).toString('hex');
    const token = randomBytes(24).toString('hex');
    const bytes = pageBytes(spec.layout);
    const rec: NamespaceRecord = {
      id, spec, tokenHash: hashToken(token), dir: `${this.o.root}/${id}`,
      slotsPerFile: Math.max(1, Math.floor(this.o.fileBytes / slotBytesOf(bytes))), createdAt: this.now(),
    };
    await this.o.files.mkdir(rec.dir, slotBytesOf(bytes));
    this.nsTable.putSync(spec.name, rec);
    const st = this.addNamespace(rec);
    return { state: st, token };
  }

  /** The namespace `name` if `token` is its token; the same error for a wrong token and a missing namespace. */
  auth(name: string, token: string): NsState {
    const st = this.ns.get(name);
    if (st === undefined || !safeEqual(hashToken(token), st.rec.tokenHash)) {
      throw flyfsError('FLYFS_ERR_NOT_PERMITTED', `no namespace ${name} for this token`);
    }
    return st;
  }

  namespaceInfo(st: NsState): { spec: NamespaceSpec; directory: string; pageBytes: number; pages: number; usedBytes: number; slotsPerFile: number } {
    return { spec: st.rec.spec, directory: st.rec.dir, pageBytes: st.pageBytes, pages: st.pages, usedBytes: st.usedBytes, slotsPerFile: st.rec.slotsPerFile };
  }

  // ---- reads ----

  /** Leading keys committed (and not expired); leases them. */
  lookup(st: NsState, keys: readonly Uint8Array[]): { loadable: number; leaseUntilMs: number; leaseMs: number } {
    checkKeys(keys);
    const now = this.now();
    this.counters.lookups++;
    let n = 0;
    for (const k of keys) {
      const rec = this.committed(st, k, now);
      if (rec === undefined) break;
      n++;
    }
    this.counters.hits += n;
    this.counters.misses += keys.length - n;
    const until = now + this.o.leaseMs;
    for (let i = 0; i < n; i++) this.touch(st, keys[i]!, until);
    this.housekeep();
    return { loadable: n, leaseUntilMs: until, leaseMs: this.o.leaseMs };
  }

  /** Extents of the committed keys (found: false for the others); leases those found. */
  resolve(st: NsState, keys: readonly Uint8Array[]): { extents: Array<Extent | undefined>; leaseUntilMs: number; leaseMs: number } {
    checkKeys(keys);
    const now = this.now();
    const until = now + this.o.leaseMs;
    const extents = keys.map((k) => {
      const rec = this.committed(st, k, now);
      if (rec === undefined) return undefined;
      this.touch(st, k, until);
      return this.extentOf(st, rec);
    });
    this.housekeep();
    return { extents, leaseUntilMs: until, leaseMs: this.o.leaseMs };
  }

  // ---- two-phase put ----

  async reserve(st: NsState, keys: readonly Uint8Array[]): Promise<{ reservationId: string; expiresAtMs: number; pages: Array<{ status: ReserveStatus; extent?: Extent }> }> {
    checkKeys(keys);
    const now = this.now();
    const reservationId = randomBytes(12).toString('hex');
    const expiresAtMs = now + this.o.reserveMs;
    const out: Array<{ status: ReserveStatus; extent?: Extent }> = [];
    const fresh: Array<{ id: string; rec: PageRecord; k: number }> = [];
    const seen = new Set<string>();
    for (const [k, key] of keys.entries()) {
      const id = pageId(st.rec.id, key);
      const rec = this.pages.get(id);
      if (seen.has(id) || this.reserving.has(id) || (rec !== undefined && rec.s === 'r' && (rec.exp ?? 0) > now)) { out.push({ status: 'BUSY' }); continue; }
      if (rec !== undefined && rec.s === 'c' && !this.isExpired(st, rec, now)) { out.push({ status: 'EXISTS' }); continue; }
      seen.add(id);
      this.reserving.add(id);
      if (rec !== undefined) this.drop(st, id, rec, now);
      if (!this.makeRoom(st, st.pageBytes)) { out.push({ status: 'NO_SPACE' }); continue; }
      let slot: { file: number; slot: number };
      try { slot = await this.allocate(st); } catch (err) {
        for (const id2 of seen) this.reserving.delete(id2);
        for (const f of fresh) this.release(st, f.rec, now);
        throw err;
      }
      const page: PageRecord = { s: 'r', file: slot.file, slot: slot.slot, crc: 0, t: now, res: reservationId, exp: expiresAtMs, pin: 0, a: now };
      st.usedBytes += st.pageBytes;
      fresh.push({ id, rec: page, k });
      out.push({ status: 'RESERVED', extent: this.extentOf(st, page) });
    }
    try {
      if (fresh.length > 0) {
        this.env.transactionSync(() => { for (const f of fresh) this.pages.putSync(f.id, f.rec); });
        for (const f of fresh) st.reserved.set(f.id, { res: reservationId, exp: expiresAtMs });
        this.counters.reserved += fresh.length;
      }
    } finally {
      for (const id of seen) this.reserving.delete(id);
    }
    return { reservationId, expiresAtMs, pages: out };
  }

  commit(st: NsState, reservationId: string, keys: readonly Uint8Array[], crcs: readonly number[]): number {
    checkKeys(keys);
    if (crcs.length !== keys.length) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `${keys.length} keys but ${crcs.length} checksums`);
    const now = this.now();
    const done: Array<{ id: string; rec: PageRecord }> = [];
    for (const [k, key] of keys.entries()) {
      const id = pageId(st.rec.id, key);
      const rec = this.pages.get(id);
      // A repeated commit (its first reply was lost) of a page committed with these bytes.
      if (rec !== undefined && rec.s === 'c' && rec.crc === crcs[k]) continue;
      if (rec === undefined || rec.s !== 'r' || rec.res !== reservationId) {
        throw flyfsError('FLYFS_ERR_NOT_FOUND', `page ${Buffer.from(key).toString('hex').slice(0, 16)}… is not reserved by ${reservationId}`);
      }
      if ((rec.exp ?? 0) <= now) throw flyfsError('FLYFS_ERR_TIMEOUT', `reservation ${reservationId} expired before its commit`);
      const crc = crcs[k]!;
      if (!Number.isSafeInteger(crc) || crc < 0 || crc > 0xffffffff) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', 'crc32 must be a u32');
      done.push({ id, rec: { s: 'c', file: rec.file, slot: rec.slot, crc, t: now, pin: rec.pin, a: now } });
    }
    this.env.transactionSync(() => { for (const d of done) this.pages.putSync(d.id, d.rec); });
    for (const d of done) { st.reserved.delete(d.id); st.pages++; this.lru.delete(d.id); this.lru.set(d.id, st); }
    this.counters.committed += done.length;
    this.housekeep();
    return done.length;
  }

  abort(st: NsState, reservationId: string): number {
    const now = this.now();
    const mine = this.reservedPages(st, (r) => r.res === reservationId);
    this.env.transactionSync(() => { for (const m of mine) this.pages.removeSync(m.id); });
    for (const m of mine) { st.reserved.delete(m.id); this.release(st, m.rec, now); }
    this.counters.aborted += mine.length;
    return mine.length;
  }

  /** The reserved pages of `st` whose reservation matches, with their records. */
  private reservedPages(st: NsState, match: (r: { res: string; exp: number }) => boolean): Array<{ id: string; rec: PageRecord }> {
    const out: Array<{ id: string; rec: PageRecord }> = [];
    for (const [id, r] of st.reserved) {
      if (!match(r)) continue;
      const rec = this.pages.get(id);
      if (rec !== undefined && rec.s === 'r' && rec.res === r.res) out.push({ id, rec }); else st.reserved.delete(id);
    }
    return out;
  }

  // ---- removal, pins ----

  remove(st: NsState, keys: readonly Uint8Array[]): number {
    const now = this.now();
    const n = this.eachCommitted(st, keys, (id, rec) => { this.pages.removeSync(id); this.forget(st, id, rec, now); });
    this.counters.removed += n;
    return n;
  }

  pin(st: NsState, keys: readonly Uint8Array[], untilMs: number): number {
    if (!Number.isSafeInteger(untilMs) || untilMs < 0) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', 'until must be a time in ms');
    return this.eachCommitted(st, keys, (id, rec) => this.pages.putSync(id, { ...rec, pin: untilMs }));
  }

  /** Runs fn on each committed page among `keys` in one durable transaction; how many there were. */
  private eachCommitted(st: NsState, keys: readonly Uint8Array[], fn: (id: string, rec: PageRecord) => void): number {
    checkKeys(keys);
    let n = 0;
    this.env.transactionSync(() => {
      for (const key of keys) {
        const id = pageId(st.rec.id, key);
        const rec = this.pages.get(id);
        if (rec === undefined || rec.s !== 'c') continue;
        fn(id, rec);
        n++;
      }
    });
    return n;
  }

  // ---- eviction ----

  get usedBytes(): number { let u = 0; for (const st of this.ns.values()) u += st.usedBytes; return u; }
  get heldBytes(): number { let h = 0; for (const st of this.ns.values()) h += st.heldBytes; return h; }

  /**
   * Evicts least recently used pages (never leased, pinned or reserved ones) until usage is at
   * most `targetBytes` (default: the low watermark), in `only` or across all namespaces.
   * Returns the pages evicted.
   */
  evict(targetBytes = this.o.lowWatermark * this.o.capacityBytes, only?: NsState): number {
    const now = this.now();
    const used = (): number => (only === undefined ? this.usedBytes : only.usedBytes);
    if (used() <= targetBytes) return 0;
    const victims: Array<{ id: string; st: NsState; rec: PageRecord }> = [];
    let freed = 0;
    for (const [id, st] of this.lru) {
      if (used() - freed <= targetBytes) break;
      if (only !== undefined && st !== only) continue;
      if ((this.leases.get(id) ?? 0) > now) continue;
      const rec = this.pages.get(id);
      if (rec === undefined || rec.s !== 'c' || rec.pin > now) continue;
      victims.push({ id, st, rec });
      freed += st.pageBytes;
    }
    if (victims.length === 0) return 0;
    this.env.transactionSync(() => { for (const v of victims) this.pages.removeSync(v.id); });
    for (const v of victims) this.forget(v.st, v.id, v.rec, now);
    this.counters.evicted += victims.length;
    return victims.length;
  }

  /** Drops pages past their namespace's TTL (not leased or pinned) and reservations past their deadline. */
  expire(): { pages: number; reservations: number } {
    const now = this.now();
    let pages = 0;
    let reservations = 0;
    for (const st of this.ns.values()) {
      const gone = this.reservedPages(st, (r) => r.exp <= now);
      // Only a namespace with a TTL has pages to look through.
      if (st.rec.spec.ttlMs > 0) {
        for (const { key, value } of this.pages.getRange({ start: `${st.rec.id}/`, end: `${st.rec.id}0` })) {
          if (value.s === 'c' && this.isExpired(st, value, now) && (this.leases.get(key) ?? 0) <= now && value.pin <= now) gone.push({ id: key, rec: value });
        }
      }
      if (gone.length === 0) continue;
      this.env.transactionSync(() => { for (const g of gone) this.pages.removeSync(g.id); });
      for (const g of gone) {
        if (g.rec.s === 'r') { reservations++; st.reserved.delete(g.id); this.release(st, g.rec, now); } else { pages++; this.forget(st, g.id, g.rec, now); }
      }
    }
    this.counters.expired += pages;
    this.counters.expiredReservations += reservations;
    return { pages, reservations };
  }

  /** Periodic work: expiry, eviction past the high watermark, deferred slot releases, access times. */
  tick(): void {
    this.expire();
    this.housekeep();
    this.flushAccess(false);
  }

  stats(only?: NsState): Record<string, unknown> {
    const per = [...this.ns.values()].filter((s) => only === undefined || s === only).map((s) => ({
      name: s.rec.spec.name, tenant: s.rec.spec.tenant, model: s.rec.spec.model, kvFormat: s.rec.spec.kvFormat, layout: s.rec.spec.layout,
      pages: s.pages, usedBytes: s.usedBytes, pageBytes: s.pageBytes, quotaBytes: s.rec.spec.quotaBytes, ttlMs: s.rec.spec.ttlMs,
      files: s.files.length, freeSlots: s.free.length,
    }));
    return {
      capacityBytes: this.o.capacityBytes, usedBytes: this.usedBytes, heldBytes: this.heldBytes, highWatermark: this.o.highWatermark, lowWatermark: this.o.lowWatermark,
      leaseMs: this.o.leaseMs, deferredSlots: this.deferred.length, namespaces: per, counters: { ...this.counters },
    };
  }

  list(st: NsState, limit: number): Array<{ key: string; state: string; file: number; slot: number; committedAt: number; pinnedUntil: number; lastAccess: number }> {
    const out: ReturnType<KvIndex['list']> = [];
    for (const { key, value } of this.pages.getRange({ start: `${st.rec.id}/`, end: `${st.rec.id}0`, limit: Math.min(limit, kvLimits.listMax) })) {
      out.push({ key: key.slice(st.rec.id.length + 1), state: value.s === 'c' ? 'committed' : 'reserved', file: value.file, slot: value.slot, committedAt: value.t, pinnedUntil: value.pin, lastAccess: value.a });
    }
    return out;
  }

  namespaceByName(name: string): NsState {
    const st = this.ns.get(name);
    if (st === undefined) throw flyfsError('FLYFS_ERR_NOT_FOUND', `no namespace ${name}`);
    return st;
  }

  namespaceNames(): string[] { return [...this.ns.keys()]; }

  // ---- internals ----

  private committed(st: NsState, key: Uint8Array, now: number): PageRecord | undefined {
    const rec = this.pages.get(pageId(st.rec.id, key));
    return rec !== undefined && rec.s === 'c' && !this.isExpired(st, rec, now) ? rec : undefined;
  }

  private isExpired(st: NsState, rec: PageRecord, now: number): boolean {
    return st.rec.spec.ttlMs > 0 && rec.t + st.rec.spec.ttlMs <= now && rec.pin <= now;
  }

  private touch(st: NsState, key: Uint8Array, leaseUntil: number): void {
    const id = pageId(st.rec.id, key);
    if ((this.leases.get(id) ?? 0) < leaseUntil) this.leases.set(id, leaseUntil);
    this.lru.delete(id);
    this.lru.set(id, st);
    this.dirtyAccess.add(id);
  }

  private extentOf(st: NsState, rec: PageRecord): Extent {
    const f = st.files[rec.file]!;
    return { path: f.path, offset: rec.slot * st.slotBytes, length: st.pageBytes, crc32: rec.crc };
  }

  /** A page leaves the index (the caller removed its record): its slot is released after its lease. */
  private forget(st: NsState, id: string, rec: PageRecord, now: number): void {
    this.lru.delete(id);
    this.dirtyAccess.delete(id);
    st.pages--;
    const lease = this.leases.get(id) ?? 0;
    this.leases.delete(id);
    this.releaseAt(st, rec, Math.max(lease, now));
  }

  /** Drops a stale record (an expired reservation or page) in the same way as a removal. */
  private drop(st: NsState, id: string, rec: PageRecord, now: number): void {
    this.pages.removeSync(id);
    st.reserved.delete(id);
    if (rec.s === 'c') this.forget(st, id, rec, now); else this.release(st, rec, now);
  }

  private release(st: NsState, rec: PageRecord, now: number): void { this.releaseAt(st, rec, now); }

  private releaseAt(st: NsState, rec: PageRecord, at: number): void {
    // No slot is reused within one lease of a restart: leases granted before it are unknown.
    const after = Math.max(at, this.startedAt + this.o.leaseMs);
    st.usedBytes -= st.pageBytes;
    st.heldBytes += st.pageBytes;
    this.deferred.push({ ns: st, file: rec.file, slot: rec.slot, at: after });
    if (after < this.deferredNextAt) this.deferredNextAt = after;
  }

  private housekeep(): void {
    const now = this.now();
    if (this.deferredNextAt <= now) {
      const keep: typeof this.deferred = [];
      this.deferredNextAt = Number.POSITIVE_INFINITY;
      for (const d of this.deferred) {
        if (d.at <= now) { d.ns.free.push({ file: d.file, slot: d.slot }); d.ns.heldBytes -= d.ns.pageBytes; continue; }
        keep.push(d);
        if (d.at < this.deferredNextAt) this.deferredNextAt = d.at;
      }
      this.deferred = keep;
    }
    if (this.usedBytes > this.o.highWatermark * this.o.capacityBytes) this.evict();
  }

  /** Room for `bytes` more in `st`: within its quota and the capacity, evicting LRU pages if needed. */
  private makeRoom(st: NsState, bytes: number): boolean {
    const quota = st.rec.spec.quotaBytes;
    this.housekeep();
    if (quota > 0 && st.usedBytes + bytes > quota) {
      this.evict(quota - bytes, st);
      this.housekeep();
      if (st.usedBytes + bytes > quota) return false;
    }
    // The hard bound counts slots held for leases too: they cannot be written yet.
    if (this.usedBytes + this.heldBytes + bytes > this.o.capacityBytes) {
      this.evict(Math.min(this.o.lowWatermark * this.o.capacityBytes, this.o.capacityBytes - this.heldBytes - bytes));
      this.housekeep();
      if (this.usedBytes + this.heldBytes + bytes > this.o.capacityBytes) return false;
    }
    return true;
  }

  private async allocate(st: NsState): Promise<{ file: number; slot: number }> {
    for (;;) {
      const f = st.free.pop();
      if (f !== undefined) return f;
      const last = st.files.length - 1;
      if (last >= 0 && st.nextSlot < st.files[last]!.slots) return { file: last, slot: st.nextSlot++ };
      if (st.growing === undefined) {
        st.growing = this.addFile(st).finally(() => { st.growing = undefined; });
      }
      await st.growing;
    }
  }

  private async addFile(st: NsState): Promise<void> {
    const no = st.files.length;
    const rec: FileRecord = { no, path: `${st.rec.dir}/pages-${String(no).padStart(6, '0')}.bin`, slots: st.rec.slotsPerFile };
    // Recorded first: a crash between the two leaves a record whose file recovery creates.
    this.fileTable.putSync(`${st.rec.id}/${String(no).padStart(6, '0')}`, rec);
    await this.o.files.create(rec.path, rec.slots * st.slotBytes);
    st.files.push(rec);
    st.nextSlot = 0;
  }

  private addNamespace(rec: NamespaceRecord): NsState {
    const bytes = pageBytes(rec.spec.layout);
    const st: NsState = { rec, pageBytes: bytes, slotBytes: slotBytesOf(bytes), usedBytes: 0, heldBytes: 0, reserved: new Map(), pages: 0, files: [], free: [], nextSlot: 0, growing: undefined };
    this.ns.set(rec.spec.name, st);
    return st;
  }

  private flushAccess(all: boolean): void {
    const now = this.now();
    if (this.dirtyAccess.size === 0 || (!all && now - this.lastAccessFlush < kvLimits.accessFlushMs)) return;
    this.lastAccessFlush = now;
    const ids = [...this.dirtyAccess];
    this.dirtyAccess.clear();
    this.env.transactionSync(() => {
      for (const id of ids) {
        const rec = this.pages.get(id);
        if (rec !== undefined && rec.s === 'c') this.pages.putSync(id, { ...rec, a: now });
      }
    });
  }

  private async recover(): Promise<void> {
    const now = this.now();
    for (const { value } of this.nsTable.getRange({})) this.addNamespace(value);
    for (const st of this.ns.values()) {
      await this.o.files.mkdir(st.rec.dir, st.slotBytes);
      for (const { value } of this.fileTable.getRange({ start: `${st.rec.id}/`, end: `${st.rec.id}0` })) st.files.push(value);
      // Files recorded but missing (a crash between record and create) are created; files in
      // the folder that the index does not know are removed.
      const present = new Set(await this.o.files.list(st.rec.dir));
      for (const f of st.files) if (!present.has(f.path.slice(st.rec.dir.length + 1))) await this.o.files.create(f.path, f.slots * st.slotBytes);
      const known = new Set(st.files.map((f) => f.path.slice(st.rec.dir.length + 1)));
      for (const name of present) if (!known.has(name)) await this.o.files.remove(`${st.rec.dir}/${name}`);
      const used = st.files.map((f) => new Uint8Array(f.slots));
      const stale: string[] = [];
      const committed: Array<{ id: string; a: number }> = [];
      for (const { key, value } of this.pages.getRange({ start: `${st.rec.id}/`, end: `${st.rec.id}0` })) {
        const slots = used[value.file];
        if (slots === undefined || value.slot >= slots.length || slots[value.slot] === 1) { stale.push(key); continue; }
        if (value.s === 'r' && (value.exp ?? 0) <= now) { stale.push(key); continue; }
        slots[value.slot] = 1;
        st.usedBytes += st.pageBytes;
        if (value.s === 'c') { st.pages++; committed.push({ id: key, a: value.a }); } else st.reserved.set(key, { res: value.res ?? '', exp: value.exp ?? 0 });
      }
      if (stale.length > 0) {
        this.env.transactionSync(() => { for (const id of stale) this.pages.removeSync(id); });
        this.counters.expiredReservations += stale.length;
      }
      committed.sort((x, y) => x.a - y.a);
      for (const c of committed) this.lru.set(c.id, st);
      // Every slot of every file but the last counts as allocated; unused ones become free,
      // after the restart's lease period like any other release.
      st.nextSlot = st.files.length === 0 ? 0 : st.files[st.files.length - 1]!.slots;
      used.forEach((slots, file) => slots.forEach((u, slot) => {
        if (u === 0) { st.usedBytes += st.pageBytes; this.releaseAt(st, { s: 'r', file, slot, crc: 0, t: now, pin: 0, a: now }, now); }
      }));
    }
    this.o.logger.info({ namespaces: this.ns.size, pages: this.lru.size }, 'kv index recovered');
  }
}

/** Page slots are whole chunks: the page size rounded up to the chunk alignment. */
function slotBytesOf(pageBytesValue: number): number {
  return Math.ceil(pageBytesValue / limits.chunkSizeAlignBytes) * limits.chunkSizeAlignBytes;
}

function checkKeys(keys: readonly Uint8Array[]): void {
  if (keys.length > kvLimits.keysPerRequestMax) throw flyfsError('FLYFS_ERR_LIMIT', `at most ${kvLimits.keysPerRequestMax} keys per request`);
  keys.forEach((k, i) => checkKey(k, `key ${i}`));
}

function checkSpec(s: NamespaceSpec): void {
  for (const f of ['name', 'tenant', 'model', 'kvFormat'] as const) {
    const v = s[f];
    if (typeof v !== 'string' || Buffer.byteLength(v) > kvLimits.nameBytesMax || (f === 'name' && !/^[A-Za-z0-9_.:-]+$/.test(v))) {
      throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `namespace ${f} must be a string of at most ${kvLimits.nameBytesMax} bytes${f === 'name' ? ' of letters, digits, _ . : -' : ''}`);
    }
  }
  checkLayout(s.layout);
  for (const f of ['quotaBytes', 'ttlMs'] as const) {
    if (!Number.isSafeInteger(s[f]) || s[f] < 0) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `${f} must be a non-negative integer`);
  }
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
