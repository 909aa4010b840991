// gRPC handlers of the Management and Metadata services: wire <-> domain at the edge, one
// metrics record per request. Malformed requests fail with a registry error; the server goes on.
import { FlyfsError, flyfsError } from '../common/errors.js';
import { unary } from '../common/grpc.js';
import type { MetricsRegistry } from '../common/metrics.js';
import type { ManagementHandlers } from '../proto/gen/flyfs/v1/Management.js';
import type { MetadataHandlers } from '../proto/gen/flyfs/v1/Metadata.js';
import type { ClusterMap } from './cluster-map.js';
import type { MetaStore } from './store.js';
import { attrChangeFromWire, ctxFromWire, inodeToWire, inodeTypeToWire, nodeRoleFromWire, routingToWire, targetsFromWire } from './wire.js';

export interface ServiceDeps { store: MetaStore; clusterMap: ClusterMap; metrics: MetricsRegistry }

function recorded<Req, Res>(metrics: MetricsRegistry, method: string, fn: (req: Req) => Promise<Res> | Res) {
  return unary<Req, Res>(async (req) => {
    const start = process.hrtime.bigint();
    try {
      if (req === null || typeof req !== 'object') throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', 'empty request');
      const res = await fn(req);
      metrics.record(method, start);
      return res;
    } catch (err) {
      metrics.record(method, start, { code: err instanceof FlyfsError ? err.code : 'FLYFS_ERR_INTERNAL' });
      throw err;
    }
  });
}

export function managementHandlers(d: ServiceDeps): ManagementHandlers {
  const m = d.metrics;
  return {
    RegisterNode: recorded(m, 'RegisterNode', async (req) => {
      const r = await d.clusterMap.register({
        nodeId: req.nodeId, role: nodeRoleFromWire(req.role), grpcAddress: req.grpcAddress, dataAddress: req.dataAddress,
        httpAddress: req.httpAddress, pid: req.pid, hostname: req.hostname, targets: targetsFromWire(req.targets),
      });
      return { nodeId: r.nodeId, targetIds: r.targetIds, leaseMs: r.leaseMs, routingVersion: r.routingVersion };
    }),
    Heartbeat: recorded(m, 'Heartbeat', async (req) => d.clusterMap.heartbeat(req.nodeId, targetsFromWire(req.targets))),
    GetRoutingInfo: recorded(m, 'GetRoutingInfo', async () => routingToWire(await d.clusterMap.routingInfo())),
  };
}

export function metadataHandlers(d: ServiceDeps): MetadataHandlers {
  const m = d.metrics;
  const s = d.store;
  return {
    Mkdir: recorded(m, 'Mkdir', async (req) => {
      const p = req.layoutPolicy;
      const inode = await s.mkdir(req.path, {
        mode: req.mode, recursive: req.recursive, ctx: ctxFromWire(req.ctx),
        layoutPolicy: p === null ? undefined : { chunkSizeBytes: p.chunkSize, stripe: p.stripe, chainTableId: p.chainTableId },
      });
      return { inode: inodeToWire(inode) };
    }),
    Open: recorded(m, 'Open', async (req) => {
      const r = await s.open(req.path, { flags: req.flags, mode: req.mode, ctx: ctxFromWire(req.ctx) });
      return { inode: inodeToWire(r.inode), sessionId: r.sessionId };
    }),
    Stat: recorded(m, 'Stat', (req) => ({ inode: inodeToWire(s.stat(req.path, { noFollow: req.noFollow })) })),
    Readdir: recorded(m, 'Readdir', (req) => {
      const page = s.readdir(req.path, { cursor: req.cursor, limit: req.limit });
      return { entries: page.entries.map((e) => ({ name: e.name, inodeId: e.inodeId, type: inodeTypeToWire(e.kind) })), nextCursor: page.nextCursor };
    }),
    Rename: recorded(m, 'Rename', async (req) => { await s.rename(req.fromPath, req.toPath, { ctx: ctxFromWire(req.ctx) }); return {}; }),
    Unlink: recorded(m, 'Unlink', async (req) => { await s.unlink(req.path, { ctx: ctxFromWire(req.ctx) }); return {}; }),
    Rmdir: recorded(m, 'Rmdir', async (req) => { await s.rmdir(req.path, { ctx: ctxFromWire(req.ctx) }); return {}; }),
    Close: recorded(m, 'Close', async (req) => {
      const inode = await s.closeFile({ inodeId: req.inodeId, sessionId: req.sessionId, length: req.length, lengthSet: req.lengthSet, ctx: ctxFromWire(req.ctx) });
      return { inode: inodeToWire(inode) };
    }),
    Symlink: recorded(m, 'Symlink', async (req) => ({ inode: inodeToWire(await s.symlink(req.target, req.path, { ctx: ctxFromWire(req.ctx) })) })),
    Readlink: recorded(m, 'Readlink', (req) => ({ target: s.readlink(req.path) })),
    Link: recorded(m, 'Link', async (req) => ({ inode: inodeToWire(await s.link(req.existingPath, req.newPath, { ctx: ctxFromWire(req.ctx) })) })),
    Truncate: recorded(m, 'Truncate', async (req) => ({
      inode: inodeToWire(await s.truncate({ path: req.path, inodeId: req.inodeId, length: req.length, ctx: ctxFromWire(req.ctx) })),
    })),
    SetAttr: recorded(m, 'SetAttr', async (req) => ({
      inode: inodeToWire(await s.setattr({ path: req.path, inodeId: req.inodeId, change: attrChangeFromWire(req), ctx: ctxFromWire(req.ctx) })),
    })),
    Sync: recorded(m, 'Sync', async (req) => ({
      inode: inodeToWire(await s.sync({ inodeId: req.inodeId, sessionId: req.sessionId, length: req.length, ctx: ctxFromWire(req.ctx) })),
    })),
    KeepAlive: recorded(m, 'KeepAlive', (req) => { s.keepAlive(req.clientId); return {}; }),
  };
}
