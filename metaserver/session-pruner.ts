// Pruning the write sessions of dead clients. A client holding sessions sends KeepAlive
// periodically; the metaserver remembers in memory when it last heard each one (ClientLiveness),
// and the SessionPruner ends, in one mutation, the sessions of every client unheard for longer
// than the session timeout; deletions those sessions held back then finish. After a restart
// nobody has been heard yet, so every holder gets one whole timeout from the first look.
import type { Logger } from '../common/log.js';
import { flyfsError } from '../common/errors.js';
import { Periodic } from '../common/periodic.js';
import type { MetaStore } from './store.js';

export class ClientLiveness {
  private readonly lastHeardMs = new Map<string, number>();

  constructor(private readonly clientsMax: number) {}

  /** A new head's term: nobody has been heard yet, so everybody gets one timeout of grace. */
  clear(): void { this.lastHeardMs.clear(); }

  heard(clientId: string, nowMs: number): void {
    if (!this.lastHeardMs.has(clientId) && this.lastHeardMs.size >= this.clientsMax) {
      throw flyfsError('FLYFS_ERR_LIMIT', `more than ${this.clientsMax} clients keep sessions alive`);
    }
    this.lastHeardMs.set(clientId, nowMs);
  }

  /**
   * The holders unheard since `sinceMs`. A holder never heard counts as heard now; clients that
   * hold nothing and were not heard since `sinceMs` are forgotten, which bounds the map.
   */
  unheard(holders: ReadonlySet<string>, nowMs: number, sinceMs: number): string[] {
    const dead: string[] = [];
    for (const id of holders) {
      const at = this.lastHeardMs.get(id);
      if (at === undefined) this.lastHeardMs.set(id, nowMs);
      else if (at < sinceMs) dead.push(id);
    }
    for (const [id, at] of this.lastHeardMs) if (at < sinceMs) this.lastHeardMs.delete(id);
    return dead;
  }
}

export interface SessionPrunerOptions {
  store: MetaStore;
  intervalMs: number;
  timeoutMs: number;
  now?: () => number;
  logger?: Logger;
  /** Timed passes run only while this holds (the chain head). */
  active?: () => boolean;
}

export class SessionPruner {
  private readonly periodic: Periodic;
  private readonly now: () => number;

  constructor(private readonly o: SessionPrunerOptions) {
    this.now = o.now ?? Date.now;
    this.periodic = new Periodic({ intervalMs: o.intervalMs, pass: () => this.pass(), logger: o.logger, what: 'session prune', active: o.active });
  }

  start(): void { this.periodic.start(); }
  stop(): Promise<void> { return this.periodic.stop(); }

  /** One look; resolves to how many sessions were pruned. */
  runOnce(): Promise<number> { return this.periodic.runOnce(); }

  private async pass(): Promise<number> {
    const t = this.now();
    const dead = this.o.store.liveness.unheard(this.o.store.sessionClients(), t, t - this.o.timeoutMs);
    if (dead.length === 0) return 0;
    const { pruned } = await this.o.store.pruneSessions(dead);
    this.o.logger?.info({ clients: dead.length, sessions: pruned }, 'pruned the write sessions of clients no longer heard');
    return pruned;
  }
}
