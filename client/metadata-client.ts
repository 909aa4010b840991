// The client's side of the metaserver: Metadata and Management over gRPC, converting wire
// messages to the client's domain types at the edge. The metaservers form a chain: writes go to
// its head, reads to a replica serving committed state. Retryable failures (a head change,
// NOT_HEAD with a hint of the new head, a restarting metaserver) are retried across the given
// addresses within the deadline, with the same request id, so a retried mutation applies once.
import { callUnary, grpc, loadProtos, channelOptions } from '../common/grpc.js';
import { FlyfsError, flyfsError, isErrorCode } from '../common/errors.js';
import { limits } from '../common/limits.js';
import type { FileLayout } from '../common/layout.js';
import type { MetadataClient as GrpcMetadataClient } from '../proto/gen/flyfs/v1/Metadata.js';
import type { ManagementClient as GrpcManagementClient } from '../proto/gen/flyfs/v1/Management.js';
import type { Inode__Output } from '../proto/gen/flyfs/v1/Inode.js';
import type { RoutingInfo__Output } from '../proto/gen/flyfs/v1/RoutingInfo.js';
import type { DirEntry__Output } from '../proto/gen/flyfs/v1/DirEntry.js';
import type { MutateOp } from '../proto/gen/flyfs/v1/MutateOp.js';
import type { StatRequest } from '../proto/gen/flyfs/v1/StatRequest.js';
import { FramedPool } from '../common/framed-connection.js';
import { FramedEndpoint, isConnectionFailure } from '../common/framed-rpc.js';
import { TurnBatcher } from './turn-batcher.js';

/** What a mutation answers: the inode (mkdir, open, close) and the write session (open). */
interface Mutated { inode: Inode__Output | null; sessionId: number }

export type InodeKind = 'file' | 'directory' | 'symlink';

export interface InodeAttrs {
  inodeId: number;
  kind: InodeKind;
  mode: number;
  nlink: number;
  length: number;
  ctimeMs: number;
  mtimeMs: number;
  atimeMs: number;
  birthtimeMs: number;
  uid: number;
  gid: number;
  layout?: FileLayout;
  layoutPolicy?: { chunkSizeBytes: number; stripe: number; chainTableId: number };
}

export interface DirEntryInfo { name: string; kind: InodeKind; inodeId: number }

export type RoutingInfo = RoutingInfo__Output;

export const OpenFlags = { read: 1, write: 2, create: 4, exclusive: 8, truncate: 16, append: 32 } as const;

function kindOf(type: string): InodeKind {
  switch (type) {
    case 'INODE_TYPE_DIRECTORY': return 'directory';
    case 'INODE_TYPE_SYMLINK': return 'symlink';
    default: return 'file';
  }
}

export function toAttrs(inode: Inode__Output | null): InodeAttrs {
  if (!inode) throw flyfsError('FLYFS_ERR_INTERNAL', 'reply carries no inode');
  const attrs: InodeAttrs = {
    inodeId: inode.inodeId, kind: kindOf(inode.type), mode: inode.mode, nlink: inode.nlink, length: inode.length,
    ctimeMs: inode.ctimeMs, mtimeMs: inode.mtimeMs, atimeMs: inode.atimeMs, birthtimeMs: inode.birthtimeMs || inode.ctimeMs,
    uid: inode.uid, gid: inode.gid,
  };
  const l = inode.layout;
  if (l && l.chunkSize > 0) {
    attrs.layout = {
      chunkSizeBytes: l.chunkSize, stripe: l.stripe, chainTableId: l.chainTableId,
      chainTableVersion: l.chainTableVersion, chains: l.chains, seed: l.seed,
    };
  }
  const p = inode.layoutPolicy;
  if (p) attrs.layoutPolicy = { chunkSizeBytes: p.chunkSize, stripe: p.stripe, chainTableId: p.chainTableId };
  return attrs;
}

function toEntry(e: DirEntry__Output): DirEntryInfo {
  return { name: e.name, kind: kindOf(e.type), inodeId: e.inodeId };
}

export interface MetadataClientOptions {
  deadlineMs?: number;
  /**
   * How calls reach the metaservers: 'framed' (default) uses each metaserver's framed RPC once
   * GetEndpoints named it (gRPC until then, and for a metaserver that serves none); 'grpc' only gRPC.
   */
  metadataTransport?: MetadataTransportKind;
  /** How often KeepAlive goes out while this client holds write sessions. Default limits.keepAliveIntervalMsDefault. */
  keepAliveIntervalMs?: number;
}

/** Attribute changes of setattr; an absent field is left as it is. */
export interface AttrChange { mode?: number; uid?: number; gid?: number; atimeMs?: number; mtimeMs?: number }

/** Which file a truncate or setattr applies to: a path (symlinks followed) or an open file's inode. */
export type FileRef = { path: string } | { inodeId: number };

function refToWire(ref: FileRef): { path: string; inodeId: number } {
  return 'path' in ref ? { path: ref.path, inodeId: 0 } : { path: '', inodeId: ref.inodeId };
}

function batchItemError(code: string, message: string): FlyfsError {
  const err = flyfsError(isErrorCode(code) ? code : 'FLYFS_ERR_INTERNAL');
  err.message = message;
  return err;
}

export type MetadataTransportKind = 'framed' | 'grpc';

/** Framed connections kept to each metaserver. */
const framedConnectionsPerMetaserver = 1;
/** The longest a GetEndpoints may take; gRPC serves meanwhile. */
const endpointsDeadlineMs = 2_000;

/** How one metaserver is reached: gRPC, and framed RPC once GetEndpoints named it (common/framed-rpc.ts). */
class MetaserverEndpoint {
  private readonly framed: FramedEndpoint | undefined;

  constructor(readonly grpcMetadata: GrpcMetadataClient, readonly grpcManagement: GrpcManagementClient, pool: FramedPool | undefined) {
    this.framed = pool === undefined ? undefined
      : new FramedEndpoint(pool, async () => (await callUnary(grpcMetadata, grpcMetadata.GetEndpoints, {}, endpointsDeadlineMs)).framedAddress);
  }

  metadata(): GrpcMetadataClient { return this.framed?.client(loadProtos().flyfs.v1.Metadata.service, this.grpcMetadata) ?? this.grpcMetadata; }
  management(): GrpcManagementClient { return this.framed?.client(loadProtos().flyfs.v1.Management.service, this.grpcManagement) ?? this.grpcManagement; }

  forgetFramed(): void { this.framed?.forget(); }

  close(): void {
    // The generated Metadata client has a Close RPC that shadows grpc.Client#close.
    grpc.Client.prototype.close.call(this.grpcMetadata);
    grpc.Client.prototype.close.call(this.grpcManagement);
  }
}

/** First pause after a round of refusals, and the longest. */
const metaRetryPauseMs = 25;
const metaRetryPauseMsMax = 400;
/** The longest one attempt at one metaserver may take. */
const metaAttemptMsMax = 5_000;

export class MetadataClient {
  private readonly endpoints: MetaserverEndpoint[];
  private readonly framedPool: FramedPool | undefined;
  private readonly addresses: readonly string[];
  /** Where writes went last (the head), and where the next read goes. */
  private readonly preferred = { head: 0, read: 0 };
  private nextRequestId = 1;
  readonly clientId: string;
  private readonly deadlineMs: number;
  private readonly keepAliveIntervalMs: number;
  /** Write sessions this client holds; while there are any, KeepAlive runs. */
  private readonly sessions = new Set<number>();
  private keepAliveTimer: NodeJS.Timeout | undefined;

  constructor(addresses: readonly string[], clientId: string, options: MetadataClientOptions = {}) {
    if (addresses.length === 0) throw flyfsError('FLYFS_ERR_NOT_CONNECTED');
    const protos = loadProtos();
    const creds = grpc.credentials.createInsecure();
    this.framedPool = (options.metadataTransport ?? 'framed') === 'framed' ? new FramedPool(framedConnectionsPerMetaserver) : undefined;
    this.endpoints = addresses.map((a) => new MetaserverEndpoint(
      new protos.flyfs.v1.Metadata(a, creds, channelOptions), new protos.flyfs.v1.Management(a, creds, channelOptions), this.framedPool));
    this.addresses = [...addresses];
    this.clientId = clientId;
    this.deadlineMs = options.deadlineMs ?? limits.rpcDeadlineMsDefault;
    this.keepAliveIntervalMs = options.keepAliveIntervalMs ?? limits.keepAliveIntervalMsDefault;
  }

  private ctx(): { clientId: string; requestId: number } {
    return { clientId: this.clientId, requestId: this.nextRequestId++ };
  }

  /**
   * Calls one method where it belongs (`to`: the head, or a replica that reads), moving on while
   * the failure is retryable: to the replica the refusal names, else to the next, until the deadline.
   */
  private async call<C extends grpc.Client, Res>(client: (e: MetaserverEndpoint) => C, to: 'head' | 'read', invoke: (c: C, deadlineMs: number) => Promise<Res>): Promise<Res> {
    const n = this.endpoints.length;
    const deadline = Date.now() + this.deadlineMs;
    let lastErr: FlyfsError | undefined;
    let i = this.preferred[to];
    for (let attempt = 0; ; attempt++) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      try {
        // One attempt gets a slice of the deadline: a hung (not dead) metaserver must not hold
        // the call while another could answer; the retry carries the same request id.
        const res = await invoke(client(this.endpoints[i]!), Math.min(left, metaAttemptMsMax));
        // Writes stay with the head; reads take turns over the replicas (each serves committed
        // state when clean), so they spread over the machines' cores.
        this.preferred[to] = to === 'head' ? i : (i + 1) % n;
        return res;
      } catch (err) {
        const fe = err instanceof FlyfsError ? err : flyfsError('FLYFS_ERR_INTERNAL', String(err), { cause: err });
        if (!fe.retryable) throw fe;
        if (isConnectionFailure(fe)) this.endpoints[i]!.forgetFramed();
        lastErr = fe;
        const hinted = fe.hint === undefined ? -1 : this.addresses.indexOf(fe.hint);
        const next = hinted >= 0 && hinted !== i ? hinted : (i + 1) % n;
        // A hint is tried at once; a full round of refusals backs off (an election is under way).
        if (hinted < 0 || hinted === i) {
          const pauseMs = Math.min(metaRetryPauseMs * 2 ** Math.floor(attempt / n), metaRetryPauseMsMax);
          await new Promise((r) => setTimeout(r, Math.min(pauseMs, Math.max(0, deadline - Date.now()))));
        }
        i = next;
      }
    }
    throw lastErr ?? flyfsError('FLYFS_ERR_TIMEOUT', 'metaserver did not answer in time');
  }

  private meta<Res>(invoke: (c: GrpcMetadataClient, deadlineMs: number) => Promise<Res>): Promise<Res> {
    return this.call((e) => e.metadata(), 'head', invoke);
  }

  private metaRead<Res>(invoke: (c: GrpcMetadataClient, deadlineMs: number) => Promise<Res>): Promise<Res> {
    return this.call((e) => e.metadata(), 'read', invoke);
  }

  async mkdir(path: string, options: { recursive: boolean; mode: number; chunkSizeBytes?: number; stripe?: number }): Promise<InodeAttrs> {
    const r = await this.mutations.submit({ op: 'mkdir', mkdir: {
      ctx: this.ctx(), path, mode: options.mode, recursive: options.recursive,
      layoutPolicy: { chunkSize: options.chunkSizeBytes ?? 0, stripe: options.stripe ?? 0, chainTableId: 0 },
    } });
    return toAttrs(r.inode);
  }

  async open(path: string, flags: number, mode: number): Promise<{ attrs: InodeAttrs; sessionId: number }> {
    const r = await this.mutations.submit({ op: 'open', open: { ctx: this.ctx(), path, flags, mode } });
    if (r.sessionId !== 0) this.holdSession(r.sessionId);
    return { attrs: toAttrs(r.inode), sessionId: r.sessionId };
  }

  /**
   * With noFollow (lstat) a symlink in the last component is not followed. Stats issued in the
   * same turn of the event loop travel together in one StatBatch call.
   */
  stat(path: string, options: { noFollow?: boolean } = {}): Promise<InodeAttrs> {
    return this.stats.submit({ path, noFollow: options.noFollow ?? false });
  }

  private readonly stats = new TurnBatcher<StatRequest, InodeAttrs>(
    limits.statBatchMax,
    async (q) => toAttrs((await this.metaRead((c, d) => callUnary(c, c.Stat, q, d))).inode),
    async (requests) => {
      const r = await this.metaRead((c, d) => callUnary(c, c.StatBatch, { requests }, d));
      return requests.map((_, i) => {
        const item = r.items[i];
        if (item === undefined) return Promise.reject(flyfsError('FLYFS_ERR_INTERNAL', 'stat batch answered short'));
        if (item.errorCode === '') return Promise.resolve(toAttrs(item.inode));
        return Promise.reject(batchItemError(item.errorCode, item.errorMessage));
      });
    },
  );

  /**
   * Mutations issued in the same turn travel together in one MutateBatch call. An op refused
   * with a retryable error (a head change under it) goes again alone, with the same request id.
   */
  private readonly mutations = new TurnBatcher<MutateOp, Mutated>(
    limits.mutateBatchMax,
    (op) => this.mutateOne(op),
    async (ops) => {
      const r = await this.meta((c, d) => callUnary(c, c.MutateBatch, { ops }, d));
      return ops.map((op, i) => {
        const item = r.results[i];
        if (item === undefined) return Promise.reject(flyfsError('FLYFS_ERR_INTERNAL', 'mutation batch answered short'));
        if (item.errorCode === '') return Promise.resolve({ inode: item.inode, sessionId: item.sessionId });
        const err = batchItemError(item.errorCode, item.errorMessage);
        return err.retryable ? this.mutateOne(op) : Promise.reject(err);
      });
    },
  );

  private async mutateOne(op: MutateOp): Promise<Mutated> {
    switch (op.op) {
      case 'mkdir': return this.meta((c, d) => callUnary(c, c.Mkdir, op.mkdir!, d)).then((r) => ({ inode: r.inode, sessionId: 0 }));
      case 'open': return this.meta((c, d) => callUnary(c, c.Open, op.open!, d));
      case 'close': return this.meta((c, d) => callUnary(c, c.Close, op.close!, d)).then((r) => ({ inode: r.inode, sessionId: 0 }));
      case 'rename': return this.meta((c, d) => callUnary(c, c.Rename, op.rename!, d)).then(() => ({ inode: null, sessionId: 0 }));
      case 'unlink': return this.meta((c, d) => callUnary(c, c.Unlink, op.unlink!, d)).then(() => ({ inode: null, sessionId: 0 }));
      case 'rmdir': return this.meta((c, d) => callUnary(c, c.Rmdir, op.rmdir!, d)).then(() => ({ inode: null, sessionId: 0 }));
      default: throw flyfsError('FLYFS_ERR_INTERNAL', 'a mutation of no kind');
    }
  }

  async symlink(target: string, path: string): Promise<InodeAttrs> {
    const ctx = this.ctx();
    return toAttrs((await this.meta((c, d) => callUnary(c, c.Symlink, { ctx, target, path }, d))).inode);
  }

  async readlink(path: string): Promise<string> {
    return (await this.metaRead((c, d) => callUnary(c, c.Readlink, { path }, d))).target;
  }

  async link(existingPath: string, newPath: string): Promise<InodeAttrs> {
    const ctx = this.ctx();
    return toAttrs((await this.meta((c, d) => callUnary(c, c.Link, { ctx, existingPath, newPath }, d))).inode);
  }

  async truncate(ref: FileRef, length: number): Promise<InodeAttrs> {
    const ctx = this.ctx();
    return toAttrs((await this.meta((c, d) => callUnary(c, c.Truncate, { ctx, ...refToWire(ref), length }, d))).inode);
  }

  async setattr(ref: FileRef, change: AttrChange): Promise<InodeAttrs> {
    const ctx = this.ctx();
    const r = await this.meta((c, d) => callUnary(c, c.SetAttr, {
      ctx, ...refToWire(ref),
      modeSet: change.mode !== undefined, mode: change.mode ?? 0,
      uidSet: change.uid !== undefined, uid: change.uid ?? 0,
      gidSet: change.gid !== undefined, gid: change.gid ?? 0,
      atimeSet: change.atimeMs !== undefined, atimeMs: change.atimeMs ?? 0,
      mtimeSet: change.mtimeMs !== undefined, mtimeMs: change.mtimeMs ?? 0,
    }, d));
    return toAttrs(r.inode);
  }

  /** fsync of a write session: the file's length becomes at least `length`. */
  async sync(inodeId: number, sessionId: number, length: number): Promise<InodeAttrs> {
    const ctx = this.ctx();
    return toAttrs((await this.meta((c, d) => callUnary(c, c.Sync, { ctx, inodeId, sessionId, length }, d))).inode);
  }

  async readdir(path: string): Promise<DirEntryInfo[]> {
    const out: DirEntryInfo[] = [];
    let cursor = '';
    for (;;) {
      const page = await this.metaRead((c, d) => callUnary(c, c.Readdir, { path, cursor, limit: limits.readdirPageMax }, d));
      for (const e of page.entries) out.push(toEntry(e));
      if (!page.nextCursor) return out;
      cursor = page.nextCursor;
    }
  }

  async rename(fromPath: string, toPath: string): Promise<void> {
    await this.mutations.submit({ op: 'rename', rename: { ctx: this.ctx(), fromPath, toPath } });
  }

  async unlink(path: string): Promise<void> {
    await this.mutations.submit({ op: 'unlink', unlink: { ctx: this.ctx(), path } });
  }

  async rmdir(path: string): Promise<void> {
    await this.mutations.submit({ op: 'rmdir', rmdir: { ctx: this.ctx(), path } });
  }

  /** Ends a session; `length` (the written end) is undefined for a handle that wrote nothing. */
  async close(inodeId: number, sessionId: number, length: number | undefined): Promise<InodeAttrs> {
    try {
      const r = await this.mutations.submit({ op: 'close', close: {
        ctx: this.ctx(), inodeId, sessionId, length: length ?? 0, lengthSet: length !== undefined,
      } });
      return toAttrs(r.inode);
    } finally {
      this.releaseSession(sessionId);
    }
  }

  private holdSession(sessionId: number): void {
    this.sessions.add(sessionId);
    if (this.keepAliveTimer !== undefined) return;
    let inflight = false;
    this.keepAliveTimer = setInterval(() => {
      if (inflight) return;
      inflight = true;
      // A lost KeepAlive is not fatal: the next one, within the session timeout, does as well.
      this.meta((c, d) => callUnary(c, c.KeepAlive, { clientId: this.clientId }, d))
        .catch(() => undefined).finally(() => { inflight = false; });
    }, this.keepAliveIntervalMs);
    this.keepAliveTimer.unref();
  }

  private releaseSession(sessionId: number): void {
    this.sessions.delete(sessionId);
    if (this.sessions.size > 0 || this.keepAliveTimer === undefined) return;
    clearInterval(this.keepAliveTimer);
    this.keepAliveTimer = undefined;
  }

  /** An operator takes a target offline, or lets it come back (flyfs admin offline|online). */
  async setTargetAdmin(targetId: number, offline: boolean): Promise<{ routingVersion: number }> {
    return this.call((e) => e.management(), 'head', (c, d) => callUnary(c, c.SetTargetAdmin, { targetId, offline }, d));
  }

  async routingInfo(): Promise<RoutingInfo> {
    return this.call((e) => e.management(), 'head', (c, d) => callUnary(c, c.GetRoutingInfo, { knownVersion: 0 }, d));
  }

  shutdown(): void {
    if (this.keepAliveTimer !== undefined) clearInterval(this.keepAliveTimer);
    this.keepAliveTimer = undefined;
    for (const e of this.endpoints) e.close();
    this.framedPool?.close();
  }
}
