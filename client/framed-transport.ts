// ChunkTransport over the framed binary data path (docs/data-protocol.md). A small pool of TCP
// connections per storage server; each multiplexes many requests matched by request id. A lost
// connection rejects its in-flight requests with FLYFS_ERR_CLOSED and is replaced on next use.
import net from 'node:net';
import { flyfsError, FlyfsError } from '../common/errors.js';
import { limits } from '../common/limits.js';
import {
  encodeFrame, errorFromReply, FrameDecoder, Op, packJsonPayload, REQUEST_ID_MAX, Status, uintField, unpackJsonPayload, type Frame,
} from '../storageserver/data-protocol.js';
import type { ChunkTransport, ReadChunkArgs, ReadChunksItem, RemoveChunksArgs, StorageEndpoint, WriteChunkArgs } from './chunk-transport.js';

/** Connections kept per storage server: a couple spread the kernel's per-socket work. */
const connectionsPerServer = 2;

interface Pending { resolve: (f: Frame) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }

function splitHostPort(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  const port = Number(address.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `data address '${address}'`);
  return { host: address.slice(0, i).replace(/^\[|\]$/g, ''), port };
}

class FramedConnection {
  private readonly socket: net.Socket;
  private readonly decoder = new FrameDecoder(true);
  private readonly pending = new Map<number, Pending>();
  private nextRequestId = 1;
  private readonly connected: Promise<void>;
  dead = false;

  constructor(address: string, private readonly onDead: (c: FramedConnection) => void) {
    const { host, port } = splitHostPort(address);
    this.socket = net.connect({ host, port });
    this.socket.setNoDelay(true);
    this.connected = new Promise((resolve, reject) => {
      this.socket.once('connect', () => resolve());
      this.socket.once('error', (err) => reject(flyfsError('FLYFS_ERR_UNAVAILABLE', `cannot connect to ${address}: ${err.message}`, { cause: err })));
    });
    this.connected.catch(() => { /* reported to the callers awaiting it */ });
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('error', () => { /* 'close' follows and fails what is pending */ });
    this.socket.on('close', () => this.fail(flyfsError('FLYFS_ERR_CLOSED', `connection to ${address} lost`)));
  }

  get inflight(): number { return this.pending.size; }

  private onData(chunk: Buffer): void {
    this.decoder.push(chunk);
    for (;;) {
      let frame: Frame | undefined;
      try {
        frame = this.decoder.next();
      } catch (err) {
        this.fail(err as Error);
        this.socket.destroy();
        return;
      }
      if (!frame) return;
      const p = this.pending.get(frame.requestId);
      if (!p) continue; // a reply to a request that already timed out
      this.pending.delete(frame.requestId);
      clearTimeout(p.timer);
      if (frame.status === Status.Ok) p.resolve(frame);
      else p.reject(errorFromReply(frame.header));
    }
  }

  private fail(err: Error): void {
    if (!this.dead) { this.dead = true; this.onDead(this); }
    for (const p of this.pending.values()) { clearTimeout(p.timer); p.reject(err); }
    this.pending.clear();
  }

  private allocRequestId(): number {
    for (;;) {
      const id = this.nextRequestId;
      this.nextRequestId = id === REQUEST_ID_MAX ? 1 : id + 1;
      if (!this.pending.has(id)) return id;
    }
  }

  async request(op: Op, header: object, payload?: Uint8Array): Promise<Frame> {
    await this.connected;
    if (this.dead) throw flyfsError('FLYFS_ERR_CLOSED', 'connection lost');
    const requestId = this.allocRequestId();
    const [head, body] = encodeFrame({ op, requestId, header, ...(payload ? { payload } : {}) });
    return new Promise<Frame>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(requestId);
        reject(flyfsError('FLYFS_ERR_TIMEOUT', `data request ${requestId} took over ${limits.rpcDeadlineMsDefault} ms`));
      }, limits.rpcDeadlineMsDefault);
      this.pending.set(requestId, { resolve, reject, timer });
      this.socket.cork();
      this.socket.write(head);
      if (body.length > 0) this.socket.write(body);
      this.socket.uncork();
    });
  }

  close(): void {
    this.fail(flyfsError('FLYFS_ERR_CLOSED', 'transport closed'));
    this.socket.destroy();
  }
}

export class FramedTransport implements ChunkTransport {
  private readonly pools = new Map<string, FramedConnection[]>();
  private closed = false;

  private connection(to: StorageEndpoint): FramedConnection {
    if (this.closed) throw flyfsError('FLYFS_ERR_CLOSED', 'transport is closed');
    let pool = this.pools.get(to.dataAddress);
    if (!pool) { pool = []; this.pools.set(to.dataAddress, pool); }
    if (pool.length < connectionsPerServer) {
      const c = new FramedConnection(to.dataAddress, (dead) => {
        const p = this.pools.get(to.dataAddress);
        if (!p) return;
        const i = p.indexOf(dead);
        if (i >= 0) p.splice(i, 1);
      });
      pool.push(c);
      return c;
    }
    // The least loaded of the pool.
    let best = pool[0]!;
    for (const c of pool) if (c.inflight < best.inflight) best = c;
    return best;
  }

  /** One request frame, its reply frame back (also used between storage servers for Op.Peer). */
  async call(to: StorageEndpoint, op: Op, header: object, payload?: Uint8Array): Promise<Frame> {
    try {
      return await this.connection(to).request(op, header, payload);
    } catch (err) {
      if (err instanceof FlyfsError) throw err;
      throw flyfsError('FLYFS_ERR_INTERNAL', err instanceof Error ? err.message : String(err), { cause: err });
    }
  }

  async writeChunk(to: StorageEndpoint, a: WriteChunkArgs): Promise<{ chunkLength: number; version: number }> {
    const f = await this.call(to, Op.WriteChunk, {
      chainId: a.chainId, chainVersion: a.chainVersion, inodeId: a.inodeId, index: a.index, offset: a.offset,
      chunkSize: a.chunkSizeBytes, clientId: a.clientId, requestId: a.requestId,
    }, a.data);
    return { chunkLength: uintField(f.header, 'chunkLength'), version: uintField(f.header, 'version') };
  }

  async readChunk(to: StorageEndpoint, a: ReadChunkArgs): Promise<{ data: Buffer; chunkLength: number; exists: boolean }> {
    const f = await this.call(to, Op.ReadChunk, {
      chainId: a.chainId, chainVersion: a.chainVersion, inodeId: a.inodeId, index: a.index, offset: a.offset, length: a.length,
    });
    return { data: f.payload, chunkLength: uintField(f.header, 'chunkLength'), exists: f.header['exists'] === true };
  }

  async readChunks(to: StorageEndpoint, args: readonly ReadChunkArgs[]): Promise<ReadChunksItem[]> {
    const list = args.map((a) => ({ chainId: a.chainId, chainVersion: a.chainVersion, inodeId: a.inodeId, index: a.index, offset: a.offset, length: a.length }));
    const f = await this.call(to, Op.ReadChunks, {}, packJsonPayload(list, []));
    const { json, bytesAt } = unpackJsonPayload(f.payload, 'chunk reads reply');
    if (!Array.isArray(json) || json.length !== args.length) throw flyfsError('FLYFS_ERR_BAD_FRAME', 'chunk reads reply: one result per read is expected');
    let at = bytesAt;
    return json.map((raw: unknown) => {
      const r = raw as Record<string, unknown>;
      if (r['ok'] !== true) return { ok: false as const, error: errorFromReply(r) };
      const n = uintField(r, 'length');
      if (at + n > f.payload.length) throw flyfsError('FLYFS_ERR_BAD_FRAME', 'chunk reads reply: data runs past the payload');
      const data = f.payload.subarray(at, at + n);
      at += n;
      return { ok: true as const, data, chunkLength: uintField(r, 'chunkLength'), exists: r['exists'] === true };
    });
  }

  async removeChunks(to: StorageEndpoint, a: RemoveChunksArgs): Promise<{ removed: number }> {
    const f = await this.call(to, Op.RemoveChunks, { chainId: a.chainId, chainVersion: a.chainVersion, inodeId: a.inodeId, fromIndex: a.fromIndex });
    return { removed: uintField(f.header, 'removed') };
  }

  close(): void {
    this.closed = true;
    for (const pool of this.pools.values()) for (const c of [...pool]) c.close();
    this.pools.clear();
  }
}
