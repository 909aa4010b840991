// Coalesces the calls issued in one turn of the event loop into batch requests: a lone call goes
// as itself, more go `maxBatch` at a time. Concurrent callers thereby share one RPC (and, for
// mutations, one group commit) without waiting for a timer.

/** Answers a batch: one promise per request, in order. A rejection of the whole fails every request. */
export type BatchSender<Req, Res> = (requests: Req[]) => Promise<Array<Promise<Res>>>;

export class TurnBatcher<Req, Res> {
  private queue: Array<{ req: Req; resolve: (r: Res) => void; reject: (e: unknown) => void }> = [];

  constructor(
    private readonly maxBatch: number,
    private readonly one: (req: Req) => Promise<Res>,
    private readonly many: BatchSender<Req, Res>,
  ) {}

  submit(req: Req): Promise<Res> {
    return new Promise((resolve, reject) => {
      this.queue.push({ req, resolve, reject });
      if (this.queue.length === 1) setImmediate(() => this.flush());
    });
  }

  private flush(): void {
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.maxBatch);
      if (batch.length === 1) {
        const q = batch[0]!;
        this.one(q.req).then(q.resolve, q.reject);
        continue;
      }
      this.many(batch.map((q) => q.req)).then((answers) => {
        batch.forEach((q, i) => {
          const a = answers[i];
          if (a === undefined) q.reject(new Error('assertion failed: a batch answered short'));
          else a.then(q.resolve, q.reject);
        });
      }, (err: unknown) => { for (const q of batch) q.reject(err); });
    }
  }
}
