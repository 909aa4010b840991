// Background chunk garbage collection: drains the persisted GC queue by asking the storage
// servers to remove each removed file's chunks; failures stay queued and back off.
import type { Logger } from '../common/log.js';
import { limits } from '../common/limits.js';
import { metaserverLimits } from './config.js';
import { Periodic } from '../common/periodic.js';
import type { MetaStore } from './store.js';
import type { ChunkRemover, GcEntry } from './types.js';

export interface GcRunnerOptions {
  store: MetaStore;
  remover: ChunkRemover;
  intervalMs: number;
  now?: () => number;
  logger?: Logger;
  /** Timed passes run only while this holds (the chain head). */
  active?: () => boolean;
}

export class GcRunner {
  private readonly periodic: Periodic;
  private readonly now: () => number;

  constructor(private readonly o: GcRunnerOptions) {
    this.now = o.now ?? Date.now;
    this.periodic = new Periodic({ intervalMs: o.intervalMs, pass: () => this.pass(), logger: o.logger, what: 'gc pass', active: o.active });
  }

  start(): void { this.periodic.start(); }
  stop(): Promise<void> { return this.periodic.stop(); }

  /** One pass over the due entries; resolves to how many entries were finished. */
  runOnce(): Promise<number> { return this.periodic.runOnce(); }

  private async pass(): Promise<number> {
    const t = this.now();
    const due = this.o.store.gcEntries(limits.gcBatchMax).filter((e) => e.nextAttemptMs <= t);
    let done = 0;
    for (const entry of due) if (await this.attempt(entry)) done++;
    return done;
  }

  private async attempt(entry: GcEntry): Promise<boolean> {
    const results = await Promise.allSettled(entry.chains.map((chainId) => this.o.remover({ inodeId: entry.inodeId, chainId, fromIndex: entry.fromIndex })));
    const left = entry.chains.filter((_, i) => results[i]!.status === 'rejected');
    if (left.length > 0) {
      const first = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      this.o.logger?.warn({ inodeId: entry.inodeId, chains: left, err: first.reason }, 'chunk removal failed, will retry');
    }
    const backoffMs = Math.min(this.o.intervalMs * 2 ** Math.min(entry.attempts, 16), metaserverLimits.gcBackoffMsMax);
    await this.o.store.gcUpdate(entry, left, this.now() + backoffMs);
    return left.length === 0;
  }
}
