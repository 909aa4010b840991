// The namespace store: validates domain arguments, runs each mutation through the committer it
// is given (the metadata chain in a metaserver), and remembers (clientId, requestId) results so
// retries are idempotent. Reads see committed state. It knows nothing of gRPC; the service
// converts wire messages before calling it.
import { FlyfsError, flyfsError } from '../common/errors.js';
import { ROOT_INODE_ID, inodeId as toInodeId, sessionId as toSessionId, type InodeId } from '../common/ids.js';
import { validateChunkSize, validateRange } from '../common/layout.js';
import { limits } from '../common/limits.js';
import { splitPath, validateName } from '../common/names.js';
import { metaserverLimits } from './config.js';
import { openMetaDb, type MetaDb } from './db.js';
import { nextCounter, savepoint, type MetaTables } from './tables.js';
import { closeOp } from './ops/close.js';
import { linkOp } from './ops/link.js';
import { mkdirOp } from './ops/mkdir.js';
import { isWriteOpen, openOp, type OpenResult } from './ops/open.js';
import { getInode, resolveInode } from './ops/paths.js';
import { pruneSessionsOp, sessionClients } from './ops/prune-sessions.js';
import { readdirOp, type ReaddirPage } from './ops/readdir.js';
import { readlinkOp } from './ops/readlink.js';
import { renameOp } from './ops/rename.js';
import { rmdirOp } from './ops/rmdir.js';
import { setattrOp } from './ops/setattr.js';
import { symlinkOp } from './ops/symlink.js';
import { syncOp } from './ops/sync.js';
import { truncateOp, truncatePlan, truncateTarget } from './ops/truncate.js';
import { unlinkOp } from './ops/unlink.js';
import { ClientLiveness } from './session-pruner.js';
import {
  OpenFlags, openFlagsAll,
  type AttrChange, type ChainTableSource, type ChunkRemover, type ChunkTrimmer, type GcEntry, type InodeRecord, type LayoutPolicy, type RequestContext,
} from './types.js';

export interface MetaStoreOptions {
  rootChunkSizeBytes: number;
  rootStripe: number;
  now?: () => number;
  /** Chain tables for new files' layouts; set later with setChainTables when the cluster map shares the store. */
  chainTables?: ChainTableSource;
  /** Chunk removal for open(TRUNCATE) and truncate; without one truncating a file with chunks fails UNAVAILABLE. */
  removeChunks?: ChunkRemover;
  /** Trims the chunk holding a truncated file's new end; without one such a truncate fails UNAVAILABLE. */
  trimChunk?: ChunkTrimmer;
}

interface RequestRecord { seq: number; op: string; ok: boolean; value: unknown; code?: string; message?: string }

const noTables: ChainTableSource = { chainTable: () => undefined };

export class MetaStore {
  readonly db: MetaDb;
  private readonly now: () => number;
  private tables: ChainTableSource;
  private remover: ChunkRemover | undefined;
  private trimmer: ChunkTrimmer | undefined;
  /** When each client holding sessions was last heard (memory only: a restart hears everyone anew). */
  readonly liveness = new ClientLiveness(metaserverLimits.keepAliveClientsMax);

  private constructor(db: MetaDb, private readonly options: MetaStoreOptions) {
    this.db = db;
    this.now = options.now ?? Date.now;
    this.tables = options.chainTables ?? noTables;
    this.remover = options.removeChunks;
    this.trimmer = options.trimChunk;
  }

  /** A store over `db`; the namespace gets its root once `ensureRoot` runs on a head. */
  static create(db: MetaDb, options: MetaStoreOptions): MetaStore {
    validateChunkSize(options.rootChunkSizeBytes);
    return new MetaStore(db, options);
  }

  /** A store of its own over `dataDir`, unreplicated (unit tests of the namespace alone). */
  static async open(options: MetaStoreOptions & { dataDir: string }): Promise<MetaStore> {
    const db = openMetaDb(options.dataDir);
    const store = MetaStore.create(db, options);
    store.closeDb = () => db.close();
    await store.ensureRoot();
    return store;
  }

  private closeDb: (() => Promise<void>) | undefined;

  /** Closes the database if this store opened it. */
  async close(): Promise<void> { await this.closeDb?.(); }

  /** Creates the root directory if it is missing (idempotent; a new head runs it). */
  async ensureRoot(): Promise<void> {
    if (getInode(this.db, ROOT_INODE_ID) !== undefined) return;
    const t = this.now();
    const o = this.options;
    await this.db.commit((db) => {
      if (getInode(db, ROOT_INODE_ID) !== undefined) return;
      const root: InodeRecord = {
        inodeId: ROOT_INODE_ID, kind: 'dir', mode: 0o755, nlink: 2, length: 0, uid: 0, gid: 0, writeSessions: 0,
        ctimeMs: t, mtimeMs: t, atimeMs: t, birthtimeMs: t, parentId: ROOT_INODE_ID,
        layoutPolicy: { chunkSizeBytes: o.rootChunkSizeBytes, stripe: Math.min(o.rootStripe, limits.stripeMax), chainTableId: 1 },
      };
      db.inodes.putSync(ROOT_INODE_ID, root);
      db.counters.putSync('inode', 1);
    });
  }

  setChainTables(tables: ChainTableSource): void { this.tables = tables; }
  setChunkRemover(remover: ChunkRemover): void { this.remover = remover; }
  setChunkTrimmer(trimmer: ChunkTrimmer | undefined): void { this.trimmer = trimmer; }


  // ---- reads ----

  /** The inode a path names; with noFollow (lstat) a symlink in the last component is not followed. */
  stat(path: string, options: { noFollow?: boolean } = {}): InodeRecord {
    const parts = splitPath(path);
    return resolveInode(this.db, parts, path, { followLast: options.noFollow !== true });
  }

  readlink(path: string): string {
    return readlinkOp(this.db, { parts: splitPath(path), path });
  }

  statInode(id: InodeId): InodeRecord | undefined { return getInode(this.db, id); }

  readdir(path: string, options: { cursor?: string; limit?: number } = {}): ReaddirPage {
    const parts = splitPath(path);
    const cursor = options.cursor ?? '';
    if (cursor !== '') validateName(cursor, path);
    const limit = checkCount('limit', options.limit ?? 0);
    return readdirOp(this.db, { parts, path, cursor, limit: limit === 0 ? limits.readdirPageMax : Math.min(limit, limits.readdirPageMax) });
  }

  inodeCount(): number { return this.db.inodes.getCount(); }

  // ---- mutations ----

  async mkdir(path: string, options: { mode?: number; recursive?: boolean; layoutPolicy?: Partial<LayoutPolicy>; ctx?: RequestContext } = {}): Promise<InodeRecord> {
    const parts = splitPath(path);
    const policy = this.checkPolicy(options.layoutPolicy);
    const mode = checkMode(options.mode, 0o755);
    return this.run('mkdir', options.ctx, (t) => mkdirOp(t, { parts, path, mode, recursive: options.recursive ?? false, policy, nowMs: this.now() }));
  }

  async open(path: string, options: { flags: number; mode?: number; ctx?: RequestContext }): Promise<OpenResult> {
    const parts = splitPath(path);
    const flags = options.flags;
    if (!Number.isSafeInteger(flags) || flags < 0 || (flags & ~openFlagsAll) !== 0) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `open flags ${flags}`, { path });
    if ((flags & OpenFlags.truncate) !== 0 && !isWriteOpen(flags)) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', 'truncate needs a write open', { path });
    const mode = checkMode(options.mode, 0o644);
    const cached = this.cachedResult<OpenResult>('open', options.ctx);
    if (cached !== undefined) return cached;
    if ((flags & OpenFlags.truncate) !== 0) await this.removeChunksForTruncate(parts, path);
    const clientId = options.ctx?.clientId ?? '';
    // Opening a session is hearing its client: its first KeepAlive comes one interval later,
    // and a client quiet for most of a timeout must not lose the session it opens now.
    if (clientId !== '' && isWriteOpen(flags)) this.keepAlive(clientId);
    return this.run('open', options.ctx, (t) => openOp(t, { parts, path, flags, mode, clientId, nowMs: this.now(), tables: this.tables }));
  }

  async rename(fromPath: string, toPath: string, options: { ctx?: RequestContext } = {}): Promise<Record<string, never>> {
    const from = splitPath(fromPath);
    const to = splitPath(toPath);
    return this.run('rename', options.ctx, (t) => renameOp(t, { from, to, fromPath, toPath, nowMs: this.now() }));
  }

  async unlink(path: string, options: { ctx?: RequestContext } = {}): Promise<Record<string, never>> {
    const parts = splitPath(path);
    return this.run('unlink', options.ctx, (t) => unlinkOp(t, { parts, path, nowMs: this.now() }));
  }

  async rmdir(path: string, options: { ctx?: RequestContext } = {}): Promise<Record<string, never>> {
    const parts = splitPath(path);
    return this.run('rmdir', options.ctx, (t) => rmdirOp(t, { parts, path, nowMs: this.now() }));
  }

  async closeFile(a: { inodeId: number; sessionId: number; length: number; lengthSet: boolean; ctx?: RequestContext }): Promise<InodeRecord> {
    const id = checkCount('inode id', a.inodeId);
    const sid = checkCount('session id', a.sessionId);
    if (a.lengthSet) validateRange(0, a.length);
    return this.run('close', a.ctx, (t) => closeOp(t, {
      inodeId: toInodeId(id), sessionId: toSessionId(sid), length: a.length, lengthSet: a.lengthSet, nowMs: this.now(),
    }));
  }

  /** fsync of a write handle: the file's length becomes at least `length`; the session stays. */
  async sync(a: { inodeId: number; sessionId: number; length: number; ctx?: RequestContext }): Promise<InodeRecord> {
    const id = checkId('inode id', a.inodeId);
    const sid = checkId('session id', a.sessionId);
    validateRange(0, a.length);
    return this.run('sync', a.ctx, (t) => syncOp(t, { inodeId: toInodeId(id), sessionId: toSessionId(sid), length: a.length, nowMs: this.now() }));
  }

  async symlink(target: string, path: string, options: { ctx?: RequestContext } = {}): Promise<InodeRecord> {
    const parts = splitPath(path);
    checkSymlinkTarget(target, path);
    return this.run('symlink', options.ctx, (t) => symlinkOp(t, { target, parts, path, nowMs: this.now() }));
  }

  async link(existingPath: string, newPath: string, options: { ctx?: RequestContext } = {}): Promise<InodeRecord> {
    const from = splitPath(existingPath);
    const to = splitPath(newPath);
    return this.run('link', options.ctx, (t) => linkOp(t, { from, to, fromPath: existingPath, toPath: newPath, nowMs: this.now() }));
  }

  /**
   * Sets a file's length exactly, by path (symlinks followed) or by inode id (not 0). The chunks
   * past the new end are trimmed on the storage servers before the length is committed.
   */
  async truncate(a: { path: string; inodeId: number; length: number; ctx?: RequestContext }): Promise<InodeRecord> {
    const id = checkCount('inode id', a.inodeId);
    const parts = id === 0 ? splitPath(a.path) : [];
    validateRange(0, a.length, a.path);
    const cached = this.cachedResult<InodeRecord>('truncate', a.ctx);
    if (cached !== undefined) return cached;
    const inode = truncateTarget(this.db, { parts, path: a.path, inodeId: id === 0 ? 0 : toInodeId(id) });
    await this.cutChunks(inode, a.length, a.path);
    return this.run('truncate', a.ctx, (t) => truncateOp(t, { inodeId: inode.inodeId, length: a.length, nowMs: this.now() }));
  }

  /** chmod, chown, utimes: by path (symlinks followed) or by inode id (not 0). */
  async setattr(a: { path: string; inodeId: number; change: AttrChange; ctx?: RequestContext }): Promise<InodeRecord> {
    const id = checkCount('inode id', a.inodeId);
    const parts = id === 0 ? splitPath(a.path) : [];
    const change = checkAttrChange(a.change);
    return this.run('setattr', a.ctx, (t) => setattrOp(t, { parts, path: a.path, inodeId: id === 0 ? 0 : toInodeId(id), change, nowMs: this.now() }));
  }

  // ---- write sessions of live and dead clients ----

  /** A client holding sessions says it is alive. */
  keepAlive(clientId: string): void {
    if (typeof clientId !== 'string' || clientId === '') throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', 'empty client id');
    if (Buffer.byteLength(clientId) > metaserverLimits.clientIdBytesMax) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', 'client id too long');
    this.liveness.heard(clientId, this.now());
  }

  /** The clients that hold write sessions now. */
  sessionClients(): Set<string> { return sessionClients(this.db); }

  /** Ends every session of these clients, finishing the deletions they held back. */
  pruneSessions(clientIds: readonly string[]): Promise<{ pruned: number }> {
    return this.run('prune-sessions', undefined, (t) => pruneSessionsOp(t, { clientIds, nowMs: this.now() }));
  }

  // ---- GC queue ----

  gcEntries(limit: number): GcEntry[] {
    return [...this.db.gcQueue.getRange({ limit })].map((e) => e.value as GcEntry);
  }

  gcCount(): number { return this.db.gcQueue.getCount(); }

  /** Records the outcome of one attempt: the chains still left (none = done). */
  gcUpdate(entry: GcEntry, chainsLeft: readonly number[], nextAttemptMs: number): Promise<void> {
    return this.db.commit((t) => {
      if (t.gcQueue.get(entry.seq) === undefined) return;
      if (chainsLeft.length === 0) t.gcQueue.removeSync(entry.seq);
      else t.gcQueue.putSync(entry.seq, { ...entry, chains: [...chainsLeft], attempts: entry.attempts + 1, nextAttemptMs });
    });
  }

  // ---- internals ----

  private async removeChunksForTruncate(parts: readonly string[], path: string): Promise<void> {
    let inode: InodeRecord;
    try { inode = resolveInode(this.db, parts, path); } catch (err) {
      if (err instanceof FlyfsError && err.code === 'FLYFS_ERR_NOT_FOUND') return; // the open will create it (or fail)
      throw err;
    }
    if (inode.kind !== 'file') return;
    await this.cutChunks(inode, 0, path);
  }

  /** Storage I/O of a truncate, before its length is committed: trims the new end's chunk, removes those past it. */
  private async cutChunks(inode: InodeRecord, length: number, path: string): Promise<void> {
    const layout = inode.layout;
    if (layout === undefined) return;
    const plan = truncatePlan(layout, inode.length, length);
    const remover = this.remover;
    const trimmer = this.trimmer;
    if (remover === undefined) throw flyfsError('FLYFS_ERR_UNAVAILABLE', 'no chunk remover for truncate', { path });
    if (plan.trim !== undefined && trimmer === undefined) throw flyfsError('FLYFS_ERR_UNAVAILABLE', 'no chunk trimmer for truncate', { path });
    const jobs = layout.chains.map((chainId) => remover({ inodeId: inode.inodeId, chainId, fromIndex: plan.removeFromIndex }));
    if (plan.trim !== undefined) jobs.push(trimmer!({ inodeId: inode.inodeId, ...plan.trim }));
    try {
      await Promise.all(jobs);
    } catch (err) {
      throw flyfsError('FLYFS_ERR_UNAVAILABLE', `truncate could not cut chunks: ${(err as Error).message}`, { path, cause: err });
    }
  }

  private checkPolicy(p: Partial<LayoutPolicy> | undefined): LayoutPolicy {
    const chunkSizeBytes = checkCount('chunk size', p?.chunkSizeBytes ?? 0);
    const stripe = checkCount('stripe', p?.stripe ?? 0);
    const chainTableId = checkCount('chain table id', p?.chainTableId ?? 0);
    if (chunkSizeBytes !== 0) validateChunkSize(chunkSizeBytes);
    if (stripe > limits.stripeMax) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `stripe ${stripe} above ${limits.stripeMax}`);
    if (chainTableId !== 0 && this.tables.chainTable(chainTableId) === undefined) {
      throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `no chain table ${chainTableId}`);
    }
    return { chunkSizeBytes, stripe, chainTableId };
  }

  /** Runs a namespace operation as a mutation, against the tables the commit hands it. */
  private run<T>(op: string, ctx: RequestContext | undefined, fn: (t: MetaTables) => T): Promise<T> {
    return this.mutate(op, ctx, fn);
  }

  private requestKey(ctx: RequestContext | undefined): [string, number] | undefined {
    if (ctx === undefined || ctx.clientId === '' || ctx.requestId === 0) return undefined;
    if (Buffer.byteLength(ctx.clientId) > metaserverLimits.clientIdBytesMax) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', 'client id too long');
    checkCount('request id', ctx.requestId);
    return [ctx.clientId, ctx.requestId];
  }

  private cachedResult<T>(op: string, ctx: RequestContext | undefined): T | undefined {
    const key = this.requestKey(ctx);
    if (key === undefined) return undefined;
    const rec = this.db.requests.get(key) as RequestRecord | undefined;
    return rec === undefined ? undefined : replay<T>(rec, op);
  }

  /** Runs `fn` in the group commit; with a request id, records its result (or its permanent error). */
  private async mutate<T>(op: string, ctx: RequestContext | undefined, fn: (t: MetaTables) => T): Promise<T> {
    const key = this.requestKey(ctx);
    if (key === undefined) return this.db.commit(fn);
    const outcome = await this.db.commit((t): { ok: true; value: T } | { ok: false; err: unknown } => {
      // Seen also when the first attempt is still uncommitted in the log (the head's view holds it).
      const prior = t.requests.get(key) as RequestRecord | undefined;
      if (prior !== undefined) return { ok: true, value: replay<T>(prior, op) };
      let rec: RequestRecord;
      let result: { ok: true; value: T } | { ok: false; err: unknown };
      try {
        // A failing operation leaves none of its writes; its failure is remembered below.
        const value = savepoint(t, () => fn(t));
        result = { ok: true, value };
        rec = { seq: 0, op, ok: true, value };
      } catch (err) {
        // Retryable failures are not remembered: the retry must run again.
        if (!(err instanceof FlyfsError) || err.retryable) return { ok: false, err };
        result = { ok: false, err };
        rec = { seq: 0, op, ok: false, value: null, code: err.code, message: err.message };
      }
      remember(t, key, rec);
      return result;
    });
    if (!outcome.ok) throw outcome.err;
    return outcome.value;
  }

}

function remember(t: MetaTables, key: [string, number], rec: RequestRecord): void {
  const seq = nextCounter(t, 'request');
  t.requests.putSync(key, { ...rec, seq });
  t.requestOrder.putSync(seq, key);
  const oldest = seq - metaserverLimits.requestCacheEntriesMax;
  if (oldest > 0) {
    const old = t.requestOrder.get(oldest) as [string, number] | undefined;
    if (old !== undefined) { t.requests.removeSync(old); t.requestOrder.removeSync(oldest); }
  }
}

function replay<T>(rec: RequestRecord, op: string): T {
  if (rec.op !== op) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `request id already used by ${rec.op}`);
  if (rec.ok) return rec.value as T;
  const err = flyfsError((rec.code ?? 'FLYFS_ERR_INTERNAL') as FlyfsError['code']);
  if (rec.message !== undefined) err.message = rec.message;
  throw err;
}

function checkCount(name: string, n: number): number {
  if (!Number.isSafeInteger(n) || n < 0) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `${name} ${n}`);
  return n;
}

function checkId(name: string, n: number): number {
  if (checkCount(name, n) === 0) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `${name} 0`);
  return n;
}

/** As Linux: an empty target is ENOENT; a target is a path's worth of bytes without NUL. */
function checkSymlinkTarget(target: string, path: string): void {
  if (typeof target !== 'string' || target === '') throw flyfsError('FLYFS_ERR_NOT_FOUND', 'empty symlink target', { path });
  if (target.includes('\0')) throw flyfsError('FLYFS_ERR_BAD_NAME', 'symlink target contains NUL', { path });
  const bytes = Buffer.byteLength(target);
  if (bytes > limits.pathBytesMax) throw flyfsError('FLYFS_ERR_NAME_TOO_LONG', `symlink target of ${bytes} bytes, at most ${limits.pathBytesMax}`, { path });
}

const idMax = 0xffff_ffff;

function checkAttrChange(c: AttrChange): AttrChange {
  const out: { -readonly [K in keyof AttrChange]: number } = {};
  if (c.mode !== undefined) {
    if (!Number.isSafeInteger(c.mode) || c.mode < 0 || c.mode > 0o7777) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `mode ${c.mode}`);
    out.mode = c.mode;
  }
  for (const key of ['uid', 'gid'] as const) {
    const v = c[key];
    if (v === undefined) continue;
    if (!Number.isSafeInteger(v) || v < 0 || v > idMax) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `${key} ${v}`);
    out[key] = v;
  }
  for (const key of ['atimeMs', 'mtimeMs'] as const) {
    const v = c[key];
    if (v === undefined) continue;
    if (!Number.isSafeInteger(v) || v < 0 || v > limits.timeMsMax) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `${key} ${v}`);
    out[key] = v;
  }
  return out;
}

function checkMode(mode: number | undefined, fallback: number): number {
  if (mode === undefined || mode === 0) return fallback;
  if (!Number.isSafeInteger(mode) || mode < 0 || mode > 0o7777) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `mode ${mode}`);
  return mode;
}

export type { OpenResult, ReaddirPage };
