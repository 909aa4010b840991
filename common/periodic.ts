// A background pass run on an interval (unref'd, so it never holds the process open), one pass
// at a time: a pass asked for while one runs shares that one. Runners (GC, session pruning) are
// a pass function on top of this (metaserver GC and session pruning, the storage scrub).
import type { Logger } from './log.js';

export class Periodic {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | undefined;

  /** `active`: whether timed passes run now (on a metaserver, only the chain head works the queues). */
  constructor(private readonly o: { intervalMs: number; pass: () => Promise<number>; logger?: Logger | undefined; what: string; active?: (() => boolean) | undefined }) {}

  start(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => {
      if (this.o.active !== undefined && !this.o.active()) return;
      void this.runOnce().catch((err: unknown) => this.o.logger?.warn({ err }, `${this.o.what} failed`));
    }, this.o.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    await this.running?.catch(() => undefined);
  }

  /** One pass; resolves to what the pass counted. */
  runOnce(): Promise<number> {
    if (this.running !== undefined) return this.running;
    this.running = this.o.pass().finally(() => { this.running = undefined; });
    return this.running;
  }
}
