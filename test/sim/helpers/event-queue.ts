// A discrete-event queue for simulations: events run in time order, ties in insertion order.
export class EventQueue {
  private heap: Array<{ at: number; seq: number; run: () => void }> = [];
  private seq = 0;
  nowMs = 0;

  at(timeMs: number, run: () => void): void {
    this.push({ at: Math.max(timeMs, this.nowMs), seq: this.seq++, run });
  }

  after(delayMs: number, run: () => void): void { this.at(this.nowMs + delayMs, run); }

  /** Runs events up to `untilMs`; returns how many ran. */
  runUntil(untilMs: number, stop: () => boolean = () => false): number {
    let n = 0;
    while (this.heap.length > 0 && this.heap[0]!.at <= untilMs && !stop()) {
      const e = this.pop();
      this.nowMs = e.at;
      e.run();
      n++;
    }
    if (!stop()) this.nowMs = Math.max(this.nowMs, untilMs);
    return n;
  }

  private push(e: { at: number; seq: number; run: () => void }): void {
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  private pop(): { at: number; seq: number; run: () => void } {
    const h = this.heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1; const r = l + 1;
        let m = i;
        if (l < h.length && less(h[l]!, h[m]!)) m = l;
        if (r < h.length && less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}

function less(a: { at: number; seq: number }, b: { at: number; seq: number }): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}
