// GraySort on flyfs: `flyfs sort gen --size 10GiB --out /sort/in` writes gensort records,
// `flyfs sort run --in /sort/in --out /sort/out --job-dir /jobs/sort [--partitions N] [--workers N]`
// shuffles them by key range and sorts each partition (a job: retries, resume), and
// `flyfs sort validate --out /sort/out [--in /sort/in]` checks global order and that the output
// holds exactly the input's records (count and checksum), like valsort.
import { graySort, genRecords, recordBytes, runJob, validateSorted } from '../../client/jobs/index.js';
import { SeededRandom } from '../../client/dataset/order.js';
import { flyfsError } from '../../common/errors.js';
import { forEachParallel } from '../../common/parallel.js';
import { flag, intFlag, parseArgs } from '../args.js';
import { resolveClusterAddress } from '../cluster-address.js';
import { Progress } from '../progress.js';
import { withFs } from './fs-commands.js';

const usage = `usage: flyfs sort gen --size BYTES[KiB|MiB|GiB] --out DIR [--file-size BYTES] [--seed N]
       flyfs sort run --in DIR --out DIR --job-dir DIR [--partitions N] [--workers N]
       flyfs sort validate --out DIR [--in DIR] [--json]`;

export function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|TiB|KB|MB|GB|TB|k|m|g)?$/i.exec(text.trim());
  if (m === null) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `bad size '${text}' (e.g. 10GiB)`);
  const unit = (m[2] ?? 'B').toLowerCase();
  const mult: Record<string, number> = { b: 1, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30 };
  return Math.floor(Number(m[1]) * mult[unit]!);
}

/** Files generated at once. */
const genFilesInflight = 2;

export async function sortCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const args = parseArgs(rest, ['json']);
  const need = (name: string): string => {
    const v = flag(args, name);
    if (v === undefined) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `--${name} is required\n${usage}`);
    return v;
  };
  if (sub === 'gen') {
    const size = parseSize(need('size'));
    const out = need('out').replace(/\/+$/, '');
    const fileBytes = Math.max(recordBytes, Math.floor(parseSize(flag(args, 'file-size') ?? '64MiB') / recordBytes) * recordBytes);
    const seed = intFlag(args, 'seed', 1);
    const records = Math.floor(size / recordBytes);
    const perFile = fileBytes / recordBytes;
    const files = Math.ceil(records / perFile);
    return withFs(args, async (fs) => {
      await fs.mkdir(out, { recursive: true });
      const progress = new Progress(`sort gen ${out}`, records * recordBytes);
      let done = 0;
      await forEachParallel(files, genFilesInflight, async (f) => {
        const count = Math.min(perFile, records - f * perFile);
        const buf = Buffer.allocUnsafe(count * recordBytes);
        genRecords(buf, f * perFile, count, new SeededRandom(seed, f));
        await fs.writeFile(`${out}/input-${String(f).padStart(6, '0')}.gensort`, buf);
        done += buf.length;
        progress.update(done);
      });
      progress.done(done);
      process.stdout.write(`generated ${records} records (${done} bytes) in ${files} files under ${out}\n`);
      return 0;
    });
  }
  if (sub === 'run') {
    const input = need('in').replace(/\/+$/, '');
    const out = need('out');
    const jobDir = need('job-dir');
    const cluster = await resolveClusterAddress({ cluster: flag(args, 'cluster'), dataDir: flag(args, 'data') });
    return withFs(args, async (fs) => {
      const started = Date.now();
      const summary = await runJob(fs, graySort(`${input}/*.gensort`, out, intFlag(args, 'partitions', 16)).plan(), {
        jobDir, cluster, workers: intFlag(args, 'workers', 2),
        onEvent: (e) => { if (e.kind === 'stage' && (e.done === e.tasks || e.done === 0)) process.stderr.write(`stage ${e.stage} ${e.op}: ${e.done}/${e.tasks}\n`); },
      });
      const bytes = summary.stages[0]!.rows * recordBytes;
      const s = (Date.now() - started) / 1000;
      process.stdout.write(`sorted ${summary.stages[0]!.rows} records (${bytes} bytes) in ${s.toFixed(2)} s (${(bytes / s / 1e6).toFixed(1)} MB/s) into ${out}\n`);
      return 0;
    });
  }
  if (sub === 'validate') {
    const out = need('out');
    const input = flag(args, 'in');
    return withFs(args, async (fs) => {
      const v = await validateSorted(fs, out, input);
      const ok = v.ordered && (v.matchesInput ?? true);
      if (flag(args, 'json') === 'true') process.stdout.write(JSON.stringify(v, (_, x: unknown) => (typeof x === 'bigint' ? x.toString(16) : x)) + '\n');
      else {
        process.stdout.write(`records ${v.records}, checksum ${v.checksum.toString(16)}, ${v.files} files, order ${v.ordered ? 'OK' : `BROKEN at ${v.firstDisorder}`}\n`);
        if (v.input) process.stdout.write(`input: records ${v.input.records}, checksum ${v.input.checksum.toString(16)}: ${v.matchesInput ? 'the same records' : 'DIFFERENT records'}\n`);
      }
      return ok ? 0 : 1;
    });
  }
  throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', usage);
}
