// A small metrics registry rendered in the Prometheus text format: counters, gauges and
// latency histograms with labels. One registry per process.

type Labels = Readonly<Record<string, string>>;

function labelKey(labels: Labels): string {
  const keys = Object.keys(labels).sort();
  return keys.map((k) => `${k}="${String(labels[k]).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`).join(',');
}

abstract class Metric {
  constructor(readonly name: string, readonly help: string, readonly type: string) {}
  abstract render(): string[];
}

export class Counter extends Metric {
  private readonly values = new Map<string, number>();
  constructor(name: string, help: string) { super(name, help, 'counter'); }
  inc(labels: Labels = {}, by = 1): void {
    const k = labelKey(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }
  get(labels: Labels = {}): number { return this.values.get(labelKey(labels)) ?? 0; }
  render(): string[] {
    return [...this.values].map(([k, v]) => `${this.name}${k ? `{${k}}` : ''} ${v}`);
  }
}

export class Gauge extends Metric {
  private readonly values = new Map<string, () => number>();
  constructor(name: string, help: string) { super(name, help, 'gauge'); }
  set(labels: Labels, value: number): void { this.values.set(labelKey(labels), () => value); }
  /** The value is read when /metrics is scraped. */
  track(labels: Labels, read: () => number): void { this.values.set(labelKey(labels), read); }
  render(): string[] {
    return [...this.values].map(([k, read]) => `${this.name}${k ? `{${k}}` : ''} ${read()}`);
  }
}

/** Seconds buckets from 50 µs to 10 s. */
const DEFAULT_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export class Histogram extends Metric {
  private readonly series = new Map<string, { counts: number[]; sum: number; count: number }>();
  constructor(name: string, help: string, private readonly buckets: readonly number[] = DEFAULT_BUCKETS) { super(name, help, 'histogram'); }
  observe(labels: Labels, seconds: number): void {
    const k = labelKey(labels);
    let s = this.series.get(k);
    if (!s) { s = { counts: this.buckets.map(() => 0), sum: 0, count: 0 }; this.series.set(k, s); }
    for (let i = 0; i < this.buckets.length; i++) if (seconds <= this.buckets[i]!) s.counts[i]! += 1;
    s.sum += seconds;
    s.count += 1;
  }
  render(): string[] {
    const lines: string[] = [];
    for (const [k, s] of this.series) {
      const sep = k ? ',' : '';
      this.buckets.forEach((b, i) => lines.push(`${this.name}_bucket{${k}${sep}le="${b}"} ${s.counts[i]}`));
      lines.push(`${this.name}_bucket{${k}${sep}le="+Inf"} ${s.count}`);
      lines.push(`${this.name}_sum${k ? `{${k}}` : ''} ${s.sum}`);
      lines.push(`${this.name}_count${k ? `{${k}}` : ''} ${s.count}`);
    }
    return lines;
  }
}

export class MetricsRegistry {
  private readonly metrics = new Map<string, Metric>();
  readonly requests: Counter;
  readonly requestErrors: Counter;
  readonly bytes: Counter;
  readonly latency: Histogram;

  constructor() {
    this.requests = this.counter('flyfs_requests_total', 'Requests served, by method.');
    this.requestErrors = this.counter('flyfs_request_errors_total', 'Requests that failed, by method and code.');
    this.bytes = this.counter('flyfs_bytes_total', 'Payload bytes moved, by method and direction.');
    this.latency = this.histogram('flyfs_request_duration_seconds', 'Request latency, by method.');
    const started = Date.now();
    this.gauge('flyfs_uptime_seconds', 'Seconds since the process started.').track({}, () => (Date.now() - started) / 1000);
    this.gauge('flyfs_process_resident_bytes', 'Resident memory of the process.').track({}, () => process.memoryUsage().rss);
  }

  counter(name: string, help: string): Counter { return this.add(new Counter(name, help)); }
  gauge(name: string, help: string): Gauge { return this.add(new Gauge(name, help)); }
  histogram(name: string, help: string, buckets?: readonly number[]): Histogram { return this.add(new Histogram(name, help, buckets)); }

  private add<M extends Metric>(m: M): M {
    const existing = this.metrics.get(m.name);
    if (existing) return existing as M;
    this.metrics.set(m.name, m);
    return m;
  }

  /** Records one finished request. */
  record(method: string, startedNs: bigint, error?: { code: string }): void {
    this.requests.inc({ method });
    if (error) this.requestErrors.inc({ method, code: error.code });
    this.latency.observe({ method }, Number(process.hrtime.bigint() - startedNs) / 1e9);
  }

  render(): string {
    const out: string[] = [];
    for (const m of this.metrics.values()) {
      out.push(`# HELP ${m.name} ${m.help}`, `# TYPE ${m.name} ${m.type}`, ...m.render());
    }
    return out.join('\n') + '\n';
  }
}
