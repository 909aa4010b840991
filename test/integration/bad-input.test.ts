// Bad input gets a clear error, the server keeps serving, nothing is lost: bad names, bad
// offsets, oversized messages, and a garbage byte stream on every listening port.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect as netConnect } from 'node:net';
import { connect, type FileSystem } from '../../client/index.js';
import { callUnary, grpc, loadProtos, channelOptions } from '../../common/grpc.js';
import { limits } from '../../common/limits.js';
import type { LocalCluster } from '../../tools/local-cluster.js';
import { seededBytes, startTestCluster } from '../helpers/cluster.js';

function errorCode(p: Promise<unknown>): Promise<string | undefined> {
  return p.then(() => undefined, (e: { code?: string | number; flyfsCode?: string }) => String(e.flyfsCode ?? e.code));
}

function sendGarbage(address: string, bytes: Buffer): Promise<void> {
  const i = address.lastIndexOf(':');
  return new Promise((resolve) => {
    const s = netConnect({ host: address.slice(0, i), port: Number(address.slice(i + 1)) }, () => {
      s.end(bytes);
    });
    s.on('error', () => resolve());
    s.on('close', () => resolve());
    // A server may keep a half-closed connection open; the point is only that it survives.
    setTimeout(() => s.destroy(), 300).unref();
  });
}

async function chainHead(cluster: LocalCluster): Promise<{ grpcAddress: string }> {
  for (const n of cluster.nodes.filter((x) => x.role === 'metaserver')) {
    const status = await (await fetch(`http://${n.httpAddress}/status`)).json() as { chain: { role: string } };
    if (status.chain.role === 'head') return n;
  }
  throw new Error('no metaserver heads the chain');
}

describe('bad input', () => {
  let cluster: LocalCluster;
  let cleanup: () => Promise<void>;
  let fs: FileSystem;
  const kept = seededBytes(4242, 300_000);

  beforeAll(async () => {
    const c = await startTestCluster('bad-input', { storageServers: 2, targetsPerServer: 1 });
    cluster = c.cluster;
    cleanup = c.cleanup;
    fs = await connect(cluster.clusterAddress);
    await fs.writeFile('/kept', kept);
  });

  afterAll(async () => { await fs?.close(); await cleanup?.(); });

  async function stillServing(): Promise<void> {
    const back = await fs.readFile('/kept') as Buffer;
    expect(Buffer.compare(back, kept)).toBe(0);
    for (const n of cluster.nodes) {
      const res = await fetch(`http://${n.httpAddress}/healthz`);
      expect(res.status, n.name).toBe(200);
    }
  }

  it('refuses bad names through the SDK with Node codes', async () => {
    expect(await errorCode(fs.mkdir('/a/./b'))).toBe('FLYFS_ERR_BAD_NAME');
    expect(await errorCode(fs.mkdir('/a/../b'))).toBe('FLYFS_ERR_BAD_NAME');
    expect(await errorCode(fs.writeFile('/nul\0name', 'x'))).toBe('FLYFS_ERR_BAD_NAME');
    expect(await errorCode(fs.mkdir('/' + 'x'.repeat(256)))).toBe('FLYFS_ERR_NAME_TOO_LONG');
    await expect(fs.mkdir('/..')).rejects.toMatchObject({ code: 'EINVAL', syscall: 'mkdir' });
    await expect(fs.mkdir('/' + 'y'.repeat(300))).rejects.toMatchObject({ code: 'ENAMETOOLONG' });
    // 255 bytes is still a good name.
    await fs.mkdir('/' + 'z'.repeat(255));
    await stillServing();
  });

  it('refuses bad names and paths at the metaserver with clear errors', async () => {
    const protos = loadProtos();
    // The head, which takes mutations (the others would answer NOT_HEAD, also a clear error).
    const head = await chainHead(cluster);
    const meta = new protos.flyfs.v1.Metadata(head.grpcAddress, grpc.credentials.createInsecure(), channelOptions);
    const ctx = { clientId: 'raw', requestId: 1 };
    const bad = ['relative', '/a/./b', '/a/../b', '/..', '/.', '/has\0nul', '/' + 'n'.repeat(256), '/' + 'p/'.repeat(3000)];
    for (const path of bad) {
      const code = await errorCode(callUnary(meta, meta.Mkdir, { ctx, path, mode: 0o755, recursive: true }));
      expect(['FLYFS_ERR_BAD_NAME', 'FLYFS_ERR_NAME_TOO_LONG', 'FLYFS_ERR_INVALID_ARGUMENT'], path.slice(0, 20)).toContain(code);
    }
    const huge = await errorCode(callUnary(meta, meta.Close, { ctx, inodeId: 999_999, sessionId: 1, length: 2 ** 60, lengthSet: true }));
    expect(huge).toBeDefined();
    const emptyCursor = await callUnary(meta, meta.Readdir, { path: '/', cursor: '', limit: 10_000_000 });
    expect(emptyCursor.entries.length).toBeLessThanOrEqual(limits.readdirPageMax);
    // The generated client's close() is the Close RPC; close the channel itself.
    grpc.Client.prototype.close.call(meta);
    await stillServing();
  });

  it('refuses negative and overflowing offsets and bad buffer ranges', async () => {
    const h = await fs.open('/kept', 'r+');
    const buf = Buffer.alloc(16);
    await expect(h.read(buf, 0, 16, -1)).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(h.read(buf, 0, 16, 2 ** 60)).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(h.write(buf, 0, 16, 2 ** 52)).rejects.toMatchObject({ code: 'EFBIG' });
    await expect(h.write(buf, 0, 16, -5)).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(h.read(buf, 8, 16, 0)).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(h.write(buf, -1, 4, 0)).rejects.toMatchObject({ code: 'EINVAL' });
    await h.close();
    await stillServing();
  });

  it('refuses chunk requests outside the chunk and messages over the limit at the storage server', async () => {
    const protos = loadProtos();
    const info = await fs.routingInfo();
    const chain = info.chains[0]!;
    const target = info.targets.find((t) => t.targetId === chain.targetIds[0])!;
    const node = info.nodes.find((n) => n.nodeId === target.nodeId)!;
    const storage = new protos.flyfs.v1.Storage(node.grpcAddress, grpc.credentials.createInsecure(),
      { 'grpc.max_send_message_length': -1, 'grpc.max_receive_message_length': -1 });
    const base = { chainId: chain.chainId, chainVersion: chain.version, chunk: { inodeId: 12345, index: 0 } };
    expect(await errorCode(callUnary(storage, storage.WriteChunk,
      { ...base, offset: 4096, data: Buffer.alloc(8192), chunkSize: 8192, clientId: 'raw', requestId: 1 }))).toBe('FLYFS_ERR_CHUNK_RANGE');
    expect(await errorCode(callUnary(storage, storage.ReadChunk,
      { ...base, offset: 0, length: limits.chunkSizeBytesMax + 1 }))).toBeDefined();
    expect(await errorCode(callUnary(storage, storage.WriteChunk,
      { ...base, chainVersion: chain.version + 7, offset: 0, data: Buffer.alloc(10), chunkSize: 8192, clientId: 'raw', requestId: 2 }))).toBe('FLYFS_ERR_STALE_CHAIN_VERSION');
    const tooBig = await errorCode(callUnary(storage, storage.WriteChunk,
      { ...base, offset: 0, data: Buffer.alloc(limits.grpcMessageBytesMax + 1024), chunkSize: limits.chunkSizeBytesMax, clientId: 'raw', requestId: 3 }));
    expect(tooBig).toBe('FLYFS_ERR_MESSAGE_TOO_LARGE');

    // The same refusals on a ChunkStream, each answered under its tag; the stream goes on.
    const stream = storage.ChunkStream();
    const replies = new Map<number, string>();
    const got = new Promise<void>((resolve) => {
      stream.on('data', (r: { tag: number; errorCode: string }) => { replies.set(r.tag, r.errorCode); if (replies.size === 4) resolve(); });
    });
    stream.on('error', () => undefined);
    stream.write({ tag: 1 });
    stream.write({ tag: 2, write: { ...base, offset: 4096, data: Buffer.alloc(8192), chunkSize: 8192, clientId: 'raw', requestId: 4 } });
    stream.write({ tag: 3, read: { ...base, chainId: 999_999, offset: 0, length: 10 } });
    stream.write({ tag: 4, read: { ...base, offset: 0, length: 10 } });
    await got;
    expect(Object.fromEntries(replies)).toEqual({ 1: 'FLYFS_ERR_INVALID_ARGUMENT', 2: 'FLYFS_ERR_CHUNK_RANGE', 3: 'FLYFS_ERR_UNKNOWN_CHAIN', 4: '' });
    stream.end();
    storage.close();
    await stillServing();
  });

  it('refuses bad input to every namespace RPC at the head with a registry error', async () => {
    const protos = loadProtos();
    const head = await chainHead(cluster);
    const meta = new protos.flyfs.v1.Metadata(head.grpcAddress, grpc.credentials.createInsecure(), channelOptions);
    let requestId = 100;
    const ctx = (): { clientId: string; requestId: number } => ({ clientId: 'raw-bad', requestId: requestId++ });
    const refused = ['FLYFS_ERR_BAD_NAME', 'FLYFS_ERR_NAME_TOO_LONG', 'FLYFS_ERR_INVALID_ARGUMENT', 'FLYFS_ERR_FILE_TOO_LARGE', 'FLYFS_ERR_LIMIT', 'FLYFS_ERR_NOT_FOUND', 'FLYFS_ERR_BAD_SESSION'];
    // One at a time: a head with writes in flight sends reads to the tail (NOT_READABLE).
    const attempts: Array<[string, () => Promise<unknown>]> = [
      ['symlink bad name', () => callUnary(meta, meta.Symlink, { ctx: ctx(), target: '/kept', path: '/a/../b' })],
      ['symlink huge target', () => callUnary(meta, meta.Symlink, { ctx: ctx(), target: 't'.repeat(limits.pathBytesMax + 1), path: '/huge-link' })],
      ['symlink empty target', () => callUnary(meta, meta.Symlink, { ctx: ctx(), target: '', path: '/empty-link' })],
      ['link relative', () => callUnary(meta, meta.Link, { ctx: ctx(), existingPath: 'kept', newPath: '/k2' })],
      ['link NUL', () => callUnary(meta, meta.Link, { ctx: ctx(), existingPath: '/kept', newPath: '/k\0' })],
      ['truncate past the largest file', () => callUnary(meta, meta.Truncate, { ctx: ctx(), path: '/kept', inodeId: 0, length: 2 ** 60 })],
      ['truncate no such inode', () => callUnary(meta, meta.Truncate, { ctx: ctx(), path: '', inodeId: 987_654_321, length: 1 })],
      ['setattr mode out of range', () => callUnary(meta, meta.SetAttr, { ctx: ctx(), path: '/kept', inodeId: 0, modeSet: true, mode: 0o777777, uidSet: false, uid: 0, gidSet: false, gid: 0, atimeSet: false, atimeMs: 0, mtimeSet: false, mtimeMs: 0 })],
      ['setattr time past 2^52', () => callUnary(meta, meta.SetAttr, { ctx: ctx(), path: '/kept', inodeId: 0, modeSet: false, mode: 0, uidSet: false, uid: 0, gidSet: false, gid: 0, atimeSet: true, atimeMs: 2 ** 60, mtimeSet: false, mtimeMs: 0 })],
      ['sync of no session', () => callUnary(meta, meta.Sync, { ctx: ctx(), inodeId: 1, sessionId: 424_242, length: 1 })],
      ['keepalive id too long', () => callUnary(meta, meta.KeepAlive, { clientId: 'c'.repeat(10_000) })],
      ['mutate batch over the limit', () => callUnary(meta, meta.MutateBatch, { ops: Array.from({ length: limits.mutateBatchMax + 1 }, () => ({ unlink: { ctx: ctx(), path: '/nope' } })) })],
      ['stat batch over the limit', () => callUnary(meta, meta.StatBatch, { requests: Array.from({ length: limits.statBatchMax + 1 }, () => ({ path: '/kept', noFollow: false })) })],
    ];
    for (const [what, call] of attempts) expect(refused, what).toContain(await errorCode(call()));
    const mgmt = new protos.flyfs.v1.Management(head.grpcAddress, grpc.credentials.createInsecure(), channelOptions);
    expect(await errorCode(callUnary(mgmt, mgmt.SetTargetAdmin, { targetId: 0, offline: true }))).toBe('FLYFS_ERR_INVALID_ARGUMENT');
    expect(await errorCode(callUnary(mgmt, mgmt.SetTargetAdmin, { targetId: 424_242, offline: true }))).toBe('FLYFS_ERR_NOT_FOUND');
    grpc.Client.prototype.close.call(mgmt);
    grpc.Client.prototype.close.call(meta);
    await stillServing();
  });

  it('answers each op of a mutation batch for itself: bad ops fail alone, good ones apply once', async () => {
    const protos = loadProtos();
    const head = await chainHead(cluster);
    const meta = new protos.flyfs.v1.Metadata(head.grpcAddress, grpc.credentials.createInsecure(), channelOptions);
    const ctx = (requestId: number): { clientId: string; requestId: number } => ({ clientId: 'raw-batch', requestId });
    const ops = [
      { mkdir: { ctx: ctx(1), path: '/batch-dir', mode: 0o755, recursive: false, layoutPolicy: null } },
      {},
      { open: { ctx: ctx(2), path: '/batch-dir/a\0b', flags: 5, mode: 0o644 } },
      { open: { ctx: ctx(3), path: '/batch-dir/f', flags: 5, mode: 0o644 } },
      { rename: { ctx: ctx(4), fromPath: '/batch-dir', toPath: '/batch-dir/f/under-itself' } },
      { unlink: { ctx: ctx(5), path: '/no-such-file' } },
    ];
    const first = await callUnary(meta, meta.MutateBatch, { ops });
    expect(first.results.map((r) => r.errorCode)).toEqual(['', 'FLYFS_ERR_INVALID_ARGUMENT', 'FLYFS_ERR_BAD_NAME', '', first.results[4]!.errorCode, 'FLYFS_ERR_NOT_FOUND']);
    expect(first.results[4]!.errorCode).not.toBe('');
    expect(first.results[3]!.inode?.inodeId).toBeGreaterThan(0);
    // The same batch again (a client's retry): the same answers, nothing applied twice.
    const again = await callUnary(meta, meta.MutateBatch, { ops });
    expect(again.results.map((r) => [r.errorCode, r.inode?.inodeId ?? 0])).toEqual(first.results.map((r) => [r.errorCode, r.inode?.inodeId ?? 0]));
    expect((await fs.readdir('/batch-dir')).sort()).toEqual(['f']);
    grpc.Client.prototype.close.call(meta);
    await stillServing();
  });

  it('refuses malformed replication traffic between metaservers, and the chain goes on', async () => {
    const protos = loadProtos();
    const metas = cluster.nodes.filter((n) => n.role === 'metaserver');
    expect(metas.length).toBe(3);
    const { packMessages } = await import('../../metaserver/replication/codec.js');
    const config = { epoch: 1, chain: [1, 2, 3], startIndex: 0 };
    const good = { kind: 'ping', from: 2, to: 1, config, sentAtMs: 1, promised: 1, lastIndex: 0, lastEpoch: 0, commitIndex: 0 };
    for (const m of metas) {
      const c = new protos.flyfs.v1.Replication(m.grpcAddress, grpc.credentials.createInsecure(), channelOptions);
      try {
        const deliver = (req: { from: number; messages: Buffer }): Promise<string | undefined> =>
          errorCode(callUnary(c, c.Deliver, req, 5_000)).then((code) => code);
        // Bytes that are not msgpack, a sender that is not a member, a message for another
        // member, a known kind with fields of the wrong type, an entry gap, a chain of strangers.
        expect(await deliver({ from: 2, messages: Buffer.from('not msgpack at all \xff\xfe') })).toBe('FLYFS_ERR_INVALID_ARGUMENT');
        expect(await deliver({ from: 9, messages: packMessages([]) })).toBe('FLYFS_ERR_INVALID_ARGUMENT');
        const wrong = [
          { ...good, to: 99 },
          { ...good, lastIndex: -1 },
          { ...good, kind: 'explode' },
          { ...good, config: { ...config, chain: [1, 7] } },
          { ...good, kind: 'append', prevIndex: 0, prevEpoch: 0, entries: [{ index: 2, epoch: 1, payload: null }], commitIndex: 0 },
          { ...good, kind: 'append', prevIndex: 0, prevEpoch: 0, entries: [{ index: 1, epoch: 1, payload: { writes: [['nope', 1, 2]] } }], commitIndex: 0 },
        ];
        for (const w of wrong) expect(await deliver({ from: 2, messages: packMessages([w as never]) }), JSON.stringify(w)).toBe('FLYFS_ERR_INVALID_ARGUMENT');
      } finally {
        c.close();
      }
    }
    await fs.writeFile('/after-replication-garbage', 'ok');
    expect((await fs.readFile('/after-replication-garbage')).toString()).toBe('ok');
    await stillServing();
  });

  it('survives a garbage byte stream on every listening port of every process', async () => {
    const garbage = [
      seededBytes(1, 64 * 1024),
      Buffer.from('GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\nxx'),
      Buffer.alloc(1024, 0xff),
      Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n' + 'z'.repeat(500)),
    ];
    for (const n of cluster.nodes) {
      const ports = [n.grpcAddress, n.httpAddress, ...(n.dataAddress ? [n.dataAddress] : [])];
      for (const address of ports) {
        for (const g of garbage) await sendGarbage(address, g);
      }
    }
    await stillServing();
    for (const n of cluster.nodes) expect(n.state, n.name).toBe('running');
  });
});
