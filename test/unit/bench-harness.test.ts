import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  BenchmarkRegistry,
  appendRecord,
  benchmarksFileHeader,
  commandLine,
  figure,
  formatJson,
  formatTable,
  machineInfo,
  measureRuns,
  measured,
  median,
  parseSize,
  throughputGBps,
  type BenchRecord,
  type Figure,
} from '../../bench/harness.js';
import { parseBenchArgs, runBenchCli } from '../../bench/index.js';

class Sink {
  text = '';
  write(s: string): boolean {
    this.text += s;
    return true;
  }
}

function sampleFigures(): Figure[] {
  return [
    figure('flyfs write', 'GB/s', measured([1.5, 0.5, 1.0]), 'tcp loopback stream', measured([4, 2, 3])),
    figure('flyfs read', 'GB/s', measured([2, 2.5, 3]), 'node:fs read', measured([5, 6, 4])),
  ];
}

describe('median', () => {
  it('takes the middle of an odd count and the mean of the middle two of an even count', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([7])).toBe(7);
  });

  it('does not reorder its input', () => {
    const xs = [3, 1, 2];
    median(xs);
    expect(xs).toEqual([3, 1, 2]);
  });

  it('refuses an empty list', () => {
    expect(() => median([])).toThrow(/at least one/);
  });
});

describe('measureRuns', () => {
  it('runs fn n times in order and reports every run and the median', async () => {
    const seen: number[] = [];
    const result = await measureRuns(5, async (run) => {
      seen.push(run);
      return [10, 50, 20, 40, 30][run] ?? 0;
    });
    expect(seen).toEqual([0, 1, 2, 3, 4]);
    expect(result.runs).toEqual([10, 50, 20, 40, 30]);
    expect(result.median).toBe(30);
  });
});

describe('throughput and figures', () => {
  it('counts GB/s in 1e9 bytes per second', () => {
    expect(throughputGBps(2e9, 1000)).toBeCloseTo(2, 12);
    expect(throughputGBps(1024 ** 3, 500)).toBeCloseTo((2 * 1024 ** 3) / 1e9, 12);
  });

  it('makes a figure from medians with ratio = value / baseline', () => {
    const [f] = sampleFigures();
    expect(f?.value).toBe(1.0);
    expect(f?.baselineValue).toBe(3);
    expect(f?.ratio).toBeCloseTo(1 / 3, 12);
    expect(f?.runs).toEqual([1.5, 0.5, 1.0]);
  });
});

describe('parseSize', () => {
  it.each([
    ['1g', 1024 ** 3],
    ['1G', 1024 ** 3],
    ['1GiB', 1024 ** 3],
    ['256m', 256 * 1024 ** 2],
    ['256MB', 256 * 1024 ** 2],
    ['4k', 4096],
    ['1.5k', 1536],
    ['4096', 4096],
    [' 2t ', 2 * 1024 ** 4],
  ])('%s is %d bytes', (text, bytes) => {
    expect(parseSize(text)).toBe(bytes);
  });

  it.each(['', '0', '-1g', 'g', '1x', '1.3', 'abc', '1 gigabyte'])('rejects %j', (text) => {
    expect(parseSize(text)).toBeUndefined();
  });
});

describe('argument parsing', () => {
  it('reads the name and every option, in both --flag value and --flag=value forms', () => {
    const parsed = parseBenchArgs(['file-rw', '--json', '--no-record', '--size', '256m', '--runs=5']);
    expect(parsed).toEqual({ ok: true, args: { name: 'file-rw', json: true, record: false, help: false, sizeBytes: 256 * 1024 ** 2, runs: 5 } });
  });

  it('defaults to 3 runs, recording, table output', () => {
    const parsed = parseBenchArgs(['file-rw']);
    expect(parsed.ok && parsed.args).toMatchObject({ name: 'file-rw', json: false, record: true, runs: 3 });
  });

  it.each([[['file-rw', '--runs', '0']], [['file-rw', '--runs', 'x']], [['file-rw', '--size', 'lots']], [['file-rw', '--bogus']], [['a', 'b']]])(
    'rejects %j',
    (argv) => {
      expect(parseBenchArgs(argv).ok).toBe(false);
    },
  );
});

describe('table and JSON', () => {
  it('prints aligned columns with a header, a rule and one row per figure', () => {
    const lines = formatTable(sampleFigures()).trimEnd().split('\n');
    expect(lines).toHaveLength(4);
    const [header, rule, first, second] = lines;
    for (const column of ['figure', 'value', 'unit', 'baseline', 'baseline value', 'ratio']) expect(header).toContain(column);
    expect(rule).toMatch(/^[- ]+$/);
    expect(first).toContain('tcp loopback stream');
    expect(first).toContain('0.33');
    expect(first).toContain('1.500 / 0.5000 / 1.000');
    expect(second).toContain('node:fs read');
    // Aligned: the unit column starts at the same place in every row.
    const unitAt = header?.indexOf('unit');
    expect(first?.indexOf('GB/s')).toBe(unitAt);
    expect(second?.indexOf('GB/s')).toBe(unitAt);
  });

  it('prints exactly {name, value, unit, baseline, baselineValue, ratio} per figure', () => {
    const figures = sampleFigures();
    const parsed = JSON.parse(formatJson(figures)) as unknown[];
    expect(parsed).toHaveLength(2);
    expect(parsed[0]).toEqual({
      name: 'flyfs write',
      value: 1.0,
      unit: 'GB/s',
      baseline: 'tcp loopback stream',
      baselineValue: 3,
      ratio: figures[0]?.ratio,
    });
    expect(Object.keys(parsed[1] as object).sort()).toEqual(['baseline', 'baselineValue', 'name', 'ratio', 'unit', 'value']);
  });
});

describe('BENCHMARKS.md', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'flyfs-bench-test-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  function record(date: Date): BenchRecord {
    return { benchmark: 'file-rw', command: commandLine(['file-rw', '--size', '1g']), date, machine: machineInfo(), sizeBytes: 1024 ** 3, runs: 3, figures: sampleFigures() };
  }

  it('creates the file with its header, then appends one section per run', async () => {
    const file = path.join(dir, 'BENCHMARKS.md');
    await appendRecord(file, record(new Date('2025-01-02T03:04:05.000Z')));
    await appendRecord(file, record(new Date('2025-01-03T00:00:00.000Z')));
    const text = await readFile(file, 'utf8');
    expect(text.startsWith(benchmarksFileHeader)).toBe(true);
    expect(text.split(benchmarksFileHeader)).toHaveLength(2);
    expect(text.match(/^## file-rw/gm)).toHaveLength(2);
    expect(text).toContain('- date: 2025-01-02T03:04:05.000Z');
    expect(text).toContain('- command: `npm run bench -- file-rw --size 1g`');
    const m = machineInfo();
    expect(text).toContain(`- machine: ${m.cores} cores`);
    expect(text).toContain(m.kernel);
    expect(text).toContain('| figure | value | unit | baseline | baseline value | ratio |');
    expect(text).toContain('| flyfs read | 2.500 | GB/s | node:fs read | 5.000 | 0.50 |');
  });

  it('quotes arguments a shell would split', () => {
    expect(commandLine(['file-rw', '--size', '1 g'])).toBe("npm run bench -- file-rw --size '1 g'");
  });
});

describe('runBenchCli', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'flyfs-bench-cli-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('returns 2 and lists the benchmarks for an unknown or missing name', async () => {
    for (const argv of [['no-such-bench'], [], ['--json']]) {
      const stderr = new Sink();
      const stdout = new Sink();
      expect(await runBenchCli(argv, { stdout, stderr, recordPath: path.join(dir, 'B.md') })).toBe(2);
      expect(stderr.text).toContain('file-rw');
      expect(stdout.text).toBe('');
    }
  });

  function fakeRegistry(seen: { sizeBytes?: number; runs?: number }): BenchmarkRegistry {
    return new BenchmarkRegistry().register({
      name: 'fake',
      description: 'a test benchmark',
      defaultSizeBytes: 1000,
      run: async (ctx) => {
        seen.sizeBytes = ctx.sizeBytes;
        seen.runs = ctx.runs;
        ctx.log('progress goes to stderr');
        return sampleFigures();
      },
    });
  }

  it('with --json prints only the JSON array on stdout and records the run', async () => {
    const seen: { sizeBytes?: number; runs?: number } = {};
    const stdout = new Sink();
    const stderr = new Sink();
    const recordPath = path.join(dir, 'B.md');
    const code = await runBenchCli(['fake', '--json', '--size', '4k', '--runs', '2'], { registry: fakeRegistry(seen), stdout, stderr, recordPath });
    expect(code).toBe(0);
    expect(seen).toEqual({ sizeBytes: 4096, runs: 2 });
    expect(JSON.parse(stdout.text)).toEqual(JSON.parse(formatJson(sampleFigures())));
    expect(stderr.text).toContain('progress goes to stderr');
    expect(await readFile(recordPath, 'utf8')).toContain('`npm run bench -- fake --json --size 4k --runs 2`');
  });

  it('prints the table by default and skips the record with --no-record', async () => {
    const seen: { sizeBytes?: number; runs?: number } = {};
    const stdout = new Sink();
    const recordPath = path.join(dir, 'B.md');
    const code = await runBenchCli(['fake', '--no-record'], { registry: fakeRegistry(seen), stdout, stderr: new Sink(), recordPath });
    expect(code).toBe(0);
    expect(seen).toEqual({ sizeBytes: 1000, runs: 3 });
    expect(stdout.text).toContain(formatTable(sampleFigures()));
    await expect(readFile(recordPath, 'utf8')).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('returns 1 when the benchmark fails', async () => {
    const registry = new BenchmarkRegistry().register({
      name: 'broken',
      description: 'fails',
      defaultSizeBytes: 1,
      run: async () => {
        throw new Error('read back wrong bytes');
      },
    });
    const stderr = new Sink();
    expect(await runBenchCli(['broken'], { registry, stdout: new Sink(), stderr, recordPath: path.join(dir, 'B.md') })).toBe(1);
    expect(stderr.text).toContain('read back wrong bytes');
  });
});
