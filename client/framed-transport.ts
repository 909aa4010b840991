// ChunkTransport over the framed binary data path (docs/data-protocol.md): a small pool of
// multiplexed connections per storage server (common/framed-connection.ts).
import { flyfsError, FlyfsError } from '../common/errors.js';
import { errorFromReply, Op, packJsonPayload, uintField, unpackJsonPayload, type Frame } from '../common/frame.js';
import { FramedPool, type PayloadReceiver, type ReceiverFactory } from '../common/framed-connection.js';
import { limits } from '../common/limits.js';
import type { ChunkTransport, ReadChunkArgs, ReadChunksItem, RemoveChunksArgs, StorageEndpoint, WriteChunkArgs } from './chunk-transport.js';

/** Connections kept per storage server: a couple spread the kernel's per-socket work. */
const connectionsPerServer = 2;

export class FramedTransport implements ChunkTransport {
  private readonly pool = new FramedPool(connectionsPerServer);

  /** One request frame, its reply frame back (also used between storage servers for Op.Peer). */
  async call(to: StorageEndpoint, op: Op, header: object, payload?: Uint8Array, receiver?: ReceiverFactory): Promise<Frame> {
    try {
      return await this.pool.connection(to.dataAddress).request(op, header, payload, receiver === undefined ? {} : { receiver });
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

  async readChunk(to: StorageEndpoint, a: ReadChunkArgs, into?: Uint8Array): Promise<{ data: Buffer; chunkLength: number; exists: boolean }> {
    const f = await this.call(to, Op.ReadChunk, {
      chainId: a.chainId, chainVersion: a.chainVersion, inodeId: a.inodeId, index: a.index, offset: a.offset, length: a.length,
    }, undefined, into === undefined ? undefined : (_h, n) => intoReceiver(into, n));
    return { data: f.payload, chunkLength: uintField(f.header, 'chunkLength'), exists: f.header['exists'] === true };
  }

  async readChunks(to: StorageEndpoint, args: readonly ReadChunkArgs[], into?: readonly Uint8Array[]): Promise<ReadChunksItem[]> {
    const list = args.map((a) => ({ chainId: a.chainId, chainVersion: a.chainVersion, inodeId: a.inodeId, index: a.index, offset: a.offset, length: a.length }));
    if (into !== undefined) {
      const r = new ReadChunksReceiver(into);
      await this.call(to, Op.ReadChunks, {}, packJsonPayload(list, []), () => r);
      return r.items(args.length);
    }
    const f = await this.call(to, Op.ReadChunks, {}, packJsonPayload(list, []));
    const { json, bytesAt } = unpackJsonPayload(f.payload, 'chunk reads reply');
    const described = describedReads(json, args.length);
    let at = bytesAt;
    return described.map((d) => {
      if (!d.ok) return d;
      if (at + d.length > f.payload.length) throw flyfsError('FLYFS_ERR_BAD_FRAME', 'chunk reads reply: data runs past the payload');
      const data = f.payload.subarray(at, at + d.length);
      at += d.length;
      return { ok: true as const, data, chunkLength: d.chunkLength, exists: d.exists };
    });
  }

  async removeChunks(to: StorageEndpoint, a: RemoveChunksArgs): Promise<{ removed: number }> {
    const f = await this.call(to, Op.RemoveChunks, { chainId: a.chainId, chainVersion: a.chainVersion, inodeId: a.inodeId, fromIndex: a.fromIndex });
    return { removed: uintField(f.header, 'removed') };
  }

  close(): void {
    this.pool.close();
  }
}

type DescribedRead = { ok: true; length: number; chunkLength: number; exists: boolean } | { ok: false; error: Error };

/** The descriptions a ReadChunks reply starts with, one per read asked for. */
function describedReads(json: unknown, count: number): DescribedRead[] {
  if (!Array.isArray(json) || json.length !== count) throw flyfsError('FLYFS_ERR_BAD_FRAME', 'chunk reads reply: one result per read is expected');
  return json.map((raw: unknown) => {
    const r = raw as Record<string, unknown>;
    if (r['ok'] !== true) return { ok: false as const, error: errorFromReply(r) };
    return { ok: true as const, length: uintField(r, 'length'), chunkLength: uintField(r, 'chunkLength'), exists: r['exists'] === true };
  });
}

/** A ReadChunk reply's data straight into `into` (at most its length). */
function intoReceiver(into: Uint8Array, payloadLength: number): PayloadReceiver {
  let at = 0;
  let error: Error | undefined = payloadLength > into.byteLength
    ? flyfsError('FLYFS_ERR_BAD_FRAME', `chunk read reply of ${payloadLength} bytes for ${into.byteLength} asked`) : undefined;
  return {
    write(bytes) { if (error === undefined) { into.set(bytes, at); at += bytes.length; } },
    end() {
      if (error !== undefined) throw error;
      return Buffer.from(into.buffer, into.byteOffset, at);
    },
  };
}

/**
 * A ReadChunks reply as it arrives: the length-prefixed JSON descriptions first (gathered), then
 * each successful read's data straight into its caller's buffer.
 */
class ReadChunksReceiver implements PayloadReceiver {
  private prefix = Buffer.alloc(0);
  private described: DescribedRead[] | undefined;
  /** The read whose data arrives next, and how much of it has. */
  private item = 0;
  private itemFilled = 0;
  private error: Error | undefined;

  constructor(private readonly into: readonly Uint8Array[]) {}

  write(bytes: Buffer): void {
    if (this.error !== undefined) return;
    try {
      let b = bytes;
      if (this.described === undefined) b = this.gatherDescriptions(b);
      while (b.length > 0) b = this.fill(b);
    } catch (err) {
      this.error = err as Error;
    }
  }

  private gatherDescriptions(bytes: Buffer): Buffer {
    const joined = this.prefix.length === 0 ? bytes : Buffer.concat([this.prefix, bytes]);
    const jsonLength = joined.length >= 4 ? joined.readUInt32LE(0) : -1;
    if (jsonLength < 0 || joined.length < 4 + jsonLength) {
      if (jsonLength > limits.frameHeaderBytesMax * limits.readBatchChunksMax) throw flyfsError('FLYFS_ERR_BAD_FRAME', 'chunk reads reply: descriptions too long');
      this.prefix = Buffer.from(joined); // the read buffer is reused: keep a copy
      return Buffer.alloc(0);
    }
    const { json } = unpackJsonPayload(joined.subarray(0, 4 + jsonLength), 'chunk reads reply');
    this.described = describedReads(json, this.into.length);
    this.prefix = Buffer.alloc(0);
    for (const [k, d] of this.described.entries()) {
      if (d.ok && d.length > this.into[k]!.byteLength) throw flyfsError('FLYFS_ERR_BAD_FRAME', `chunk reads reply: read ${k} answers ${d.length} bytes for ${this.into[k]!.byteLength} asked`);
    }
    this.skipEmpty();
    return joined.subarray(4 + jsonLength);
  }

  /** Moves past reads that carry no more data (failed ones, and those already filled). */
  private skipEmpty(): void {
    const d = this.described!;
    while (this.item < d.length) {
      const cur = d[this.item]!;
      if (cur.ok && this.itemFilled < cur.length) return;
      this.item++;
      this.itemFilled = 0;
    }
  }

  private fill(bytes: Buffer): Buffer {
    const d = this.described!;
    const cur = d[this.item];
    if (cur === undefined || !cur.ok) throw flyfsError('FLYFS_ERR_BAD_FRAME', 'chunk reads reply: data runs past the payload');
    const k = Math.min(cur.length - this.itemFilled, bytes.length);
    this.into[this.item]!.set(bytes.subarray(0, k), this.itemFilled);
    this.itemFilled += k;
    this.skipEmpty();
    return bytes.subarray(k);
  }

  end(): Buffer {
    if (this.error === undefined && this.described === undefined) this.error = flyfsError('FLYFS_ERR_BAD_FRAME', 'chunk reads reply: no descriptions');
    if (this.error === undefined) { this.skipEmpty(); if (this.item < this.described!.length) this.error = flyfsError('FLYFS_ERR_BAD_FRAME', 'chunk reads reply: data ends early'); }
    if (this.error !== undefined) throw this.error;
    return Buffer.alloc(0);
  }

  /** Each read's result, its data a view of the caller's buffer. */
  items(count: number): ReadChunksItem[] {
    const d = this.described!;
    if (d.length !== count) throw new Error('assertion failed: one result per read');
    return d.map((x, k) => {
      if (!x.ok) return x;
      const into = this.into[k]!;
      return { ok: true as const, data: Buffer.from(into.buffer, into.byteOffset, x.length), chunkLength: x.chunkLength, exists: x.exists };
    });
  }
}
