// `npm run bench -- <name> [--runs N] [--size BYTES] [--json] [--no-record]`: runs one named
// benchmark, prints its figures and appends them to BENCHMARKS.md.
import { pathToFileURL } from 'node:url';
import {
  BenchmarkRegistry,
  appendRecord,
  commandLine,
  defaultRecordPath,
  formatBytes,
  formatJson,
  formatMachine,
  formatTable,
  machineInfo,
  parseSize,
  runsDefault,
  runsMax,
  type Benchmark,
  type BenchContext,
  type Figure,
} from './harness.js';

export type { Benchmark, BenchContext, Figure } from './harness.js';

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

/**
 * Benchmark modules pull in the client and the cluster launcher; they load only when run, so that
 * listing benchmarks and rejecting bad arguments need neither.
 */
function lazyBenchmark(info: Omit<Benchmark, 'run'>, load: () => Promise<(ctx: BenchContext) => Promise<Figure[]>>): Benchmark {
  return { ...info, run: async (ctx) => (await load())(ctx) };
}

export function defaultRegistry(): BenchmarkRegistry {
  return new BenchmarkRegistry().register(
    lazyBenchmark(
      {
        name: 'file-rw',
        description: 'write then read a 1 GiB file through the client against a local cluster; baselines: loopback TCP stream, node:fs',
        defaultSizeBytes: 1 * GiB,
      },
      async () => (await import('./file-rw.js')).runFileRw,
    ),
  ).register(
    lazyBenchmark(
      {
        name: 'meta',
        description: 'metadata ops (create, stat, readdir, rename, unlink) from 1 and 64 clients against 3 chained metaservers; baselines: in-process durable lmdb',
        defaultSizeBytes: 0,
      },
      async () => (await import('./meta.js')).runMeta,
    ),
  ).register(
    lazyBenchmark(
      {
        name: 'chunk-transport',
        description: 'chunk reads and writes of 64 KiB-4 MiB over the framed protocol, gRPC unary and one gRPC stream; baseline: loopback TCP stream',
        defaultSizeBytes: 0,
      },
      async () => (await import('./chunk-transport.js')).runChunkTransport,
    ),
  ).register(
    lazyBenchmark(
      {
        name: 'dataset',
        description: 'one shuffled epoch of packed datasets of 4 KiB-4 MiB and mixed samples through the loader (at most 1 GiB and 16 Ki samples each), GB/s and samples/s; baseline: the same reads from one local file, O_DIRECT io_uring',
        defaultSizeBytes: 1 * GiB,
      },
      async () => (await import('./dataset.js')).runDataset,
    ),
  ).register(
    lazyBenchmark(
      {
        name: 'checkpoint',
        description: 'save and load a 4 GiB checkpoint of 64 tensors (saveCheckpoint; loadCheckpoint into the caller\'s tensors and into new buffers); baselines: sequential flyfs write and read of one file of the same bytes',
        // The issue's 4 GiB. Memory: the tensors, the tensors loaded into and one load's new
        // buffers, 3× the size at the peak.
        defaultSizeBytes: 4 * GiB,
      },
      async () => (await import('./checkpoint.js')).runCheckpoint,
    ),
  ).register(
    lazyBenchmark(
      {
        name: 'kv',
        description: 'KV cache: getPages of 64 KiB and 1 MiB pages, lookupPrefix of 1000-page prefixes, gatherTokens of top-2048 of 128K tokens; baselines: redis-server GET/EXISTS (started by the bench), layer-block reads, one contiguous read',
        defaultSizeBytes: 512 * MiB,
      },
      async () => (await import('./kv.js')).runKv,
    ),
  ).register(
    lazyBenchmark(
      {
        name: 'sort',
        description: 'GraySort of gensort records through flyfs (2 workers, chains of 3) and a 3-stage SQL job; baselines: DuckDB ORDER BY of the same records and the same SQL, in one local process',
        defaultSizeBytes: 8 * GiB,
      },
      async () => (await import('./sort.js')).runSort,
    ),
  );
}

export interface BenchArgs {
  name?: string;
  json: boolean;
  record: boolean;
  help: boolean;
  sizeBytes?: number;
  runs: number;
}

export type ParsedArgs = { ok: true; args: BenchArgs } | { ok: false; error: string };

export function parseBenchArgs(argv: readonly string[]): ParsedArgs {
  const args: BenchArgs = { json: false, record: true, help: false, runs: runsDefault };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const eq = arg.indexOf('=');
    const flag = arg.startsWith('--') && eq > 0 ? arg.slice(0, eq) : arg;
    const inline = arg.startsWith('--') && eq > 0 ? arg.slice(eq + 1) : undefined;
    const value = (): string | undefined => inline ?? argv[++i];
    switch (flag) {
      case '--json':
        args.json = true;
        break;
      case '--no-record':
        args.record = false;
        break;
      case '--help':
      case '-h':
        args.help = true;
        break;
      case '--size': {
        const text = value();
        const bytes = text === undefined ? undefined : parseSize(text);
        if (bytes === undefined) return { ok: false, error: `--size wants a byte count such as 1g, 256m or 4096, got ${text ?? 'nothing'}` };
        args.sizeBytes = bytes;
        break;
      }
      case '--runs': {
        const text = value();
        const runs = text !== undefined && /^\d+$/.test(text) ? Number(text) : NaN;
        if (!(runs >= 1 && runs <= runsMax)) return { ok: false, error: `--runs wants a whole number from 1 to ${runsMax}, got ${text ?? 'nothing'}` };
        args.runs = runs;
        break;
      }
      default:
        if (arg.startsWith('-')) return { ok: false, error: `unknown option ${arg}` };
        if (args.name !== undefined) return { ok: false, error: `one benchmark at a time (got ${args.name} and ${arg})` };
        args.name = arg;
    }
  }
  return { ok: true, args };
}

export interface Output {
  write(text: string): unknown;
}

export interface BenchCliOptions {
  registry?: BenchmarkRegistry;
  stdout?: Output;
  stderr?: Output;
  /** Where the record is appended; BENCHMARKS.md at the repository root by default. */
  recordPath?: string;
  now?: () => Date;
}

function usage(registry: BenchmarkRegistry): string {
  const names = registry.list().map((b) => `  ${b.name.padEnd(12)} ${b.description}\n`);
  return (
    'usage: npm run bench -- <name> [--runs N] [--size BYTES] [--json] [--no-record]\n' +
    `  --runs N      measure each figure N times and report the median (default ${runsDefault})\n` +
    '  --size BYTES  data size, e.g. 1g, 256m (binary units)\n' +
    '  --json        print only a JSON array of figures on stdout\n' +
    '  --no-record   do not append to BENCHMARKS.md\n' +
    `benchmarks:\n${names.join('')}`
  );
}

function message(error: unknown): string {
  return error instanceof Error ? (error.stack ?? error.message) : String(error);
}

/** Runs `npm run bench -- <argv>`; returns the exit code (2 for bad arguments or an unknown benchmark). */
export async function runBenchCli(argv: string[], options: BenchCliOptions = {}): Promise<number> {
  const registry = options.registry ?? defaultRegistry();
  const stdout = options.stdout ?? process.stdout;
  const stderr = options.stderr ?? process.stderr;
  const parsed = parseBenchArgs(argv);
  if (!parsed.ok) {
    stderr.write(`bench: ${parsed.error}\n${usage(registry)}`);
    return 2;
  }
  const { args } = parsed;
  if (args.help) {
    stdout.write(usage(registry));
    return 0;
  }
  const benchmark = args.name === undefined ? undefined : registry.get(args.name);
  if (benchmark === undefined) {
    stderr.write(`bench: ${args.name === undefined ? 'no benchmark named' : `unknown benchmark ${args.name}`}\n${usage(registry)}`);
    return 2;
  }

  const date = (options.now ?? (() => new Date()))();
  const sizeBytes = args.sizeBytes ?? benchmark.defaultSizeBytes;
  const ctx: BenchContext = { sizeBytes, runs: args.runs, log: (line) => stderr.write(`${line}\n`) };
  let figures: Figure[];
  try {
    figures = await benchmark.run(ctx);
  } catch (error) {
    stderr.write(`bench: ${benchmark.name} failed: ${message(error)}\n`);
    return 1;
  }

  const machine = machineInfo();
  if (args.json) {
    stdout.write(formatJson(figures));
  } else {
    stdout.write(`${benchmark.name}: ${formatBytes(sizeBytes)}, median of ${args.runs} run${args.runs === 1 ? '' : 's'}\n`);
    stdout.write(formatTable(figures));
    stdout.write(`machine: ${formatMachine(machine)}\n`);
  }
  if (args.record) {
    const recordPath = options.recordPath ?? defaultRecordPath();
    try {
      await appendRecord(recordPath, { benchmark: benchmark.name, command: commandLine(argv), date, machine, sizeBytes, runs: args.runs, figures });
      stderr.write(`bench: recorded in ${recordPath}\n`);
    } catch (error) {
      stderr.write(`bench: could not record in ${recordPath}: ${message(error)}\n`);
      return 1;
    }
  }
  return 0;
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href) {
  // exitCode rather than exit(): stdout may be a pipe still draining the JSON.
  void runBenchCli(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
