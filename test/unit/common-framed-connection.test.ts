// The client side of the framed protocol against a scripted server: replies cut at every byte
// boundary still decode, payloads land in the caller's memory through receivers, a timed-out
// request's late reply touches nothing, and framed RPC carries a proto service's unary methods.
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { flyfsError, FlyfsError } from '../../common/errors.js';
import { encodeFrame, errorReplyHeader, FrameDecoder, Op, packJsonPayload, REPLY_BIT, Status, type Frame } from '../../common/frame.js';
import { FramedConnection, FramedPool } from '../../common/framed-connection.js';
import { framedRpcDispatch, framedServiceClient } from '../../common/framed-rpc.js';
import { startFramedServer, type FramedServer } from '../../common/framed-server.js';
import { callUnary, loadProtos, unary } from '../../common/grpc.js';
import { silentLogger } from '../../common/log.js';
import { FramedTransport } from '../../client/framed-transport.js';
import type { MetadataClient } from '../../proto/gen/flyfs/v1/Metadata.js';

type Answer = (req: Frame) => { status?: number; header: object; payload?: Uint8Array; delayMs?: number } | undefined;

/** A server that answers each request by `answer`, writing every reply `cut` bytes at a time. */
async function scriptedServer(answer: Answer, cut: number): Promise<{ address: string; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    const decoder = new FrameDecoder(false);
    socket.on('data', (chunk: Buffer) => {
      decoder.push(chunk);
      for (let f = decoder.next(); f !== undefined; f = decoder.next()) {
        const req = f;
        const a = answer(req);
        if (a === undefined) continue;
        const bytes = Buffer.concat(encodeFrame({ op: req.op | REPLY_BIT, status: a.status ?? Status.Ok, requestId: req.requestId, header: a.header, ...(a.payload ? { payload: a.payload } : {}) }));
        const send = (): void => { for (let at = 0; at < bytes.length; at += cut) socket.write(bytes.subarray(at, at + cut)); };
        if (a.delayMs === undefined) send(); else setTimeout(send, a.delayMs);
      }
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    address: `127.0.0.1:${port}`,
    close: () => new Promise<void>((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }),
  };
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => { for (const c of cleanups.splice(0).reverse()) await c(); });

function pattern(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7) & 0xff;
  return b;
}

describe('framed connection', () => {
  it.each([1, 7, 24, 4096, 1 << 20])('decodes replies written %i bytes at a time, many in flight', async (cut) => {
    const srv = await scriptedServer((req) => ({ header: { n: req.header['n'] }, payload: pattern(Number(req.header['n']), Number(req.header['n'])) }), cut);
    cleanups.push(() => srv.close());
    const conn = new FramedConnection(srv.address, () => undefined);
    cleanups.push(() => conn.close());
    const sizes = [0, 1, 23, 24, 25, 4095, 65_536, 300_000];
    const replies = await Promise.all(sizes.map((n) => conn.request(Op.StatChunk, { n })));
    replies.forEach((f, k) => {
      expect(f.header['n']).toBe(sizes[k]);
      expect(f.payload.equals(pattern(sizes[k]!, sizes[k]!))).toBe(true);
    });
  });

  it('rejects with the server error code, hint and path', async () => {
    const srv = await scriptedServer(() => ({ status: Status.Error, header: errorReplyHeader(flyfsError('FLYFS_ERR_NOT_HEAD', 'go there', { hint: '127.0.0.1:9', path: '/x' })) }), 5);
    cleanups.push(() => srv.close());
    const conn = new FramedConnection(srv.address, () => undefined);
    cleanups.push(() => conn.close());
    const err = await conn.request(Op.StatChunk, {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FlyfsError);
    expect((err as FlyfsError).code).toBe('FLYFS_ERR_NOT_HEAD');
    expect((err as FlyfsError).hint).toBe('127.0.0.1:9');
    expect((err as FlyfsError).path).toBe('/x');
  });

  it('a reply arriving after its request timed out writes nothing into the caller buffer', async () => {
    const srv = await scriptedServer(() => ({ header: {}, payload: pattern(100_000, 3), delayMs: 150 }), 1000);
    cleanups.push(() => srv.close());
    const conn = new FramedConnection(srv.address, () => undefined);
    cleanups.push(() => conn.close());
    const into = Buffer.alloc(100_000);
    const err = await conn.request(Op.ReadChunk, {}, undefined, {
      deadlineMs: 50,
      receiver: () => ({ write: (b) => { b.copy(into); }, end: () => into }),
    }).catch((e: unknown) => e);
    expect((err as FlyfsError).code).toBe('FLYFS_ERR_TIMEOUT');
    await new Promise((r) => setTimeout(r, 400));
    expect(into.equals(Buffer.alloc(100_000))).toBe(true);
    // The connection stays usable after the late reply was read and dropped.
    const next = await conn.request(Op.ReadChunk, {});
    expect(next.payload.length).toBe(100_000);
  });

  it('ReadChunks replies land in the callers\' buffers, failed items apart', async () => {
    const lengths = [5000, 0, 70_000, 3];
    const srv = await scriptedServer(() => {
      const described = lengths.map((n, k) => k === 1 ? { ok: false, code: 'FLYFS_ERR_CHECKSUM', message: 'bad' } : { ok: true, length: n, chunkLength: n, exists: true });
      return { header: {}, payload: packJsonPayload(described, lengths.filter((_, k) => k !== 1).map((n) => pattern(n, n))) };
    }, 999);
    cleanups.push(() => srv.close());
    const t = new FramedTransport();
    cleanups.push(() => t.close());
    const backing = Buffer.alloc(80_000);
    const into = [backing.subarray(0, 5000), backing.subarray(5000, 6000), backing.subarray(6000, 76_000), backing.subarray(76_000, 76_010)];
    const args = lengths.map((n, index) => ({ chainId: 1, chainVersion: 1, inodeId: 1, index, offset: 0, length: Math.max(n, 1) }));
    args[3]!.length = 10;
    const items = await t.readChunks({ nodeId: 1, grpcAddress: '', dataAddress: srv.address }, args, into);
    expect(items.map((i) => i.ok)).toEqual([true, false, true, true]);
    for (const k of [0, 2, 3]) {
      const item = items[k]!;
      if (!item.ok) throw new Error('unreachable');
      expect(item.data.buffer).toBe(backing.buffer);
      expect(item.data.equals(pattern(lengths[k]!, lengths[k]!))).toBe(true);
      expect(into[k]!.subarray(0, lengths[k]!).equals(pattern(lengths[k]!, lengths[k]!))).toBe(true);
    }
    const failed = items[1]!;
    expect(!failed.ok && (failed.error as FlyfsError).code).toBe('FLYFS_ERR_CHECKSUM');
  });

  it('ReadChunks refuses a reply that answers more bytes than asked, and the connection goes on', async () => {
    let calls = 0;
    const srv = await scriptedServer(() => {
      calls++;
      const n = calls === 1 ? 200 : 100;
      return { header: {}, payload: packJsonPayload([{ ok: true, length: n, chunkLength: n, exists: true }], [pattern(n, 1)]) };
    }, 64);
    cleanups.push(() => srv.close());
    const t = new FramedTransport();
    cleanups.push(() => t.close());
    const into = [Buffer.alloc(100)];
    const to = { nodeId: 1, grpcAddress: '', dataAddress: srv.address };
    const args = [{ chainId: 1, chainVersion: 1, inodeId: 1, index: 0, offset: 0, length: 100 }];
    const err = await t.readChunks(to, args, into).catch((e: unknown) => e);
    expect((err as FlyfsError).code).toBe('FLYFS_ERR_BAD_FRAME');
    const ok = await t.readChunks(to, args, into);
    expect(ok[0]!.ok).toBe(true);
    expect(into[0]!.equals(pattern(100, 1))).toBe(true);
  });
});

describe('framed RPC', () => {
  it('serves a proto service\'s unary methods with its messages and error codes', async () => {
    const protos = loadProtos();
    const handlers = {
      Readlink: unary(async (req: { path: string }) => {
        if (req.path === '/missing') throw flyfsError('FLYFS_ERR_NOT_FOUND', req.path, { path: req.path });
        return { target: `-> ${req.path}` };
      }),
    };
    let server: FramedServer | undefined;
    server = await startFramedServer({ host: '127.0.0.1', port: 0, logger: silentLogger(), dispatch: framedRpcDispatch([{ definition: protos.flyfs.v1.Metadata.service, handlers }]) });
    cleanups.push(() => server!.close());
    const pool = new FramedPool(1);
    cleanups.push(() => pool.close());
    const client = framedServiceClient<MetadataClient>(protos.flyfs.v1.Metadata.service, pool, `127.0.0.1:${server.port}`);
    expect((await callUnary(client, client.Readlink, { path: '/a/b' })).target).toBe('-> /a/b');
    const missing = await callUnary(client, client.Readlink, { path: '/missing' }).catch((e: unknown) => e);
    expect((missing as FlyfsError).code).toBe('FLYFS_ERR_NOT_FOUND');
    expect((missing as FlyfsError).path).toBe('/missing');
    // A method the server does not serve, and a request that does not decode: clear errors.
    const unserved = await callUnary(client, client.Stat, { path: '/' }).catch((e: unknown) => e);
    expect((unserved as FlyfsError).code).toBe('FLYFS_ERR_INVALID_ARGUMENT');
    const raw = new FramedConnection(`127.0.0.1:${server.port}`, () => undefined);
    cleanups.push(() => raw.close());
    const garbage = await raw.request(Op.Rpc, { m: protos.flyfs.v1.Metadata.service.Readlink.path }, Buffer.from([0xff, 0xff, 0xff])).catch((e: unknown) => e);
    expect((garbage as FlyfsError).code).toBe('FLYFS_ERR_INVALID_ARGUMENT');
    const wrongOp = await raw.request(Op.ReadChunk, {}).catch((e: unknown) => e);
    expect((wrongOp as FlyfsError).code).toBe('FLYFS_ERR_BAD_FRAME');
    expect((await callUnary(client, client.Readlink, { path: '/still' })).target).toBe('-> /still');
  });
});
