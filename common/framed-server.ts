// The server side of the framed protocol (common/frame.ts, docs/data-protocol.md): a TCP listener
// whose connections each run many requests at once and reply in completion order, matched by
// request id. At most limits.frameInflightPerConnectionMax requests of one connection are in
// flight; beyond that the socket is paused (TCP pushes back on the client), and a request's slot
// is released only once its reply is handed to the socket. A malformed stream closes that
// connection only. What a request does is the caller's `dispatch` (the storage servers' data path,
// the metaservers' framed RPC).
import net from 'node:net';
import { FlyfsError } from './errors.js';
import { encodeFrame, errorReplyHeader, FrameDecoder, REPLY_BIT, Status, type Frame } from './frame.js';
import { limits } from './limits.js';
import type { Logger } from './log.js';

/** Runs one decoded request; resolves to the reply header and payload, or rejects (an error reply). */
export type FrameDispatch = (frame: Frame) => Promise<{ header: object; payload?: Uint8Array }>;

export interface FramedServer {
  readonly port: number;
  close(): Promise<void>;
}

class FramedServerConnection {
  private readonly decoder = new FrameDecoder(false);
  private inflight = 0;
  private paused = false;
  private closed = false;

  constructor(private readonly socket: net.Socket, private readonly dispatch: FrameDispatch, private readonly log: Logger) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => { this.decoder.push(chunk); this.pump(); });
    socket.on('error', (err) => { this.log.debug({ err }, 'framed connection error'); });
    socket.on('close', () => { this.closed = true; });
  }

  /** Starts as many buffered requests as the in-flight bound allows; pauses reading beyond it. */
  private pump(): void {
    while (!this.closed && this.inflight < limits.frameInflightPerConnectionMax) {
      let frame: Frame | undefined;
      try {
        frame = this.decoder.next();
      } catch (err) {
        this.log.error({ err, remote: this.socket.remoteAddress, port: this.socket.remotePort }, 'garbage on a framed connection: closing it');
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
    let run: Promise<{ header: object; payload?: Uint8Array }>;
    try { run = this.dispatch(frame); } catch (err) { run = Promise.reject(err); }
    run.then(
      (r) => this.reply(frame, Status.Ok, r.header, r.payload),
      (err: unknown) => {
        const fe = err instanceof FlyfsError ? err : new FlyfsError('FLYFS_ERR_INTERNAL', err instanceof Error ? err.message : String(err), { cause: err });
        if (fe.code === 'FLYFS_ERR_INTERNAL') this.log.error({ err }, 'framed request failed');
        return this.reply(frame, Status.Error, errorReplyHeader(fe));
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
      // Header and payload go out as two writes in one batch: the payload is never copied.
      this.socket.cork();
      this.socket.write(head);
      if (body.length > 0) this.socket.write(body, () => resolve());
      else this.socket.write(EMPTY, () => resolve());
      process.nextTick(() => this.socket.uncork());
    });
  }
}

const EMPTY = Buffer.alloc(0);

export async function startFramedServer(options: { host: string; port: number; dispatch: FrameDispatch; logger: Logger }): Promise<FramedServer> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    new FramedServerConnection(socket, options.dispatch, options.logger);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => { server.off('error', reject); resolve(); });
  });
  server.on('error', (err) => options.logger.error({ err }, 'framed server error'));
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('framed server has no TCP address');
  return {
    port: addr.port,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const s of sockets) s.destroy();
    }),
  };
}
