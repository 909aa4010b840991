// The framed binary data path over TCP (docs/data-protocol.md). Many requests in flight per
// connection, replies in completion order matched by request id; at most
// limits.frameInflightPerConnectionMax outstanding, beyond which the socket is paused. A
// malformed stream closes that connection only.
import net from 'node:net';
import { FlyfsError } from '../common/errors.js';
import { inodeId as toInodeId } from '../common/ids.js';
import { limits } from '../common/limits.js';
import type { Logger } from '../common/log.js';
import {
  encodeFrame, FrameDecoder, Op, packJsonPayload, REPLY_BIT, Status, stringField, uintField, unpackJsonPayload, type Frame,
} from './data-protocol.js';
import type { ChunkService } from './service.js';
import { decodePeerMessage } from './peer-codec.js';
import type { StoredMessage } from './replicated-target.js';

/** Where CRAQ messages from peers go (the local target named by `to`). */
export type PeerSink = (message: StoredMessage) => void;

export interface DataServer {
  readonly port: number;
  close(): Promise<void>;
}

/** Runs one decoded request against the service; resolves to the reply header and payload. */
async function dispatch(service: ChunkService, frame: Frame, onPeer: PeerSink | undefined): Promise<{ header: object; payload?: Uint8Array }> {
  const h = frame.header;
  if (frame.op === Op.Peer) {
    if (onPeer === undefined) throw new FlyfsError('FLYFS_ERR_BAD_FRAME', 'this server takes no peer messages');
    onPeer(decodePeerMessage(frame.payload));
    return { header: {} };
  }
  if (frame.op === Op.ReadChunks) return readChunks(service, frame.payload);
  const routed = { chainId: uintField(h, 'chainId'), chainVersion: uintField(h, 'chainVersion') };
  switch (frame.op) {
    case Op.WriteChunk: {
      const r = await service.writeChunk({
        ...routed, key: { inodeId: toInodeId(uintField(h, 'inodeId')), index: uintField(h, 'index') },
        offset: uintField(h, 'offset'), data: frame.payload, chunkSizeBytes: uintField(h, 'chunkSize'),
        clientId: stringField(h, 'clientId'), requestId: uintField(h, 'requestId'),
      });
      return { header: r };
    }
    case Op.ReadChunk: {
      const r = await service.readChunk({
        ...routed, key: { inodeId: toInodeId(uintField(h, 'inodeId')), index: uintField(h, 'index') },
        offset: uintField(h, 'offset'), length: uintField(h, 'length'),
      });
      return { header: { chunkLength: r.chunkLength, exists: r.exists }, payload: r.data };
    }
    case Op.RemoveChunks:
      return { header: await service.removeChunks({ ...routed, inodeId: toInodeId(uintField(h, 'inodeId')), fromIndex: uintField(h, 'fromIndex') }) };
    case Op.StatChunk:
      return { header: await service.statChunk({ ...routed, key: { inodeId: toInodeId(uintField(h, 'inodeId')), index: uintField(h, 'index') } }) };
    default:
      throw new FlyfsError('FLYFS_ERR_BAD_FRAME', `op ${frame.op}`);
  }
}

/**
 * Many chunk reads in one request: each runs as a ReadChunk would and answers for itself (a
 * damaged or missing chunk fails alone); the reply packs every result's description, then the
 * data of the successful ones in order.
 */
async function readChunks(service: ChunkService, payload: Buffer): Promise<{ header: object; payload: Uint8Array }> {
  const { json } = unpackJsonPayload(payload, 'chunk reads');
  if (!Array.isArray(json) || json.length === 0) throw new FlyfsError('FLYFS_ERR_BAD_FRAME', 'chunk reads: a non-empty list is expected');
  if (json.length > limits.readBatchChunksMax) throw new FlyfsError('FLYFS_ERR_LIMIT', `at most ${limits.readBatchChunksMax} chunk reads in one request, got ${json.length}`);
  const items = json.map((raw: unknown) => {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new FlyfsError('FLYFS_ERR_BAD_FRAME', 'chunk reads: an item is not an object');
    const r = raw as Record<string, unknown>;
    return {
      chainId: uintField(r, 'chainId'), chainVersion: uintField(r, 'chainVersion'),
      key: { inodeId: toInodeId(uintField(r, 'inodeId')), index: uintField(r, 'index') }, offset: uintField(r, 'offset'), length: uintField(r, 'length'),
    };
  });
  const total = items.reduce((n, i) => n + i.length, 0);
  if (total > limits.readBatchBytesMax) throw new FlyfsError('FLYFS_ERR_LIMIT', `chunk reads ask for ${total} bytes, at most ${limits.readBatchBytesMax} in one request`);
  const results = await Promise.all(items.map((i) => service.readChunk(i).then(
    (r) => ({ ok: true as const, r }),
    (err: unknown) => ({ ok: false as const, err: err instanceof FlyfsError ? err : new FlyfsError('FLYFS_ERR_INTERNAL', String(err)) }),
  )));
  const described = results.map((x) => x.ok
    ? { ok: true, length: x.r.data.length, chunkLength: x.r.chunkLength, exists: x.r.exists }
    : { ok: false, code: x.err.code, message: x.err.message });
  return { header: {}, payload: packJsonPayload(described, results.flatMap((x) => x.ok ? [x.r.data] : [])) };
}

class DataConnection {
  private readonly decoder = new FrameDecoder(false);
  private inflight = 0;
  private paused = false;
  private closed = false;

  constructor(private readonly socket: net.Socket, private readonly service: ChunkService, private readonly log: Logger, private readonly onPeer: PeerSink | undefined) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => { this.decoder.push(chunk); this.pump(); });
    socket.on('error', (err) => { this.log.debug({ err }, 'data connection error'); });
    socket.on('close', () => { this.closed = true; });
  }

  /** Starts as many buffered requests as the in-flight bound allows; pauses reading beyond it. */
  private pump(): void {
    while (!this.closed && this.inflight < limits.frameInflightPerConnectionMax) {
      let frame: Frame | undefined;
      try {
        frame = this.decoder.next();
      } catch (err) {
        this.log.error({ err, remote: this.socket.remoteAddress, port: this.socket.remotePort }, 'garbage on the data path: closing the connection');
        this.closed = true;
        this.socket.destroy();
        return;
      }
      if (!frame) break;
      this.start(frame);
    }
    const over = this.inflight >= limits.frameInflightPerConnectionMax;
    if (over && !this.paused) { this.paused = true; this.socket.pause(); }
    else if (!over && this.paused) { this.paused = false; this.socket.resume(); }
  }

  private start(frame: Frame): void {
    this.inflight++;
    dispatch(this.service, frame, this.onPeer).then(
      (r) => this.reply(frame, Status.Ok, r.header, r.payload),
      (err: unknown) => {
        const fe = err instanceof FlyfsError ? err : new FlyfsError('FLYFS_ERR_INTERNAL', err instanceof Error ? err.message : String(err), { cause: err });
        if (fe.code === 'FLYFS_ERR_INTERNAL') this.log.error({ err }, 'data request failed');
        return this.reply(frame, Status.Error, { code: fe.code, message: fe.message });
      },
    ).finally(() => {
      this.inflight--;
      this.pump();
    });
  }

  /**
   * Sends a reply; resolves once the socket has taken it, so a client that stops reading its
   * replies holds its in-flight slots (and the server stops reading its requests).
   */
  private reply(frame: Frame, status: Status, header: object, payload?: Uint8Array): Promise<void> {
    if (this.closed || this.socket.destroyed) return Promise.resolve();
    const [head, body] = encodeFrame({ op: frame.op | REPLY_BIT, status, requestId: frame.requestId, header, ...(payload ? { payload } : {}) });
    return new Promise<void>((resolve) => {
      // Header and payload go out as two writes in one batch: the chunk data is never copied.
      this.socket.cork();
      this.socket.write(head);
      if (body.length > 0) this.socket.write(body, () => resolve());
      else this.socket.write(EMPTY, () => resolve());
      process.nextTick(() => this.socket.uncork());
    });
  }
}

const EMPTY = Buffer.alloc(0);

export async function startDataServer(options: { host: string; port: number; service: ChunkService; logger: Logger; onPeer?: PeerSink }): Promise<DataServer> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    new DataConnection(socket, options.service, options.logger, options.onPeer);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => { server.off('error', reject); resolve(); });
  });
  server.on('error', (err) => options.logger.error({ err }, 'data server error'));
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('data server has no TCP address');
  return {
    port: addr.port,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const s of sockets) s.destroy();
    }),
  };
}
