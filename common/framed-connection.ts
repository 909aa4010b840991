// One client TCP connection of the framed protocol (common/frame.ts, docs/data-protocol.md): many
// requests multiplexed, replies matched by request id. A lost connection rejects what is in
// flight with FLYFS_ERR_CLOSED (retryable); the owner replaces it on next use. Used by the data
// path's transport (client/framed-transport.ts) and by framed RPC (common/framed-rpc.ts).
import net from 'node:net';
import { flyfsError } from './errors.js';
import { errorFromReply, encodeFrame, FIXED_HEADER_BYTES, FrameDecoder, REQUEST_ID_MAX, Status, type Frame, type Op } from './frame.js';
import { limits } from './limits.js';

/**
 * Takes a reply's payload as it arrives, in order, instead of the connection collecting it into
 * one buffer: a read lands in the caller's memory straight from the socket, one copy. `write`
 * gets views of the connection's read buffer that are valid only during the call; it must not
 * throw (a receiver records its own failure and reports it from `end`).
 */
export interface PayloadReceiver {
  write(bytes: Buffer): void;
  /** All `payloadLength` bytes were written; what the request resolves with as the frame's payload. */
  end(): Buffer;
}

/** Chooses a reply's receiver from its decoded header (a failed request's header goes to the default one). */
export type ReceiverFactory = (header: Record<string, unknown>, payloadLength: number) => PayloadReceiver;

/** The default: the payload collected into one buffer of its exact size. */
function collectingReceiver(payloadLength: number): PayloadReceiver {
  const out = Buffer.allocUnsafe(payloadLength);
  let at = 0;
  return {
    write(bytes) { bytes.copy(out, at); at += bytes.length; },
    end() { return out; },
  };
}

const EMPTY = Buffer.alloc(0);
/** Bytes of a reply nobody waits for any more (timed out): read and dropped. */
const discardingReceiver: PayloadReceiver = { write() { /* dropped */ }, end() { return EMPTY; } };

interface Pending {
  resolve: (f: Frame) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
  receiver: ReceiverFactory | undefined;
  /** Set once the request timed out: a reply already streaming in stops writing to its receiver. */
  abandoned: boolean;
}

export function splitHostPort(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  const port = Number(address.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `address '${address}'`);
  return { host: address.slice(0, i).replace(/^\[|\]$/g, ''), port };
}

/** The reply being received: its fixed header, then its JSON header, then its payload. */
interface Incoming {
  /** The fixed header and JSON header, once their lengths are known. */
  head: Buffer;
  headFilled: number;
  payloadLength: number;
  payloadLeft: number;
  frame?: Frame;
  pending?: Pending;
  receiver?: PayloadReceiver;
}

export class FramedConnection {
  private readonly socket: net.Socket;
  private readonly pending = new Map<number, Pending>();
  private nextRequestId = 1;
  private readonly connected: Promise<void>;
  /** The fixed header of the next reply, gathered across reads. */
  private readonly fixed = Buffer.allocUnsafe(FIXED_HEADER_BYTES);
  private fixedFilled = 0;
  private incoming: Incoming | undefined;
  dead = false;

  constructor(readonly address: string, private readonly onDead: (c: FramedConnection) => void) {
    const { host, port } = splitHostPort(address);
    // One read buffer for the connection's life: replies are copied out of it as they arrive
    // (into the caller's memory where a receiver says so), so no read allocates.
    this.socket = net.connect({
      host, port,
      onread: { buffer: Buffer.allocUnsafe(limits.framedReadBufferBytes), callback: (n: number, buf: Uint8Array) => { this.onRead(buf as Buffer, n); return true; } },
    });
    this.socket.setNoDelay(true);
    this.connected = new Promise((resolve, reject) => {
      this.socket.once('connect', () => resolve());
      this.socket.once('error', (err) => reject(flyfsError('FLYFS_ERR_UNAVAILABLE', `cannot connect to ${address}: ${err.message}`, { cause: err })));
    });
    this.connected.catch(() => { /* reported to the callers awaiting it */ });
    this.socket.on('error', () => { /* 'close' follows and fails what is pending */ });
    this.socket.on('close', () => this.fail(flyfsError('FLYFS_ERR_CLOSED', `connection to ${address} lost`)));
  }

  get inflight(): number { return this.pending.size; }

  private onRead(buf: Buffer, n: number): void {
    let at = 0;
    try {
      while (at < n && !this.dead) at = this.consume(buf, at, n);
    } catch (err) {
      this.fail(err as Error);
      this.socket.destroy();
    }
  }

  /** Consumes bytes [at, end) of the read buffer as far as the current part of a reply goes; returns where it stopped. */
  private consume(buf: Buffer, at: number, end: number): number {
    const inc = this.incoming;
    if (inc === undefined) {
      const k = Math.min(FIXED_HEADER_BYTES - this.fixedFilled, end - at);
      buf.copy(this.fixed, this.fixedFilled, at, at + k);
      this.fixedFilled += k;
      if (this.fixedFilled === FIXED_HEADER_BYTES) this.startReply();
      return at + k;
    }
    if (inc.frame === undefined) {
      const k = Math.min(inc.head.length - inc.headFilled, end - at);
      buf.copy(inc.head, inc.headFilled, at, at + k);
      inc.headFilled += k;
      if (inc.headFilled === inc.head.length) this.headerDone(inc);
      return at + k;
    }
    const k = Math.min(inc.payloadLeft, end - at);
    if (inc.pending?.abandoned === true) inc.receiver = discardingReceiver;
    inc.receiver!.write(buf.subarray(at, at + k));
    inc.payloadLeft -= k;
    if (inc.payloadLeft === 0) this.replyDone(inc);
    return at + k;
  }

  private startReply(): void {
    this.fixedFilled = 0;
    const headerLength = this.fixed.readUInt32LE(12);
    const payloadLength = this.fixed.readUInt32LE(16);
    if (headerLength > limits.frameHeaderBytesMax || FIXED_HEADER_BYTES + headerLength + payloadLength > limits.frameBytesMax) {
      throw flyfsError('FLYFS_ERR_BAD_FRAME', `reply of ${headerLength} + ${payloadLength} bytes exceeds the frame limits`);
    }
    const head = Buffer.allocUnsafe(FIXED_HEADER_BYTES + headerLength);
    this.fixed.copy(head, 0);
    // The codec checks the fixed and JSON headers of this frame without its payload, which the
    // receiver takes: the length it is handed says none follows.
    head.writeUInt32LE(0, 16);
    this.incoming = { head, headFilled: FIXED_HEADER_BYTES, payloadLength, payloadLeft: payloadLength };
    if (headerLength === 0) this.headerDone(this.incoming);
  }

  private headerDone(inc: Incoming): void {
    const decoder = new FrameDecoder(true);
    decoder.push(inc.head);
    const frame = decoder.next();
    if (frame === undefined) throw new Error('assertion failed: a whole frame header decodes');
    inc.frame = frame;
    const p = this.pending.get(frame.requestId);
    inc.pending = p;
    if (p === undefined) inc.receiver = discardingReceiver; // a reply to a request that already timed out
    else if (frame.status !== Status.Ok || p.receiver === undefined) inc.receiver = collectingReceiver(inc.payloadLength);
    else inc.receiver = p.receiver(frame.header, inc.payloadLength);
    if (inc.payloadLeft === 0) this.replyDone(inc);
  }

  private replyDone(inc: Incoming): void {
    this.incoming = undefined;
    const frame = inc.frame!;
    const p = inc.pending;
    if (p === undefined || this.pending.get(frame.requestId) !== p) return;
    this.pending.delete(frame.requestId);
    clearTimeout(p.timer);
    if (frame.status !== Status.Ok) { p.reject(errorFromReply(frame.header)); return; }
    let payload: Buffer;
    try { payload = inc.receiver!.end(); } catch (err) { p.reject(err as Error); return; }
    p.resolve({ ...frame, payload });
  }

  private fail(err: Error): void {
    if (!this.dead) { this.dead = true; this.onDead(this); }
    for (const p of this.pending.values()) { clearTimeout(p.timer); p.abandoned = true; p.reject(err); }
    this.pending.clear();
  }

  private allocRequestId(): number {
    for (;;) {
      const id = this.nextRequestId;
      this.nextRequestId = id === REQUEST_ID_MAX ? 1 : id + 1;
      if (!this.pending.has(id)) return id;
    }
  }

  /**
   * One request frame; resolves with its reply frame, rejects with the server's error or a
   * timeout. With `receiver`, a successful reply's payload goes where it says as it arrives.
   */
  async request(op: Op, header: object, payload?: Uint8Array, options: { deadlineMs?: number; receiver?: ReceiverFactory } = {}): Promise<Frame> {
    await this.connected;
    if (this.dead) throw flyfsError('FLYFS_ERR_CLOSED', 'connection lost');
    const deadlineMs = options.deadlineMs ?? limits.rpcDeadlineMsDefault;
    const requestId = this.allocRequestId();
    const [head, body] = encodeFrame({ op, requestId, header, ...(payload ? { payload } : {}) });
    return new Promise<Frame>((resolve, reject) => {
      const timer = setTimeout(() => {
        const p = this.pending.get(requestId);
        if (p !== undefined) p.abandoned = true;
        this.pending.delete(requestId);
        reject(flyfsError('FLYFS_ERR_TIMEOUT', `request ${requestId} to ${this.address} took over ${deadlineMs} ms`));
      }, deadlineMs);
      this.pending.set(requestId, { resolve, reject, timer, receiver: options.receiver, abandoned: false });
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
