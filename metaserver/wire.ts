// Conversions between wire messages (proto/gen) and the metaserver's domain types.
import type { Inode } from '../proto/gen/flyfs/v1/Inode.js';
import type { InodeType } from '../proto/gen/flyfs/v1/InodeType.js';
import type { LocalTargetState as WireLocalTargetState } from '../proto/gen/flyfs/v1/LocalTargetState.js';
import type { NodeRole } from '../proto/gen/flyfs/v1/NodeRole.js';
import type { RequestContext__Output } from '../proto/gen/flyfs/v1/RequestContext.js';
import type { SetAttrRequest__Output } from '../proto/gen/flyfs/v1/SetAttrRequest.js';
import type { RoutingInfo as WireRoutingInfo } from '../proto/gen/flyfs/v1/RoutingInfo.js';
import type { TargetRegistration__Output } from '../proto/gen/flyfs/v1/TargetRegistration.js';
import type { TargetState as WireTargetState } from '../proto/gen/flyfs/v1/TargetState.js';
import type { NodeRoleName, RoutingInfo, TargetRegistration } from './cluster-map.js';
import type { LocalTargetState, PublicTargetState } from './target-states.js';
import type { AttrChange, InodeKind, InodeRecord, RequestContext } from './types.js';

const kindToWire: Record<InodeKind, InodeType> = { file: 'INODE_TYPE_FILE', dir: 'INODE_TYPE_DIRECTORY', symlink: 'INODE_TYPE_SYMLINK' };

export function inodeTypeToWire(kind: InodeKind): InodeType { return kindToWire[kind]; }

export function inodeToWire(i: InodeRecord): Inode {
  return {
    inodeId: i.inodeId, type: kindToWire[i.kind], mode: i.mode, nlink: i.nlink, length: i.length,
    ctimeMs: i.ctimeMs, mtimeMs: i.mtimeMs, atimeMs: i.atimeMs, birthtimeMs: i.birthtimeMs,
    uid: i.uid, gid: i.gid, symlinkTarget: i.target ?? '',
    layout: i.layout === undefined ? null : {
      chunkSize: i.layout.chunkSizeBytes, stripe: i.layout.stripe, chainTableId: i.layout.chainTableId,
      chainTableVersion: i.layout.chainTableVersion, chains: [...i.layout.chains], seed: i.layout.seed,
    },
    layoutPolicy: i.layoutPolicy === undefined ? null : {
      chunkSize: i.layoutPolicy.chunkSizeBytes, stripe: i.layoutPolicy.stripe, chainTableId: i.layoutPolicy.chainTableId,
    },
  };
}

export function ctxFromWire(ctx: RequestContext__Output | null | undefined): RequestContext | undefined {
  if (ctx === null || ctx === undefined) return undefined;
  return { clientId: ctx.clientId, requestId: ctx.requestId };
}

/** The fields a SetAttr request marks as set. */
export function attrChangeFromWire(r: SetAttrRequest__Output): AttrChange {
  return {
    ...(r.modeSet ? { mode: r.mode } : {}),
    ...(r.uidSet ? { uid: r.uid } : {}),
    ...(r.gidSet ? { gid: r.gid } : {}),
    ...(r.atimeSet ? { atimeMs: r.atimeMs } : {}),
    ...(r.mtimeSet ? { mtimeMs: r.mtimeMs } : {}),
  };
}

const roleFromWire: Record<string, NodeRoleName> = {
  NODE_ROLE_METASERVER: 'metaserver', NODE_ROLE_STORAGESERVER: 'storageserver', NODE_ROLE_KVCACHE: 'kvcache',
};
const roleToWire: Record<NodeRoleName, NodeRole> = {
  metaserver: 'NODE_ROLE_METASERVER', storageserver: 'NODE_ROLE_STORAGESERVER', kvcache: 'NODE_ROLE_KVCACHE', unspecified: 'NODE_ROLE_UNSPECIFIED',
};

export function nodeRoleFromWire(role: string): NodeRoleName { return roleFromWire[role] ?? 'unspecified'; }

const localStateFromWire: Record<string, LocalTargetState> = {
  LOCAL_TARGET_STATE_UP_TO_DATE: 'up-to-date', LOCAL_TARGET_STATE_ONLINE: 'online', LOCAL_TARGET_STATE_OFFLINE: 'offline',
};
const localStateToWire: Record<LocalTargetState, WireLocalTargetState> = {
  'up-to-date': 'LOCAL_TARGET_STATE_UP_TO_DATE', online: 'LOCAL_TARGET_STATE_ONLINE', offline: 'LOCAL_TARGET_STATE_OFFLINE',
};
const targetStateToWire: Record<PublicTargetState, WireTargetState> = {
  serving: 'TARGET_STATE_SERVING', syncing: 'TARGET_STATE_SYNCING', waiting: 'TARGET_STATE_WAITING', lastsrv: 'TARGET_STATE_LASTSRV', offline: 'TARGET_STATE_OFFLINE',
};

export function targetsFromWire(ts: readonly TargetRegistration__Output[]): TargetRegistration[] {
  return ts.map((t) => ({
    targetId: t.targetId, path: t.path, capacityBytes: t.capacityBytes, usedBytes: t.usedBytes, localState: localStateFromWire[t.localState],
  }));
}

export function routingToWire(r: RoutingInfo): WireRoutingInfo {
  return {
    version: r.version,
    nodes: r.nodes.map((n) => ({
      nodeId: n.nodeId, role: roleToWire[n.role], grpcAddress: n.grpcAddress, dataAddress: n.dataAddress, httpAddress: n.httpAddress,
      state: n.state === 'alive' ? 'NODE_STATE_ALIVE' : 'NODE_STATE_EXPIRED', leaseExpiresMs: n.leaseExpiresMs, pid: n.pid, hostname: n.hostname,
    })),
    targets: r.targets.map((t) => ({
      targetId: t.targetId, nodeId: t.nodeId, chainId: t.chainId, path: t.path, capacityBytes: t.capacityBytes, usedBytes: t.usedBytes,
      state: targetStateToWire[t.state],
      localState: t.localState === undefined ? 'LOCAL_TARGET_STATE_UNSPECIFIED' : localStateToWire[t.localState],
      adminOffline: t.adminOffline ?? false,
    })),
    chains: r.chains.map((c) => ({ chainId: c.chainId, version: c.version, targetIds: [...c.targetIds], targetStates: c.states.map((s) => targetStateToWire[s]) })),
    chainTables: r.chainTables.map((t) => ({ tableId: t.tableId, version: t.version, chainIds: [...t.chainIds] })),
  };
}
