// A progress bar on stderr for long copies (only when stderr is a terminal), and a summary line.
export class Progress {
  private readonly started = Date.now();
  private lastDrawMs = 0;
  private readonly tty = process.stderr.isTTY === true;

  constructor(private readonly label: string, private readonly totalBytes: number) {}

  update(doneBytes: number): void {
    if (!this.tty) return;
    const now = Date.now();
    if (now - this.lastDrawMs < 100 && doneBytes < this.totalBytes) return;
    this.lastDrawMs = now;
    const width = 30;
    const frac = this.totalBytes === 0 ? 1 : doneBytes / this.totalBytes;
    const filled = Math.round(frac * width);
    const rate = doneBytes / Math.max(1, now - this.started) / 1000;
    process.stderr.write(`\r${this.label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(frac * 100).toFixed(0).padStart(3)}% ${formatBytes(doneBytes)} ${rate.toFixed(1)} MB/s`);
  }

  done(doneBytes: number): void {
    if (this.tty) process.stderr.write('\n');
    const s = (Date.now() - this.started) / 1000;
    process.stderr.write(`${this.label}: ${formatBytes(doneBytes)} in ${s.toFixed(2)} s (${(doneBytes / Math.max(s, 1e-3) / 1e6).toFixed(1)} MB/s)\n`);
  }
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`;
}
