// gRPC handlers of the Management and Metadata services: wire <-> domain at the edge, one
// metrics record per request. Malformed requests fail with a registry error; the server goes on.
import { FlyfsError, flyfsError } from '../common/errors.js';
import { unary } from '../common/grpc.js';
import { limits } from '../common/limits.js';
import type { MetricsRegistry } from '../common/metrics.js';
import type { ManagementHandlers } from '../proto/gen/flyfs/v1/Management.js';
import type { MetadataHandlers } from '../proto/gen/flyfs/v1/Metadata.js';
import type { Inode } from '../proto/gen/flyfs/v1/Inode.js';
import type { MutateOp__Output } from '../proto/gen/flyfs/v1/MutateOp.js';
import type { MutateBatchRequest__Output } from '../proto/gen/flyfs/v1/MutateBatchRequest.js';
import type { MutateBatchReply } from '../proto/gen/flyfs/v1/MutateBatchReply.js';
import type { ClusterMap } from './cluster-map.js';
import type { MetaReplica } from './replication/replica.js';
import type { MetaStore } from './store.js';
import { attrChangeFromWire, ctxFromWire, inodeToWire, inodeTypeToWire, nodeRoleFromWire, routingToWire, targetsFromWire } from './wire.js';

export interface ServiceDeps {
  store: MetaStore; clusterMap: ClusterMap; replica: MetaReplica; metrics: MetricsRegistry;
  /** This metaserver's framed RPC address ('' while it has none). */
  framedAddress: () => string;
}

/** Where a request may run: reads on a replica that serves committed state, the rest on the head. */
type Access = 'read' | 'head';

function recorded<Req, Res>(d: ServiceDeps, method: string, access: Access, fn: (req: Req) => Promise<Res> | Res) {
  const metrics = d.metrics;
  return unary<Req, Res>(async (req) => {
    const start = process.hrtime.bigint();
    try {
      if (req === null || typeof req !== 'object') throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', 'empty request');
      if (access === 'read') {
        const barrier = d.replica.readBarrier();
        if (barrier !== undefined) await barrier;
      } else if (!d.replica.isServingHead()) {
        // Checked before any side effect (a truncate cuts chunks before it commits).
        throw flyfsError('FLYFS_ERR_NOT_HEAD', undefined, { hint: d.replica.headAddress() });
      }
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
  return {
    RegisterNode: recorded(d, 'RegisterNode', 'head', async (req) => {
      const r = await d.clusterMap.register({
        nodeId: req.nodeId, role: nodeRoleFromWire(req.role), grpcAddress: req.grpcAddress, dataAddress: req.dataAddress,
        httpAddress: req.httpAddress, pid: req.pid, hostname: req.hostname, targets: targetsFromWire(req.targets),
      });
      return { nodeId: r.nodeId, targetIds: r.targetIds, leaseMs: r.leaseMs, routingVersion: r.routingVersion };
    }),
    Heartbeat: recorded(d, 'Heartbeat', 'head', async (req) => d.clusterMap.heartbeat(req.nodeId, targetsFromWire(req.targets))),
    GetRoutingInfo: recorded(d, 'GetRoutingInfo', 'head', async () => routingToWire(await d.clusterMap.routingInfo())),
    SetTargetAdmin: recorded(d, 'SetTargetAdmin', 'head', async (req) => d.clusterMap.setTargetAdmin(req.targetId, req.offline)),
  };
}

/** The mutations MutateBatch carries: each is also its own unary RPC. */
type MutateOps = {
  [K in NonNullable<MutateOp__Output['op']>]: (req: NonNullable<MutateOp__Output[K]>) => Promise<MutateReply>;
};
type MutateReply = { inode?: Inode | null; sessionId?: number };

function mutateOps(s: MetaStore): MutateOps {
  return {
    mkdir: async (req) => {
      const p = req.layoutPolicy;
      const inode = await s.mkdir(req.path, {
        mode: req.mode, recursive: req.recursive, ctx: ctxFromWire(req.ctx),
        layoutPolicy: p === null ? undefined : { chunkSizeBytes: p.chunkSize, stripe: p.stripe, chainTableId: p.chainTableId },
      });
      return { inode: inodeToWire(inode) };
    },
    open: async (req) => {
      const r = await s.open(req.path, { flags: req.flags, mode: req.mode, ctx: ctxFromWire(req.ctx) });
      return { inode: inodeToWire(r.inode), sessionId: r.sessionId };
    },
    close: async (req) => ({
      inode: inodeToWire(await s.closeFile({ inodeId: req.inodeId, sessionId: req.sessionId, length: req.length, lengthSet: req.lengthSet, ctx: ctxFromWire(req.ctx) })),
    }),
    rename: async (req) => { await s.rename(req.fromPath, req.toPath, { ctx: ctxFromWire(req.ctx) }); return {}; },
    unlink: async (req) => { await s.unlink(req.path, { ctx: ctxFromWire(req.ctx) }); return {}; },
    rmdir: async (req) => { await s.rmdir(req.path, { ctx: ctxFromWire(req.ctx) }); return {}; },
  };
}

/**
 * Runs every op of a MutateBatch: all are proposed in this turn (one group commit), in order;
 * each answers for itself. A malformed op fails alone; more than the limit fails the call.
 */
async function mutateBatch(ops: MutateOps, req: MutateBatchRequest__Output): Promise<MutateBatchReply> {
  if (req.ops.length > limits.mutateBatchMax) throw flyfsError('FLYFS_ERR_LIMIT', `at most ${limits.mutateBatchMax} mutations in one batch`);
  const run = (op: MutateOp__Output): Promise<MutateReply> => {
    const kind = op.op;
    const body = kind === undefined ? undefined : op[kind];
    if (kind === undefined || body === undefined || body === null) return Promise.reject(flyfsError('FLYFS_ERR_INVALID_ARGUMENT', 'a batch op carries no request'));
    return (ops[kind] as (r: typeof body) => Promise<MutateReply>)(body);
  };
  const results = await Promise.all(req.ops.map((op) => run(op).then(
    (r) => ({ inode: r.inode ?? null, sessionId: r.sessionId ?? 0, errorCode: '', errorMessage: '', errorHint: '' }),
    (err: unknown) => {
      if (!(err instanceof FlyfsError)) throw err;
      return { inode: null, sessionId: 0, errorCode: err.code, errorMessage: err.message, errorHint: err.hint ?? '' };
    },
  )));
  return { results };
}

export function metadataHandlers(d: ServiceDeps): MetadataHandlers {
  const s = d.store;
  const ops = mutateOps(s);
  return {
    Mkdir: recorded(d, 'Mkdir', 'head', ops.mkdir),
    Open: recorded(d, 'Open', 'head', ops.open),
    MutateBatch: recorded(d, 'MutateBatch', 'head', (req) => mutateBatch(ops, req)),
    Stat: recorded(d, 'Stat', 'read', (req) => ({ inode: inodeToWire(s.stat(req.path, { noFollow: req.noFollow })) })),
    StatBatch: recorded(d, 'StatBatch', 'read', (req) => {
      if (req.requests.length > limits.statBatchMax) throw flyfsError('FLYFS_ERR_LIMIT', `at most ${limits.statBatchMax} stats in one batch`);
      return {
        items: req.requests.map((r) => {
          try {
            return { inode: inodeToWire(s.stat(r.path, { noFollow: r.noFollow })), errorCode: '', errorMessage: '' };
          } catch (err) {
            if (!(err instanceof FlyfsError)) throw err;
            return { inode: null, errorCode: err.code, errorMessage: err.message };
          }
        }),
      };
    }),
    Readdir: recorded(d, 'Readdir', 'read', (req) => {
      const page = s.readdir(req.path, { cursor: req.cursor, limit: req.limit });
      return { entries: page.entries.map((e) => ({ name: e.name, inodeId: e.inodeId, type: inodeTypeToWire(e.kind) })), nextCursor: page.nextCursor };
    }),
    Rename: recorded(d, 'Rename', 'head', ops.rename),
    Unlink: recorded(d, 'Unlink', 'head', ops.unlink),
    Rmdir: recorded(d, 'Rmdir', 'head', ops.rmdir),
    Close: recorded(d, 'Close', 'head', ops.close),
    Symlink: recorded(d, 'Symlink', 'head', async (req) => ({ inode: inodeToWire(await s.symlink(req.target, req.path, { ctx: ctxFromWire(req.ctx) })) })),
    Readlink: recorded(d, 'Readlink', 'read', (req) => ({ target: s.readlink(req.path) })),
    Link: recorded(d, 'Link', 'head', async (req) => ({ inode: inodeToWire(await s.link(req.existingPath, req.newPath, { ctx: ctxFromWire(req.ctx) })) })),
    Truncate: recorded(d, 'Truncate', 'head', async (req) => ({
      inode: inodeToWire(await s.truncate({ path: req.path, inodeId: req.inodeId, length: req.length, ctx: ctxFromWire(req.ctx) })),
    })),
    SetAttr: recorded(d, 'SetAttr', 'head', async (req) => ({
      inode: inodeToWire(await s.setattr({ path: req.path, inodeId: req.inodeId, change: attrChangeFromWire(req), ctx: ctxFromWire(req.ctx) })),
    })),
    Sync: recorded(d, 'Sync', 'head', async (req) => ({
      inode: inodeToWire(await s.sync({ inodeId: req.inodeId, sessionId: req.sessionId, length: req.length, ctx: ctxFromWire(req.ctx) })),
    })),
    KeepAlive: recorded(d, 'KeepAlive', 'head', (req) => { s.keepAlive(req.clientId); return {}; }),
    // Any replica answers, whatever its role: it says only where it listens.
    GetEndpoints: unary(async () => ({ framedAddress: d.framedAddress() })),
  };
}
