// The benchmark harness: figure types, the registry, run statistics, machine facts, the table and
// JSON renderings and the BENCHMARKS.md record. Benchmarks themselves live one per file.
import { existsSync } from 'node:fs';
import { appendFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { assert } from '../common/errors.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

/** Bytes per second in one GB/s: decimal, as storage vendors count. */
export const bytesPerGB = 1e9;
export const unitGBps = 'GB/s';
export const runsDefault = 3;
export const runsMax = 100;

/** The JSON form of a figure: exactly these fields. */
export interface FigureJson {
  name: string;
  value: number;
  unit: string;
  baseline: string;
  baselineValue: number;
  ratio: number;
}

/** One measured figure against one baseline measured in the same run; ratio = value / baselineValue. */
export interface Figure extends FigureJson {
  /** The individual runs behind the median `value` (printed, not part of the JSON). */
  runs?: readonly number[];
  /** The individual runs behind the median `baselineValue`. */
  baselineRuns?: readonly number[];
}

export interface BenchContext {
  /** Data size in bytes: `--size` or the benchmark's default. */
  sizeBytes: number;
  /** How many times each figure is measured; the median is reported. */
  runs: number;
  /** Progress lines; they go to stderr so that stdout stays the table or the JSON. */
  log(message: string): void;
}

export interface Benchmark {
  name: string;
  description: string;
  defaultSizeBytes: number;
  run(ctx: BenchContext): Promise<Figure[]>;
}

/** Benchmarks by name, in the order registered. */
export class BenchmarkRegistry {
  readonly #byName = new Map<string, Benchmark>();

  register(benchmark: Benchmark): this {
    assert(!this.#byName.has(benchmark.name), `benchmark ${benchmark.name} is registered once`);
    this.#byName.set(benchmark.name, benchmark);
    return this;
  }

  get(name: string): Benchmark | undefined {
    return this.#byName.get(name);
  }

  list(): Benchmark[] {
    return [...this.#byName.values()];
  }
}

export function median(xs: readonly number[]): number {
  assert(xs.length > 0, 'median of at least one value');
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const hi = sorted[mid];
  const lo = sorted[sorted.length % 2 === 0 ? mid - 1 : mid];
  assert(hi !== undefined && lo !== undefined, 'median index in range');
  return (lo + hi) / 2;
}

export interface Measured {
  runs: number[];
  median: number;
}

/** Runs fn n times in sequence (fn gets the run index) and returns every value and their median. */
export async function measureRuns(n: number, fn: (run: number) => Promise<number>): Promise<Measured> {
  assert(Number.isInteger(n) && n >= 1, 'at least one run');
  const runs: number[] = [];
  for (let i = 0; i < n; i++) runs.push(await fn(i));
  return { runs, median: median(runs) };
}

export function measured(runs: readonly number[]): Measured {
  return { runs: [...runs], median: median(runs) };
}

/** Throughput in GB/s (1e9 bytes per second). */
export function throughputGBps(bytes: number, elapsedMs: number): number {
  assert(elapsedMs > 0, 'elapsed time is positive');
  return bytes / (elapsedMs / 1000) / bytesPerGB;
}

/** Wall-clock milliseconds of fn, from a monotonic clock. */
export async function timeMs(fn: () => Promise<void>): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e6;
}

export function figure(name: string, unit: string, value: Measured, baseline: string, baselineValue: Measured): Figure {
  assert(baselineValue.median > 0, `baseline ${baseline} is positive`);
  return {
    name,
    value: value.median,
    unit,
    baseline,
    baselineValue: baselineValue.median,
    ratio: value.median / baselineValue.median,
    runs: value.runs,
    baselineRuns: baselineValue.runs,
  };
}

const sizeUnits: Record<string, number> = { '': 1, k: KiB, m: MiB, g: GiB, t: 1024 * GiB };

/**
 * Parses a byte size: a plain count or a number with a binary suffix k/m/g/t, optionally followed by
 * `i`/`b`/`ib` (1g = 1GiB = 1GB = 2^30). Returns undefined for anything else, zero included.
 */
export function parseSize(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$/i.exec(text.trim());
  if (!match) return undefined;
  const [, digits, suffix] = match;
  const unit = sizeUnits[(suffix ?? '').toLowerCase()];
  if (digits === undefined || unit === undefined) return undefined;
  const bytes = Number(digits) * unit;
  if (!Number.isSafeInteger(bytes) || bytes <= 0) return undefined;
  return bytes;
}

export function formatBytes(bytes: number): string {
  for (const [unit, size] of [['TiB', 1024 * GiB], ['GiB', GiB], ['MiB', MiB], ['KiB', KiB]] as const) {
    if (bytes >= size) {
      const n = bytes / size;
      return `${Number.isInteger(n) ? n : n.toFixed(2)} ${unit}`;
    }
  }
  return `${bytes} B`;
}

export interface MachineInfo {
  cores: number;
  cpuModel: string;
  memoryBytes: number;
  kernel: string;
  os: string;
  arch: string;
  node: string;
}

export function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  return {
    cores: cpus.length,
    cpuModel: cpus[0]?.model.trim() ?? 'unknown cpu',
    memoryBytes: os.totalmem(),
    kernel: os.release(),
    os: os.type(),
    arch: os.arch(),
    node: process.version,
  };
}

export function formatMachine(m: MachineInfo): string {
  return `${m.cores} cores (${m.cpuModel}), ${formatBytes(m.memoryBytes)} memory, ${m.os} ${m.kernel} ${m.arch}, Node ${m.node}`;
}

export function formatValue(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  const abs = Math.abs(x);
  if (abs >= 100) return x.toFixed(1);
  if (abs >= 1) return x.toFixed(3);
  return x.toFixed(4);
}

function formatRuns(runs: readonly number[] | undefined): string {
  return runs === undefined ? '' : runs.map(formatValue).join(' / ');
}

const columns = ['figure', 'value', 'unit', 'baseline', 'baseline value', 'ratio', 'runs', 'baseline runs'] as const;

function figureCells(f: Figure): string[] {
  return [f.name, formatValue(f.value), f.unit, f.baseline, formatValue(f.baselineValue), f.ratio.toFixed(2), formatRuns(f.runs), formatRuns(f.baselineRuns)];
}

const numericColumns = new Set([1, 4, 5]);

/** A plain-text table with aligned columns: numbers to the right, text to the left. */
export function formatTable(figures: readonly Figure[]): string {
  const rows = [[...columns], ...figures.map(figureCells)];
  const widths = columns.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, c) => {
        const w = widths[c] ?? 0;
        return numericColumns.has(c) ? cell.padStart(w) : cell.padEnd(w);
      })
      .join('  ')
      .trimEnd();
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  const [header, ...body] = rows;
  return [line(header ?? []), rule, ...body.map(line)].join('\n') + '\n';
}

export function toFigureJson(f: Figure): FigureJson {
  return { name: f.name, value: f.value, unit: f.unit, baseline: f.baseline, baselineValue: f.baselineValue, ratio: f.ratio };
}

export function formatJson(figures: readonly Figure[]): string {
  return JSON.stringify(figures.map(toFigureJson), null, 2) + '\n';
}

function escapeCell(text: string): string {
  return text.replaceAll('|', '\\|');
}

export function formatMarkdownTable(figures: readonly Figure[]): string {
  const head = `| ${columns.join(' | ')} |`;
  const rule = `| ${columns.map((_, c) => (numericColumns.has(c) ? '---:' : '---')).join(' | ')} |`;
  const body = figures.map((f) => `| ${figureCells(f).map(escapeCell).join(' | ')} |`);
  return [head, rule, ...body].join('\n') + '\n';
}

export const benchmarksFileHeader =
  '# flyfs benchmarks\n\n' +
  'Appended by `npm run bench -- <name>`. Each figure is the median of several runs; every baseline is\n' +
  'measured in the same run on the same machine, and ratio = figure / baseline. GB/s is 1e9 bytes per second.\n';

export interface BenchRecord {
  benchmark: string;
  /** The command as typed, e.g. `npm run bench -- file-rw`. */
  command: string;
  date: Date;
  machine: MachineInfo;
  sizeBytes: number;
  runs: number;
  figures: readonly Figure[];
}

export function formatRecord(r: BenchRecord): string {
  return (
    `\n## ${r.benchmark}: ${r.date.toISOString()}\n\n` +
    `- date: ${r.date.toISOString()}\n` +
    `- command: \`${r.command}\`\n` +
    `- machine: ${formatMachine(r.machine)}\n` +
    `- data: ${formatBytes(r.sizeBytes)} (${r.sizeBytes} bytes), ${r.runs} run${r.runs === 1 ? '' : 's'} per figure, median reported\n\n` +
    formatMarkdownTable(r.figures)
  );
}

/** Appends one section to the benchmarks file, creating it with its header if missing. */
export async function appendRecord(filePath: string, record: BenchRecord): Promise<void> {
  if (!existsSync(filePath)) await writeFile(filePath, benchmarksFileHeader, { flag: 'wx' }).catch(ignoreExists);
  await appendFile(filePath, formatRecord(record));
}

function ignoreExists(error: unknown): void {
  if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
}

/** The repository root: the nearest folder above this module holding package.json (works from bench/ and dist/bench/). */
export function repositoryRoot(from: string = path.dirname(fileURLToPath(import.meta.url))): string {
  let dir = from;
  for (;;) {
    if (existsSync(path.join(dir, 'package.json'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) return process.cwd();
    dir = parent;
  }
}

export function defaultRecordPath(): string {
  return path.join(repositoryRoot(), 'BENCHMARKS.md');
}

/** Quotes an argument for the recorded command line only where a shell would need it. */
export function shellQuote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`;
}

export function commandLine(argv: readonly string[]): string {
  return ['npm run bench --', ...argv.map(shellQuote)].join(' ');
}
