// The background scrub of a storage server: every `intervalMs` each target's chunk engine reads
// and verifies every committed chunk against its CRC32C. Damaged chunks are logged, counted in
// /metrics and listed in /status, and each is repaired from another replica of its chain when
// one holds a good copy of the same version (`repair`); what stays damaged is reported.
import type { ChunkKey } from '../common/ids.js';
import type { Logger } from '../common/log.js';
import type { MetricsRegistry } from '../common/metrics.js';
import { Periodic } from '../common/periodic.js';
import type { ChunkEngine } from './chunk-engine.js';

/** Damaged chunks listed per target in /status. */
const damagedListedMax = 100;

export interface ScrubReport {
  readonly path: string;
  /** Wall-clock time the last pass over this target ended; undefined before the first. */
  readonly lastPassAtMs?: number;
  readonly lastPassMs?: number;
  readonly damagedCount: number;
  readonly damaged: readonly ChunkKey[];
  readonly error?: string;
}

export class Scrubber {
  private readonly periodic: Periodic;
  private readonly reports = new Map<string, ScrubReport>();

  constructor(private readonly o: {
    intervalMs: number; targets: ReadonlyArray<{ path: string; store: ChunkEngine }>; logger: Logger; metrics: MetricsRegistry;
    /** Repairs a damaged chunk of target `index` from a replica; resolves to whether it did. */
    repair?: (index: number, key: ChunkKey) => Promise<boolean>;
  }) {
    for (const t of o.targets) this.reports.set(t.path, { path: t.path, damagedCount: 0, damaged: [] });
    this.periodic = new Periodic({ intervalMs: o.intervalMs, pass: () => this.pass(), logger: o.logger, what: 'scrub' });
    const damaged = o.metrics.gauge('flyfs_scrub_damaged_chunks', 'Chunks the last scrub pass found damaged, by target.');
    for (const t of o.targets) damaged.track({ target: t.path }, () => this.reports.get(t.path)?.damagedCount ?? 0);
  }

  start(): void { if (this.o.intervalMs > 0) this.periodic.start(); }

  stop(): Promise<void> { return this.periodic.stop(); }

  /** One pass over every target; resolves to the damaged chunks found. */
  runOnce(): Promise<number> { return this.periodic.runOnce(); }

  status(): ScrubReport[] { return [...this.reports.values()]; }

  private async pass(): Promise<number> {
    let damagedTotal = 0;
    for (const [index, t] of this.o.targets.entries()) {
      const start = Date.now();
      try {
        const found = await t.store.scrub();
        const damaged: ChunkKey[] = [];
        let repaired = 0;
        for (const key of found) {
          if (this.o.repair !== undefined && await this.o.repair(index, key).catch(() => false)) repaired++;
          else damaged.push(key);
        }
        if (repaired > 0) this.o.logger.info({ target: t.path, repaired }, 'scrub repaired damaged chunks from replicas');
        damagedTotal += damaged.length;
        this.reports.set(t.path, { path: t.path, lastPassAtMs: Date.now(), lastPassMs: Date.now() - start, damagedCount: damaged.length, damaged: damaged.slice(0, damagedListedMax) });
        if (damaged.length > 0) this.o.logger.warn({ target: t.path, damaged: damaged.length, first: damaged.slice(0, 5) }, 'scrub found damaged chunks');
      } catch (err) {
        // A closed store (shutting down) or an I/O error: reported, the next pass tries again.
        this.reports.set(t.path, { ...this.reports.get(t.path)!, error: err instanceof Error ? err.message : String(err) });
      }
    }
    return damagedTotal;
  }
}
