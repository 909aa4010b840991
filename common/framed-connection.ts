// One client TCP connection of the framed protocol (common/frame.ts, docs/data-protocol.md): many
// requests multiplexed, replies matched by request id. A lost connection rejects what is in
// flight with FLYFS_ERR_CLOSED (retryable); the owner replaces it on next use. Used by the data
// path's transport (client/framed-transport.ts) and by framed RPC (common/framed-rpc.ts).
import net from 'node:net';
import { flyfsError } from './errors.js';
import { errorFromReply, encodeFrame, FrameDecoder, REQUEST_ID_MAX, Status, type Frame, type Op } from './frame.js';
import { limits } from './limits.js';

interface Pending { resolve: (f: Frame) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }

export function splitHostPort(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  const port = Number(address.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `address '${address}'`);
  return { host: address.slice(0, i).replace(/^\[|\]$/g, ''), port };
}

export class FramedConnection {
  private readonly socket: net.Socket;
  private readonly decoder = new FrameDecoder(true);
  private readonly pending = new Map<number, Pending>();
  private nextRequestId = 1;
  private readonly connected: Promise<void>;
  dead = false;

  constructor(readonly address: string, private readonly onDead: (c: FramedConnection) => void) {
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

  /** One request frame; resolves with its reply frame, rejects with the server's error or a timeout. */
  async request(op: Op, header: object, payload?: Uint8Array, deadlineMs: number = limits.rpcDeadlineMsDefault): Promise<Frame> {
    await this.connected;
    if (this.dead) throw flyfsError('FLYFS_ERR_CLOSED', 'connection lost');
    const requestId = this.allocRequestId();
    const [head, body] = encodeFrame({ op, requestId, header, ...(payload ? { payload } : {}) });
    return new Promise<Frame>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(requestId);
        reject(flyfsError('FLYFS_ERR_TIMEOUT', `request ${requestId} to ${this.address} took over ${deadlineMs} ms`));
      }, deadlineMs);
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

/**
 * A few connections to each address, each request on the least loaded one (a couple spread the
 * kernel's per-socket work); dead ones are dropped and replaced on next use.
 */
export class FramedPool {
  private readonly pools = new Map<string, FramedConnection[]>();
  private closed = false;

  constructor(private readonly connectionsPerAddress: number) {}

  connection(address: string): FramedConnection {
    if (this.closed) throw flyfsError('FLYFS_ERR_CLOSED', 'transport is closed');
    let pool = this.pools.get(address);
    if (!pool) { pool = []; this.pools.set(address, pool); }
    if (pool.length < this.connectionsPerAddress) {
      const c = new FramedConnection(address, (dead) => {
        const p = this.pools.get(address);
        if (!p) return;
        const i = p.indexOf(dead);
        if (i >= 0) p.splice(i, 1);
      });
      pool.push(c);
      return c;
    }
    let best = pool[0]!;
    for (const c of pool) if (c.inflight < best.inflight) best = c;
    return best;
  }

  close(): void {
    this.closed = true;
    for (const pool of this.pools.values()) for (const c of [...pool]) c.close();
    this.pools.clear();
  }
}
