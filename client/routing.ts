// The client's cache of routing info: chain -> head target -> storage node endpoint, with the
// chain version every data request carries. Refreshed on demand (a stale version, an unknown
// chain, a target not serving) with concurrent refreshes collapsed into one.
import { flyfsError } from '../common/errors.js';
import type { StorageEndpoint } from './chunk-transport.js';
import type { RoutingInfo } from './metadata-client.js';

export interface ChainRoute {
  chainId: number;
  chainVersion: number;
  /** The head: where writes go. */
  endpoint: StorageEndpoint;
  /** Every serving member, head first: any of them answers reads with committed data. */
  readers: StorageEndpoint[];
}

export class RoutingCache {
  private info: RoutingInfo | undefined;
  private routes = new Map<number, ChainRoute>();
  private inflight: Promise<void> | undefined;

  constructor(private readonly fetch: () => Promise<RoutingInfo>) {}

  get version(): number { return this.info?.version ?? 0; }

  refresh(): Promise<void> {
    this.inflight ??= this.fetch().then((info) => { this.install(info); }).finally(() => { this.inflight = undefined; });
    return this.inflight;
  }

  private install(info: RoutingInfo): void {
    const nodes = new Map(info.nodes.map((n) => [n.nodeId, n]));
    const targets = new Map(info.targets.map((t) => [t.targetId, t]));
    const routes = new Map<number, ChainRoute>();
    for (const chain of info.chains) {
      const readers: StorageEndpoint[] = [];
      for (const id of chain.targetIds) {
        const t = targets.get(id);
        const node = t === undefined || t.state !== 'TARGET_STATE_SERVING' ? undefined : nodes.get(t.nodeId);
        if (node !== undefined) readers.push({ nodeId: node.nodeId, grpcAddress: node.grpcAddress, dataAddress: node.dataAddress });
      }
      const head = readers[0];
      if (head === undefined) continue;
      routes.set(chain.chainId, { chainId: chain.chainId, chainVersion: chain.version, endpoint: head, readers });
    }
    this.info = info;
    this.routes = routes;
  }

  async route(chainId: number): Promise<ChainRoute> {
    if (!this.info) await this.refresh();
    const r = this.routes.get(chainId);
    if (!r) throw flyfsError('FLYFS_ERR_NOT_SERVING', `chain ${chainId} has no serving target`);
    return r;
  }
}
