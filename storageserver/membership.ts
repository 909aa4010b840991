// Membership of a storage server in the cluster map: registers with the management service
// (keeping the assigned node id in DATA/node.json and each target id in TARGET/target.json so a
// restart comes back as the same node), renews the lease by heartbeat, pulls routing info when
// its version moves, and knows which chains this server hosts. A server whose lease ran out
// stops serving chunk requests (notServingReason) until it renews: the lease deadline is counted
// from when the renewing request was SENT, so we stop before the manager can declare us failed.
// Per target it follows the public state routing info shows: serving answers everything, lastsrv
// only reads, syncing only writes (from its predecessor), waiting and offline nothing. Each
// heartbeat reports every target's local state (up-to-date, online, offline) for the manager's
// state rules.
import { promises as fsp } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { FlyfsError, flyfsError } from '../common/errors.js';
import { callUnary, channelOptions, grpc, loadProtos } from '../common/grpc.js';
import { chainId as toChainId, chainVersion as toChainVersion, nodeId as toNodeId, targetId as toTargetId, type ChainId, type NodeId, type TargetId } from '../common/ids.js';
import { limits } from '../common/limits.js';
import type { Logger } from '../common/log.js';
import { targetAccess, type PublicTargetState } from '../metaserver/target-states.js';
import type { LocalTargetState } from '../proto/gen/flyfs/v1/LocalTargetState.js';
import type { ManagementClient } from '../proto/gen/flyfs/v1/Management.js';
import type { RoutingInfo__Output } from '../proto/gen/flyfs/v1/RoutingInfo.js';
import type { TargetRegistration } from '../proto/gen/flyfs/v1/TargetRegistration.js';
import type { ChunkStore } from './chunk-store.js';
import type { ChainConfig, MemberState } from './craq/index.js';
import type { ChainRoute, RouteSource } from './service.js';

export interface LocalTarget {
  readonly path: string;
  readonly store: ChunkStore;
}

/** A local target's chain as the CRAQ core sees it, with where its peers listen. */
export interface LocalChain { targetIndex: number; config: ChainConfig }

export interface MembershipOptions {
  /** Called with the chain of every local target each time routing info is installed. */
  onChains?: (chains: LocalChain[]) => void;
  dataDir: string;
  mgmtAddresses: string[];
  targets: LocalTarget[];
  grpcAddress: string;
  dataAddress: string;
  httpAddress: string;
  logger: Logger;
}

export interface ChainStatus { chainId: number; version: number; targetId: number; state: string }

const publicStateFromWire: Record<string, PublicTargetState> = {
  TARGET_STATE_SERVING: 'serving', TARGET_STATE_SYNCING: 'syncing', TARGET_STATE_WAITING: 'waiting',
  TARGET_STATE_LASTSRV: 'lastsrv', TARGET_STATE_OFFLINE: 'offline',
};

/** The target's store as far as its public state lets it answer: a lastsrv target keeps its
 * committed data readable, a syncing one takes writes only. */
function guardedStore(store: ChunkStore, state: PublicTargetState): ChunkStore {
  const access = targetAccess(state);
  if (access.read && access.write) return store;
  const refuse = (what: string) => (): never => { throw flyfsError('FLYFS_ERR_NOT_SERVING', `target is ${state}: no ${what}`); };
  return {
    write: access.write ? store.write.bind(store) : refuse('writes'),
    removeFrom: access.write ? store.removeFrom.bind(store) : refuse('writes'),
    truncate: access.write ? store.truncate.bind(store) : refuse('writes'),
    read: access.read ? store.read.bind(store) : refuse('reads'),
    stat: access.read ? store.stat.bind(store) : refuse('reads'),
    usage: store.usage.bind(store),
    close: store.close.bind(store),
  };
}

/** A public state as the CRAQ core takes part: lastsrv stands where serving stood (it answers
 * reads; the shell's guard refuses its writes), waiting takes no part until it syncs. */
function coreState(s: PublicTargetState): MemberState {
  switch (s) {
    case 'serving': case 'lastsrv': return 'serving';
    case 'syncing': return 'syncing';
    case 'waiting': case 'offline': return 'offline';
  }
}

const registerBackoffMsMin = 50;
const registerBackoffMsMax = 2000;

async function readJson(path: string): Promise<Record<string, unknown> | undefined> {
  try {
    return JSON.parse(await fsp.readFile(path, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Writes a small JSON file atomically (temp, fsync, rename, fsync folder). */
async function writeJsonAtomic(dir: string, name: string, value: object): Promise<void> {
  const tmp = join(dir, `.${name}.tmp`);
  const fh = await fsp.open(tmp, 'w');
  try { await fh.writeFile(JSON.stringify(value) + '\n'); await fh.sync(); } finally { await fh.close(); }
  await fsp.rename(tmp, join(dir, name));
  const d = await fsp.open(dir, 'r');
  try { await d.sync(); } finally { await d.close(); }
}

function idField(v: Record<string, unknown> | undefined, name: string): number {
  const n = v?.[name];
  return typeof n === 'number' && Number.isInteger(n) && n > 0 ? n : 0;
}

export class Membership implements RouteSource {
  private nodeIdValue = 0;
  private targetIds: number[];
  private leaseMs: number = limits.leaseMsDefault;
  /** performance.now() deadline of the current lease; 0 = none held. */
  private leaseDeadline = 0;
  private routingVersion = -1;
  private chains = new Map<number, ChainRoute & { state: string }>();
  /** Public state of each local target, by target id, from the routing info held. */
  private publicStates = new Map<number, PublicTargetState>();
  /** Syncing targets whose fill completed: reported up-to-date until routing shows them serving. */
  private readonly synced = new Set<number>();
  private readonly clients = new Map<string, ManagementClient>();
  /** Index into mgmtAddresses of the manager that answered last. */
  private preferred = 0;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private sleepWake: (() => void) | undefined;
  private readonly log: Logger;
  /** Data-path address of every target's node, from the routing info held. */
  private dataAddresses = new Map<number, string>();

  constructor(private readonly options: MembershipOptions) {
    this.targetIds = options.targets.map(() => 0);
    this.log = options.logger;
  }

  get nodeId(): NodeId { return toNodeId(this.nodeIdValue); }

  // ---- RouteSource

  /** The chain's route while its local target may answer anything (waiting and offline targets
   * answer nothing: the chain is unknown here until they sync). */
  route(chainId: ChainId): ChainRoute | undefined {
    const c = this.chains.get(chainId);
    if (c === undefined) return undefined;
    const access = targetAccess(publicStateFromWire[c.state] ?? 'offline');
    return access.read || access.write ? c : undefined;
  }

  /** Called when the resync of a syncing target completed: the next heartbeats report it
   * up-to-date, and the manager makes it serving. */
  markSynced(targetId: number): void { this.synced.add(targetId); }

  notServingReason(): string | undefined {
    if (this.stopped) return 'server is stopping';
    if (this.nodeIdValue === 0) return 'not registered';
    if (performance.now() >= this.leaseDeadline) return 'lease expired';
    return undefined;
  }

  chainStatus(): ChainStatus[] {
    return [...this.chains.values()].map((c) => ({ chainId: c.chainId, version: c.version, targetId: c.targetId, state: c.state }));
  }

  targetIdOf(index: number): number { return this.targetIds[index] ?? 0; }

  /** Where the node holding a target takes data-path frames (undefined: not in the map). */
  dataAddressOf(targetId: number): string | undefined { return this.dataAddresses.get(targetId); }

  // ---- lifecycle

  /** Loads the persisted ids, registers (retrying until a manager answers), starts heartbeats. */
  async start(): Promise<void> {
    this.nodeIdValue = idField(await readJson(join(this.options.dataDir, 'node.json')), 'nodeId');
    for (const [i, t] of this.options.targets.entries()) {
      this.targetIds[i] = idField(await readJson(join(t.path, 'target.json')), 'targetId');
    }
    await this.registerUntilAnswered();
    this.scheduleHeartbeat();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.sleepWake?.();
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }

  private client(address: string): ManagementClient {
    let c = this.clients.get(address);
    if (!c) {
      const Ctor = loadProtos().flyfs.v1.Management;
      c = new Ctor(address, grpc.credentials.createInsecure(), channelOptions);
      this.clients.set(address, c);
    }
    return c;
  }

  /** Calls the managers in turn, starting with the one that answered last. */
  private async callAny<T>(call: (c: ManagementClient) => Promise<T>): Promise<T> {
    const addrs = this.options.mgmtAddresses;
    let last: unknown;
    let i = this.preferred;
    // One round over the metaservers, plus the head a refusal names (the chain head manages).
    for (let k = 0; k <= addrs.length; k++) {
      try {
        const out = await call(this.client(addrs[i]!));
        this.preferred = i;
        return out;
      } catch (err) {
        last = err;
        // A manager that answered with a flyfs code is authoritative: do not ask the next one.
        if (err instanceof FlyfsError && !err.retryable && err.code !== 'FLYFS_ERR_INTERNAL') throw err;
        const hinted = err instanceof FlyfsError && err.hint !== undefined ? addrs.indexOf(err.hint) : -1;
        i = hinted >= 0 && hinted !== i ? hinted : (i + 1) % addrs.length;
      }
    }
    throw last;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => { this.sleepWake = undefined; resolve(); }, ms);
      this.sleepWake = () => { clearTimeout(t); this.sleepWake = undefined; resolve(); };
    });
  }

  private async registerUntilAnswered(): Promise<void> {
    let backoffMs = registerBackoffMsMin;
    for (let attempt = 1; !this.stopped; attempt++) {
      try {
        await this.register();
        return;
      } catch (err) {
        this.log.warn({ err, attempt }, 'registration failed; retrying');
        await this.sleep(backoffMs);
        backoffMs = Math.min(registerBackoffMsMax, backoffMs * 2);
      }
    }
    throw new FlyfsError('FLYFS_ERR_CLOSED', 'stopped before registering');
  }

  private async targetRegistrations(): Promise<TargetRegistration[]> {
    return Promise.all(this.options.targets.map(async (t, i) => {
      const targetId = this.targetIds[i] ?? 0;
      try {
        const u = await t.store.usage();
        return { targetId, path: t.path, capacityBytes: u.capacityBytes, usedBytes: u.usedBytes, localState: this.localState(targetId) };
      } catch (err) {
        // A target whose file system does not answer is a failed medium: the manager takes it out.
        this.log.warn({ err, targetId, path: t.path }, 'target does not answer: reporting it offline');
        return { targetId, path: t.path, capacityBytes: 0, usedBytes: 0, localState: 'LOCAL_TARGET_STATE_OFFLINE' as const };
      }
    }));
  }

  /** up-to-date while serving (or once a sync completed), online otherwise: a target that comes
   * back after being declared failed must go through waiting and syncing. */
  private localState(targetId: number): LocalTargetState {
    const s = this.publicStates.get(targetId);
    if (s === 'serving') { this.synced.delete(targetId); return 'LOCAL_TARGET_STATE_UP_TO_DATE'; }
    if (s === 'syncing' && this.synced.has(targetId)) return 'LOCAL_TARGET_STATE_UP_TO_DATE';
    return 'LOCAL_TARGET_STATE_ONLINE';
  }

  private async register(): Promise<void> {
    const targets = await this.targetRegistrations();
    const sentAt = performance.now();
    const reply = await this.callAny((c) => callUnary(c, c.RegisterNode, {
      nodeId: this.nodeIdValue, role: 'NODE_ROLE_STORAGESERVER',
      grpcAddress: this.options.grpcAddress, dataAddress: this.options.dataAddress, httpAddress: this.options.httpAddress,
      targets, pid: process.pid, hostname: hostname(),
    }, registerBackoffMsMax * 2));
    if (reply.nodeId <= 0 || reply.targetIds.length !== targets.length) {
      throw new FlyfsError('FLYFS_ERR_INTERNAL', `manager answered node ${reply.nodeId} with ${reply.targetIds.length} target ids for ${targets.length} targets`);
    }
    if (reply.nodeId !== this.nodeIdValue) {
      await writeJsonAtomic(this.options.dataDir, 'node.json', { nodeId: reply.nodeId });
    }
    for (const [i, t] of this.options.targets.entries()) {
      const id = reply.targetIds[i]!;
      if (id !== this.targetIds[i]) await writeJsonAtomic(t.path, 'target.json', { targetId: id, nodeId: reply.nodeId });
    }
    this.nodeIdValue = reply.nodeId;
    this.targetIds = [...reply.targetIds];
    this.leaseMs = reply.leaseMs > 0 ? reply.leaseMs : limits.leaseMsDefault;
    await this.pullRouting(reply.routingVersion);
    this.leaseDeadline = sentAt + this.leaseMs;
    this.log.info({ nodeId: reply.nodeId, targetIds: reply.targetIds, leaseMs: this.leaseMs }, 'registered');
  }

  private async pullRouting(version: number): Promise<void> {
    const info = await this.callAny((c) => callUnary(c, c.GetRoutingInfo, { knownVersion: 0 }));
    this.applyRouting(info);
    this.routingVersion = Math.max(version, info.version);
  }

  /** Rebuilds chain → {version, local target} from routing info. */
  private applyRouting(info: RoutingInfo__Output): void {
    const localIndex = new Map<number, number>();
    this.targetIds.forEach((id, i) => localIndex.set(id, i));
    const versions = new Map(info.chains.map((c) => [c.chainId, c.version]));
    const next = new Map<number, ChainRoute & { state: string }>();
    const states = new Map<number, PublicTargetState>();
    for (const t of info.targets) {
      const i = localIndex.get(t.targetId);
      if (i === undefined || t.nodeId !== this.nodeIdValue) continue;
      const state = publicStateFromWire[t.state] ?? 'offline';
      states.set(t.targetId, state);
      const version = versions.get(t.chainId);
      if (t.chainId === 0 || version === undefined) continue;
      const previous = this.publicStates.get(t.targetId);
      if (previous !== undefined && previous !== state) this.log.info({ targetId: t.targetId, chainId: t.chainId, from: previous, to: state }, 'target state changed');
      next.set(t.chainId, {
        chainId: toChainId(t.chainId), version: toChainVersion(version), targetId: toTargetId(t.targetId),
        store: guardedStore(this.options.targets[i]!.store, state), state: t.state,
      });
    }
    this.chains = next;
    this.publicStates = states;
    const nodeAddress = new Map(info.nodes.map((n) => [n.nodeId, n.dataAddress]));
    this.dataAddresses = new Map(info.targets.map((t) => [t.targetId, nodeAddress.get(t.nodeId) ?? '']));
    const targetState = new Map<number, string>(info.targets.map((t) => [t.targetId, t.state]));
    const local: LocalChain[] = [];
    for (const c of info.chains) {
      for (const id of c.targetIds) {
        const i = localIndex.get(id);
        if (i === undefined) continue;
        const members = c.targetIds.map((targetId, j) => ({
          target: toTargetId(targetId),
          state: coreState(publicStateFromWire[c.targetStates[j] ?? targetState.get(targetId) ?? ''] ?? 'offline'),
        }));
        local.push({ targetIndex: i, config: { chainId: toChainId(c.chainId), version: toChainVersion(c.version), members } });
      }
    }
    this.options.onChains?.(local);
  }

  private heartbeatIntervalMs(): number {
    return Math.max(1, Math.floor(this.leaseMs / limits.heartbeatsPerLease));
  }

  private scheduleHeartbeat(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => { void this.heartbeatOnce().finally(() => this.scheduleHeartbeat()); }, this.heartbeatIntervalMs());
  }

  private async heartbeatOnce(): Promise<void> {
    const wasServing = this.notServingReason() === undefined;
    try {
      const targets = await this.targetRegistrations();
      const sentAt = performance.now();
      const reply = await this.callAny((c) => callUnary(c, c.Heartbeat, { nodeId: this.nodeIdValue, targets }, this.heartbeatIntervalMs()));
      if (reply.leaseMs > 0) this.leaseMs = reply.leaseMs;
      if (reply.routingVersion !== this.routingVersion) await this.pullRouting(reply.routingVersion);
      this.leaseDeadline = sentAt + this.leaseMs;
      if (!wasServing) this.log.info({ nodeId: this.nodeIdValue }, 'lease renewed: serving again');
    } catch (err) {
      if (this.stopped) return;
      if (err instanceof FlyfsError && err.code === 'FLYFS_ERR_UNKNOWN_NODE') {
        this.log.warn({ nodeId: this.nodeIdValue }, 'manager does not know this node: registering again');
        try { await this.register(); } catch (e) { this.log.warn({ err: e }, 're-registration failed'); }
        return;
      }
      const reason = this.notServingReason();
      this.log.warn({ err, serving: reason === undefined }, reason === undefined ? 'heartbeat failed' : 'heartbeat failed: lease expired, not serving');
    }
  }
}
