// The KV cache client an inference engine links: keys from tokens, prefix lookup, page get/put
// and the sparse gather. It asks the kvcache service only to resolve keys (and to reserve and
// commit puts); page bytes move between the caller's buffers and the storage servers through
// the SDK's batch I/O. Reads happen inside the read lease the service granted: a page found
// stays readable (never evicted, its slot never reused) until then, and a read that ends past
// its lease is done again.
import { crc32 } from 'node:zlib';
import { connect, type FileHandle, type FileSystem } from '../client/index.js';
import { assert, flyfsError, FlyfsError } from '../common/errors.js';
import { FramedPool } from '../common/framed-connection.js';
import { FramedEndpoint, isConnectionFailure } from '../common/framed-rpc.js';
import { callUnary, channelOptions, grpc, loadProtos } from '../common/grpc.js';
import { forEachParallel } from '../common/parallel.js';
import type { KvCacheClient } from '../proto/gen/flyfs/v1/KvCache.js';
import type { KvExtent__Output } from '../proto/gen/flyfs/v1/KvExtent.js';
import { kvLimits, type NamespaceSpec } from './index-store.js';
import { checkKey, pageKeys } from './keys.js';
import { bytesPerToken, checkPool, entryOffset, layerBytes, pageBytes, poolBase, type KvLayout, type Pool } from './layout.js';

export interface KvClientOptions {
  /** The kvcache service's gRPC address. */
  kvAddress: string;
  /** The flyfs cluster (metaserver addresses) or a connected file system. */
  cluster: string | FileSystem;
  namespace: string;
  token: string;
  deadlineMs?: number;
}

export interface PutResult {
  stored: number; existed: number; busy: number; noSpace: number;
  /** The keys of the pages given, in order. */
  keys: Buffer[];
  /** What happened to each: stored by this call, existed already, busy (another writer), or no room. */
  statuses: Array<'stored' | 'existed' | 'busy' | 'noSpace'>;
}

/** Extents and the local time (this client's clock) until which their lease holds. */
interface Resolved { extents: KvExtent__Output[]; leaseUntilMs: number }

/**
 * A read starts only with more than this share of its lease left, and is done again if it
 * ended past the lease. Lease ends are taken on this client's clock (request sent + lease
 * duration), so they hold whatever the service's clock says.
 */
const leaseStartShareMin = 0.25;
const leaseRereadsMax = 3;
/** The longest a GetEndpoints may take; gRPC serves meanwhile. */
const endpointsDeadlineMs = 2_000;
/** Page writes of one put in flight at once. */
const putWritesInflight = 16;

export function kvServiceClient(address: string): KvCacheClient {
  return new (loadProtos().flyfs.v1.KvCache)(address, grpc.credentials.createInsecure(), channelOptions) as unknown as KvCacheClient;
}

/** Creates a namespace (admin) and returns its token. */
export async function createKvNamespace(kvAddress: string, adminToken: string, spec: NamespaceSpec): Promise<{ token: string; directory: string; pageBytes: number }> {
  const c = kvServiceClient(kvAddress);
  try {
    const r = await callUnary(c, c.CreateNamespace, { adminToken, spec });
    return { token: r.token, directory: r.info?.directory ?? '', pageBytes: Number(r.info?.pageBytes ?? 0) };
  } finally {
    c.close();
  }
}

export class KvClient {
  private readonly readHandles = new Map<string, Promise<FileHandle>>();
  private readonly writeHandles = new Map<string, Promise<FileHandle>>();
  private closed = false;

  private readonly framedPool = new FramedPool(1);
  private readonly framed: FramedEndpoint;
  private readonly endpoint: { client(): KvCacheClient; forget(): void };

  private constructor(
    private readonly rpc: KvCacheClient,
    private readonly fs: FileSystem,
    private readonly ownsFs: boolean,
    private readonly auth: { namespace: string; token: string },
    readonly layout: KvLayout,
    private readonly deadlineMs: number,
  ) {
    // The service's framed RPC once GetEndpoints named it; gRPC until then (common/framed-rpc.ts).
    this.framed = new FramedEndpoint(this.framedPool, async () => (await callUnary(rpc, rpc.GetEndpoints, {}, endpointsDeadlineMs)).framedAddress);
    const definition = loadProtos().flyfs.v1.KvCache.service;
    this.endpoint = { client: () => this.framed.client(definition, this.rpc), forget: () => this.framed.forget() };
  }

  private call<Req, Res>(method: (c: KvCacheClient) => (req: Req, cb: grpc.requestCallback<Res>) => grpc.ClientUnaryCall, req: Req): Promise<Res> {
    return callRetrying(this.endpoint, method, req, this.deadlineMs);
  }

  static async connect(o: KvClientOptions): Promise<KvClient> {
    const rpc = kvServiceClient(o.kvAddress);
    const deadlineMs = o.deadlineMs ?? 30_000;
    const auth = { namespace: o.namespace, token: o.token };
    let fs: FileSystem | undefined;
    try {
      const stats = JSON.parse((await callUnary(rpc, rpc.Stats, { auth, adminToken: '' }, deadlineMs)).json) as { namespaces: Array<{ layout: KvLayout }> };
      const layout = stats.namespaces[0]?.layout;
      if (layout === undefined) throw flyfsError('FLYFS_ERR_NOT_FOUND', `namespace ${o.namespace} has no layout`);
      fs = typeof o.cluster === 'string' ? await connect(o.cluster) : o.cluster;
      return new KvClient(rpc, fs, typeof o.cluster === 'string', auth, layout, deadlineMs);
    } catch (err) {
      rpc.close();
      if (fs !== undefined && typeof o.cluster === 'string') await fs.close();
      throw err;
    }
  }

  get pageBytes(): number { return pageBytes(this.layout); }

  keysOf(tokens: ArrayLike<number>): Buffer[] { return pageKeys(tokens, this.layout.pageTokens); }

  /** How many leading pages of `tokens` are cached and loadable (leased); their keys. */
  async lookupPrefix(tokens: ArrayLike<number>): Promise<{ keys: Buffer[]; loadable: number; leaseUntilMs: number }> {
    const keys = this.keysOf(tokens);
    let loadable = 0;
    let leaseUntilMs = 0;
    for (let at = 0; at < keys.length; at += kvLimits.keysPerRequestMax) {
      const part = keys.slice(at, at + kvLimits.keysPerRequestMax);
      const sent = Date.now();
      const r = await this.call((s) => s.Lookup, { auth: this.auth, keys: part });
      loadable += r.loadable;
      leaseUntilMs = leaseUntilMs === 0 ? sent + Number(r.leaseMs) : Math.min(leaseUntilMs, sent + Number(r.leaseMs));
      if (r.loadable < part.length) break;
    }
    return { keys, loadable, leaseUntilMs };
  }

  /** Leading keys cached and loadable; `leaseUntilMs` is on this client's clock. */
  async lookup(keys: readonly Uint8Array[]): Promise<{ loadable: number; leaseUntilMs: number }> {
    const sent = Date.now();
    const r = await this.call((s) => s.Lookup, { auth: this.auth, keys: [...keys] });
    return { loadable: r.loadable, leaseUntilMs: sent + Number(r.leaseMs) };
  }

  private async resolve(keys: readonly Uint8Array[]): Promise<Resolved> {
    const extents: KvExtent__Output[] = [];
    let leaseUntilMs = Number.POSITIVE_INFINITY;
    for (let at = 0; at < keys.length; at += kvLimits.keysPerRequestMax) {
      const sent = Date.now();
      const r = await this.call((s) => s.Resolve, { auth: this.auth, keys: keys.slice(at, at + kvLimits.keysPerRequestMax) });
      extents.push(...r.extents);
      leaseUntilMs = Math.min(leaseUntilMs, sent + Number(r.leaseMs));
    }
    return { extents, leaseUntilMs };
  }

  /**
   * Pages by key: for each, the bytes of `layers` (default all) of `pool` (default both pools,
   * i.e. the whole page), layer after layer; null for a key that is not cached. Whole pages are
   * checked against their committed CRC-32.
   */
  async getPages(keys: readonly Uint8Array[], o: { pool?: Pool | 'both'; layers?: readonly number[] } = {}): Promise<Array<Buffer | null>> {
    keys.forEach((k, i) => checkKey(k, `key ${i}`));
    const whole = (o.pool ?? 'both') === 'both' && o.layers === undefined;
    const pools: Pool[] = o.pool === undefined || o.pool === 'both' ? ['latent', 'indexer'] : [checkPool(o.pool)];
    const layers = o.layers ?? Array.from({ length: this.layout.layers }, (_, l) => l);
    for (const l of layers) if (!Number.isSafeInteger(l) || l < 0 || l >= this.layout.layers) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `layer ${l} outside 0..${this.layout.layers - 1}`);
    // Ranges inside a page: runs of adjacent layers per pool.
    const ranges: Array<{ at: number; length: number }> = [];
    for (const pool of pools) {
      const lb = layerBytes(this.layout, pool);
      for (const l of layers) {
        const at = poolBase(this.layout, pool) + l * lb;
        const last = ranges[ranges.length - 1];
        if (last !== undefined && last.at + last.length === at) last.length += lb; else ranges.push({ at, length: lb });
      }
    }
    const perPage = ranges.reduce((n, r) => n + r.length, 0);
    return this.withLease(keys, async (res) => {
      const out: Array<Buffer | null> = keys.map((_, i) => (res.extents[i]!.found ? Buffer.allocUnsafe(perPage) : null));
      const reads: Array<{ path: string; position: number; into: Buffer }> = [];
      keys.forEach((_, i) => {
        const e = res.extents[i]!;
        const buf = out[i];
        if (!e.found || !buf) return;
        let o2 = 0;
        for (const r of ranges) { reads.push({ path: e.path, position: Number(e.offset) + r.at, into: buf.subarray(o2, o2 + r.length) }); o2 += r.length; }
      });
      await this.readAll(reads);
      if (whole) {
        keys.forEach((_, i) => {
          const b = out[i];
          if (b && crc32(b) !== res.extents[i]!.crc32) throw flyfsError('FLYFS_ERR_CORRUPT', `page ${i}: CRC-32 of the bytes read differs from the committed one`);
        });
      }
      return out;
    });
  }

  /**
   * The sparse gather: for one layer of `pool`, the entries of exactly the tokens `indices`
   * name (`page * pageTokens + slot` into `keys`, −1 for none: zeros), packed in order into one
   * buffer. Only those bytes are read; tokens adjacent in both the output and the page are read
   * as one range, and the ranges of all pages go to the storage servers as one batch.
   */
  async gatherTokens(keys: readonly Uint8Array[], layer: number, indices: Int32Array, pool: Pool = 'latent', into?: Uint8Array): Promise<Buffer> {
    keys.forEach((k, i) => checkKey(k, `key ${i}`));
    checkPool(pool);
    const L = this.layout;
    if (!Number.isSafeInteger(layer) || layer < 0 || layer >= L.layers) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `layer ${layer} outside 0..${L.layers - 1}`);
    if (!(indices instanceof Int32Array)) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', 'indices must be an Int32Array');
    if (indices.length > gatherTokensMax) throw flyfsError('FLYFS_ERR_LIMIT', `at most ${gatherTokensMax} tokens per gather`);
    const bpt = bytesPerToken(L, pool);
    const tokens = keys.length * L.pageTokens;
    const outBytes = indices.length * bpt;
    if (into !== undefined && into.byteLength < outBytes) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `the output buffer holds ${into.byteLength} bytes; the gather needs ${outBytes}`);
    const out = into === undefined ? Buffer.alloc(outBytes) : Buffer.from(into.buffer, into.byteOffset, outBytes);
    // Runs: consecutive outputs that are consecutive slots of one page.
    const runs: Array<{ page: number; slot: number; count: number; outAt: number }> = [];
    const used = new Set<number>();
    for (let j = 0; j < indices.length; j++) {
      const idx = indices[j]!;
      if (idx === -1) { out.fill(0, j * bpt, (j + 1) * bpt); continue; }
      if (idx < -1 || idx >= tokens) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `indices[${j}] = ${idx} is outside -1..${tokens - 1} (${keys.length} pages of ${L.pageTokens})`);
      const page = Math.floor(idx / L.pageTokens);
      const slot = idx % L.pageTokens;
      used.add(page);
      const last = runs[runs.length - 1];
      if (last !== undefined && last.page === page && last.slot + last.count === slot && last.outAt + last.count * bpt === j * bpt) last.count++;
      else runs.push({ page, slot, count: 1, outAt: j * bpt });
    }
    if (runs.length === 0) return out;
    const pages = [...used].sort((a, b) => a - b);
    const slotOf = new Map(pages.map((p, k) => [p, k]));
    await this.withLease(pages.map((p) => keys[p]!), async (res) => {
      const missing = pages.filter((_, k) => !res.extents[k]!.found);
      if (missing.length > 0) throw flyfsError('FLYFS_ERR_NOT_FOUND', `pages ${missing.slice(0, 8).join(', ')}${missing.length > 8 ? ', …' : ''} are not cached`);
      const reads = runs.map((r) => {
        const e = res.extents[slotOf.get(r.page)!]!;
        return { path: e.path, position: Number(e.offset) + entryOffset(L, pool, layer, r.slot), into: out.subarray(r.outAt, r.outAt + r.count * bpt) };
      });
      await this.readAll(reads);
    });
    return out;
  }

  /** Stores the whole pages of `tokens` whose bytes `pages` gives (page i of the prefix; fewer is fine). */
  async putPages(tokens: ArrayLike<number>, pages: readonly Uint8Array[]): Promise<PutResult> {
    const keys = this.keysOf(tokens);
    if (pages.length > keys.length) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `${pages.length} pages but only ${keys.length} whole pages of tokens`);
    const pb = this.pageBytes;
    pages.forEach((p, i) => { if (p.byteLength !== pb) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `page ${i} is ${p.byteLength} bytes; this namespace's pages are ${pb}`); });
    const result: PutResult = { stored: 0, existed: 0, busy: 0, noSpace: 0, keys: keys.slice(0, pages.length), statuses: [] };
    for (let at = 0; at < pages.length; at += kvLimits.keysPerRequestMax) {
      const part = keys.slice(at, Math.min(pages.length, at + kvLimits.keysPerRequestMax));
      const r = await this.call((s) => s.Reserve, { auth: this.auth, keys: part });
      const mine: Array<{ key: Buffer; data: Uint8Array; extent: KvExtent__Output; k: number }> = [];
      r.pages.forEach((p, k) => {
        if (p.status === 'RESERVED' && p.extent) mine.push({ key: part[k]!, data: pages[at + k]!, extent: p.extent, k: at + k });
        else if (p.status === 'EXISTS') { result.existed++; result.statuses[at + k] = 'existed'; }
        else if (p.status === 'BUSY') { result.busy++; result.statuses[at + k] = 'busy'; }
        else { result.noSpace++; result.statuses[at + k] = 'noSpace'; }
      });
      if (mine.length === 0) continue;
      try {
        await forEachParallel(mine.length, putWritesInflight, async (k) => {
          const m = mine[k]!;
          const h = await this.handle(this.writeHandles, m.extent.path, 'r+');
          await h.write(m.data, 0, m.data.byteLength, Number(m.extent.offset));
        });
        const c = await this.call((s) => s.Commit, {
          auth: this.auth, reservationId: r.reservationId, keys: mine.map((m) => m.key), crc32: mine.map((m) => crc32(m.data)),
        });
        result.stored += c.committed;
        for (const m of mine) result.statuses[m.k] = 'stored';
      } catch (err) {
        await this.call((s) => s.Abort, { auth: this.auth, reservationId: r.reservationId }).catch(() => undefined);
        throw err;
      }
    }
    return result;
  }

  async remove(keys: readonly Uint8Array[]): Promise<number> {
    return (await this.call((s) => s.Remove, { auth: this.auth, keys: [...keys] })).count;
  }

  async pin(keys: readonly Uint8Array[], untilMs: number): Promise<number> {
    return (await this.call((s) => s.Pin, { auth: this.auth, keys: [...keys], untilMs })).count;
  }

  async stats(): Promise<Record<string, unknown>> {
    return JSON.parse((await this.call((s) => s.Stats, { auth: this.auth, adminToken: '' })).json) as Record<string, unknown>;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const m of [this.readHandles, this.writeHandles]) {
      for (const h of m.values()) await (await h.catch(() => undefined))?.close().catch(() => undefined);
      m.clear();
    }
    this.rpc.close();
    this.framedPool.close();
    if (this.ownsFs) await this.fs.close();
  }

  /** Resolves `keys`, runs `read` while the lease holds, and runs it again if it ended past the lease. */
  private async withLease<T>(keys: readonly Uint8Array[], read: (r: Resolved) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const asked = Date.now();
      const res = await this.resolve(keys);
      assert(res.extents.length === keys.length, 'an extent per key');
      if (Date.now() < res.leaseUntilMs - leaseStartShareMin * (res.leaseUntilMs - asked)) {
        const value = await read(res);
        if (Date.now() < res.leaseUntilMs) return value;
      }
      if (attempt >= leaseRereadsMax) throw flyfsError('FLYFS_ERR_TIMEOUT', 'reads did not finish within their read lease');
    }
  }

  private handle(cache: Map<string, Promise<FileHandle>>, path: string, flags: 'r' | 'r+'): Promise<FileHandle> {
    let h = cache.get(path);
    if (h === undefined) {
      h = this.fs.open(path, flags);
      h.catch(() => { if (cache.get(path) === h) cache.delete(path); });
      cache.set(path, h);
    }
    return h;
  }

  private async readAll(reads: ReadonlyArray<{ path: string; position: number; into: Buffer }>): Promise<void> {
    if (reads.length === 0) return;
    const handles = await Promise.all(reads.map((r) => this.handle(this.readHandles, r.path, 'r')));
    for (let at = 0; at < reads.length; at += batchItemsMax) {
      const b = this.fs.batch();
      for (let k = at; k < Math.min(reads.length, at + batchItemsMax); k++) {
        const r = reads[k]!;
        b.read(handles[k]!, r.into, 0, r.into.length, r.position, k);
      }
      for await (const c of b.submit()) {
        if (c.error !== undefined) throw c.error;
        const r = reads[c.tag as number]!;
        if (c.bytes !== r.into.length) throw flyfsError('FLYFS_ERR_CORRUPT', `${r.path}: read ${c.bytes} of ${r.into.length} bytes at ${r.position}`);
      }
    }
  }
}

/** Backoff between retries of a refused or unanswered service call. */
const retryBackoffMs = { first: 25, max: 500 } as const;

/**
 * A service call retried on retryable errors (the service restarting, a lost connection) until
 * `deadlineMs` has passed; then the last error. Every call the client makes is safe to repeat:
 * lookups and resolves read; a repeated commit of a committed page is accepted; a repeated
 * reserve finds its first reservation's pages busy until they expire.
 */
async function callRetrying<Req, Res>(
  endpoint: { client(): KvCacheClient; forget(): void },
  method: (c: KvCacheClient) => (req: Req, cb: grpc.requestCallback<Res>) => grpc.ClientUnaryCall, req: Req, deadlineMs: number,
): Promise<Res> {
  const until = Date.now() + deadlineMs;
  for (let wait: number = retryBackoffMs.first; ; wait = Math.min(retryBackoffMs.max, wait * 2)) {
    try {
      const c = endpoint.client();
      return await callUnary(c as unknown as grpc.Client, method(c) as never, req, Math.max(1, until - Date.now())) as Res;
    } catch (err) {
      if (isConnectionFailure(err)) endpoint.forget();
      if (!(err instanceof FlyfsError) || !err.retryable || Date.now() + wait >= until) throw err;
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}

/** Tokens one gather may ask for. */
export const gatherTokensMax = 1 << 20;
/** Items of one I/O batch a KV read submits. */
const batchItemsMax = 8192;
