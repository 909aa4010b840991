import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { callUnary, channelOptions, grpc, loadProtos } from '../../common/grpc.js';
import { FlyfsError } from '../../common/errors.js';
import { limits } from '../../common/limits.js';
import { parseMetaserverArgs, startMetaserver, type RunningMetaserver } from '../../metaserver/main.js';
import type { ManagementClient } from '../../proto/gen/flyfs/v1/Management.js';
import type { MetadataClient } from '../../proto/gen/flyfs/v1/Metadata.js';

let dir: string;
let ms: RunningMetaserver;
let meta: MetadataClient;
let mgmt: ManagementClient;
const removals: number[] = [];

async function codeOf(p: Promise<unknown>): Promise<string> {
  try { await p; } catch (err) { return err instanceof FlyfsError ? err.code : `not flyfs: ${String(err)}`; }
  return 'no error';
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'flyfs-meta-grpc-'));
  ms = await startMetaserver(parseMetaserverArgs(['--data', dir, '--port', '0', '--http-port', '0', '--stripe', '4', '--chunk-size', '65536']), {
    removeChunks: async ({ chainId }) => { removals.push(chainId); },
  });
  const p = loadProtos().flyfs.v1;
  meta = new p.Metadata(ms.grpcAddress, grpc.credentials.createInsecure(), channelOptions);
  mgmt = new p.Management(ms.grpcAddress, grpc.credentials.createInsecure(), channelOptions);
});
afterAll(async () => {
  // The Metadata service's Close RPC shadows grpc.Client#close on the generated client.
  if (meta !== undefined) grpc.Client.prototype.close.call(meta);
  mgmt?.close();
  await ms?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('metaserver over gRPC', () => {
  it('serves the cluster map and the namespace, and survives malformed requests', async () => {
    expect(ms.grpcAddress).toMatch(/^127\.0\.0\.1:\d+$/);
    const noChains = await codeOf(callUnary(meta, meta.Open, { path: '/early', flags: 2 | 4 }));
    expect(noChains).toBe('FLYFS_ERR_NO_CHAINS');

    const reg = await callUnary(mgmt, mgmt.RegisterNode, {
      nodeId: 0, role: 'NODE_ROLE_STORAGESERVER', grpcAddress: '127.0.0.1:1', dataAddress: '127.0.0.1:2', httpAddress: '127.0.0.1:3', pid: 5, hostname: 'h',
      targets: [1, 2, 3].map((i) => ({ targetId: 0, path: `/t${i}`, capacityBytes: 10, usedBytes: 0 })),
    });
    expect(reg.nodeId).toBe(1);
    expect(reg.targetIds).toEqual([1, 2, 3]);
    expect(reg.leaseMs).toBe(limits.leaseMsDefault);
    const hb = await callUnary(mgmt, mgmt.Heartbeat, { nodeId: reg.nodeId, targets: [] });
    expect(hb.routingVersion).toBe(reg.routingVersion);
    expect(await codeOf(callUnary(mgmt, mgmt.Heartbeat, { nodeId: 99, targets: [] }))).toBe('FLYFS_ERR_UNKNOWN_NODE');
    const routing = await callUnary(mgmt, mgmt.GetRoutingInfo, { knownVersion: 0 });
    expect(routing.nodes.map((n) => [n.nodeId, n.state])).toEqual([[1, 'NODE_STATE_ALIVE']]);
    expect(routing.targets.map((t) => t.state)).toEqual(['TARGET_STATE_SERVING', 'TARGET_STATE_SERVING', 'TARGET_STATE_SERVING']);
    expect(routing.chainTables[0]).toMatchObject({ tableId: 1, chainIds: [1, 2, 3] });

    const d = await callUnary(meta, meta.Mkdir, { ctx: { clientId: 'c', requestId: 1 }, path: '/data', mode: 0o750, recursive: false });
    expect(d.inode!.type).toBe('INODE_TYPE_DIRECTORY');
    const open = await callUnary(meta, meta.Open, { ctx: { clientId: 'c', requestId: 2 }, path: '/data/f', flags: 2 | 4, mode: 0o644 });
    expect(open.sessionId).toBeGreaterThan(0);
    expect(open.inode!.layout).toMatchObject({ chunkSize: 65536, stripe: 3, chainTableId: 1 });
    const closed = await callUnary(meta, meta.Close, { inodeId: open.inode!.inodeId, sessionId: open.sessionId, length: 1_000_000, lengthSet: true });
    expect(closed.inode!.length).toBe(1_000_000);
    const st = await callUnary(meta, meta.Stat, { path: '/data/f' });
    expect(st.inode!.length).toBe(1_000_000);
    const ls = await callUnary(meta, meta.Readdir, { path: '/data', cursor: '', limit: 0 });
    expect(ls.entries).toEqual([{ name: 'f', type: 'INODE_TYPE_FILE', inodeId: open.inode!.inodeId }]);
    await callUnary(meta, meta.Rename, { ctx: { clientId: 'c', requestId: 3 }, fromPath: '/data/f', toPath: '/data/g' });
    // The truncating open removes chunks before replying.
    const t = await callUnary(meta, meta.Open, { path: '/data/g', flags: 2 | 16 });
    expect(t.inode!.length).toBe(0);
    expect(removals.sort()).toEqual([...open.inode!.layout!.chains].sort());
    await callUnary(meta, meta.Close, { inodeId: t.inode!.inodeId, sessionId: t.sessionId, length: 0, lengthSet: false }); // an open session would hold the inode
    await callUnary(meta, meta.Unlink, { ctx: { clientId: 'c', requestId: 4 }, path: '/data/g' });
    await callUnary(meta, meta.Unlink, { ctx: { clientId: 'c', requestId: 4 }, path: '/data/g' }); // a retry
    await callUnary(meta, meta.Rmdir, { path: '/data' });

    expect(await codeOf(callUnary(meta, meta.Mkdir, { path: '/a/../b' }))).toBe('FLYFS_ERR_BAD_NAME');
    expect(await codeOf(callUnary(meta, meta.Mkdir, { path: '/' + 'x'.repeat(300) }))).toBe('FLYFS_ERR_NAME_TOO_LONG');
    expect(await codeOf(callUnary(meta, meta.Stat, { path: '' }))).toBe('FLYFS_ERR_INVALID_ARGUMENT');
    expect(await codeOf(callUnary(meta, meta.Close, { inodeId: 1, sessionId: 1, length: 2 ** 53 + 10, lengthSet: true }))).toBe('FLYFS_ERR_INVALID_ARGUMENT');
    expect(await codeOf(callUnary(meta, meta.Rmdir, { path: '/' }))).toBe('FLYFS_ERR_BUSY');
    expect(await codeOf(callUnary(mgmt, mgmt.RegisterNode, { nodeId: 0, grpcAddress: '', targets: [] }))).toBe('FLYFS_ERR_INVALID_ARGUMENT');
    // Still serving.
    expect((await callUnary(meta, meta.Stat, { path: '/' })).inode!.inodeId).toBe(1);
  });

  it('serves /healthz, /metrics, /status and /dashboard', async () => {
    const base = `http://${ms.httpAddress}`;
    const health = await fetch(`${base}/healthz`);
    expect(health.status).toBe(200);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/flyfs_requests_total\{method="Mkdir"\} \d+/);
    expect(metrics).toMatch(/flyfs_request_errors_total\{code="FLYFS_ERR_BAD_NAME",method="Mkdir"\} 1/);
    const status = await (await fetch(`${base}/status`)).json() as { role: string; grpcAddress: string; nodes: Array<{ state: string }>; inodeCount: number; chains: unknown[] };
    expect(status.role).toBe('metaserver');
    expect(status.grpcAddress).toBe(ms.grpcAddress);
    expect(status.nodes[0]!.state).toBe('alive');
    expect(status.chains).toHaveLength(3);
    expect(status.inodeCount).toBe(1);
    const dash = await fetch(`${base}/dashboard`);
    expect(dash.headers.get('content-type')).toContain('text/html');
    expect(await dash.text()).toContain('127.0.0.1:1');
  });
});

describe('config', () => {
  it('parses flags and refuses bad ones', () => {
    const c = parseMetaserverArgs(['--data', '/tmp/x', '--host', '0.0.0.0', '--port', '7000', '--http-port=7001', '--lease-ms', '3000']);
    expect(c).toMatchObject({ dataDir: '/tmp/x', host: '0.0.0.0', grpcPort: 7000, httpPort: 7001, leaseMs: 3000, rootStripe: limits.stripeDefault, rootChunkSizeBytes: limits.chunkSizeBytesDefault });
    const codeOfSync = (argv: string[]): string => { try { parseMetaserverArgs(argv); return 'no error'; } catch (e) { return (e as FlyfsError).code; } };
    expect(codeOfSync([])).toBe('FLYFS_ERR_BAD_CONFIG');
    expect(codeOfSync(['--data'])).toBe('FLYFS_ERR_BAD_CONFIG');
    expect(codeOfSync(['--data', 'd', '--port', '-1'])).toBe('FLYFS_ERR_BAD_CONFIG');
    expect(codeOfSync(['--data', 'd', '--port', '70000'])).toBe('FLYFS_ERR_BAD_CONFIG');
    expect(codeOfSync(['--data', 'd', '--chunk-size', '1000'])).toBe('FLYFS_ERR_BAD_CONFIG');
    expect(codeOfSync(['--data', 'd', '--stripe', '0'])).toBe('FLYFS_ERR_BAD_CONFIG');
    expect(codeOfSync(['--data', 'd', '--bogus', '1'])).toBe('FLYFS_ERR_BAD_CONFIG');
  });
});
