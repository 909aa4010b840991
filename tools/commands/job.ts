// `flyfs job run FILE --job-dir D [--workers N] [--retries R]` runs a preprocessing job: FILE is
// a plan (.json) or a module (.mjs/.js/.ts) whose default export is a DataFrame or a plan.
// `flyfs job resume --job-dir D` runs the plan stored in D again (done tasks are skipped).
// `flyfs job worker --cluster ADDR` is what the driver starts (one per --workers).
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { extname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DataFrame, checkPlan, runJob, type JobEvent, type Plan } from '../../client/jobs/index.js';
import { runWorker } from '../../client/jobs/worker.js';
import { flyfsError } from '../../common/errors.js';
import { flag, intFlag, parseArgs } from '../args.js';
import { resolveClusterAddress } from '../cluster-address.js';
import { withFs } from './fs-commands.js';

const usage = 'usage: flyfs job run FILE --job-dir /flyfs/dir [--workers N] [--retries R] | flyfs job resume --job-dir /flyfs/dir [--workers N]';

export async function jobCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const args = parseArgs(rest);
  if (sub === 'worker') {
    const cluster = flag(args, 'cluster');
    if (cluster === undefined) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', 'job worker --cluster ADDR');
    await runWorker(cluster);
    return -1;
  }
  if (sub !== 'run' && sub !== 'resume') throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', usage);
  const jobDir = flag(args, 'job-dir');
  if (jobDir === undefined || !jobDir.startsWith('/')) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `--job-dir must be an absolute flyfs folder; ${usage}`);
  const cluster = await resolveClusterAddress({ cluster: flag(args, 'cluster'), dataDir: flag(args, 'data') });
  return withFs(args, async (fs) => {
    let plan: Plan;
    if (sub === 'run') {
      const file = args.positionals[0];
      if (file === undefined) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', usage);
      plan = await loadPlan(file);
    } else {
      plan = checkPlan(JSON.parse(await fs.readFile(`${jobDir}/plan.json`, 'utf8') as string));
    }
    const bars = new StageBars();
    const summary = await runJob(fs, plan, {
      jobDir, cluster, workers: intFlag(args, 'workers', 2), retries: intFlag(args, 'retries', 3),
      onEvent: (e) => bars.on(e),
    });
    bars.end();
    const rows = summary.stages.map((s) => [String(s.stage), s.op, String(s.tasks), String(s.resumed), String(s.retries), String(s.rows), `${(s.ms / 1000).toFixed(2)} s`]);
    process.stdout.write(table(['stage', 'op', 'tasks', 'resumed', 'retries', 'rows', 'time'], rows));
    process.stdout.write(`job done in ${(summary.ms / 1000).toFixed(2)} s${summary.output ? `, output in ${summary.output}` : ''}; log: ${jobDir}/log.jsonl\n`);
    return 0;
  });
}

/** A plan from a .json file, or the default export (a DataFrame or plan) of a module. */
async function loadPlan(file: string): Promise<Plan> {
  const path = resolve(file);
  const ext = extname(path);
  if (ext === '.json') return checkPlan(JSON.parse(await readFile(path, 'utf8')));
  let url = pathToFileURL(path).href;
  let scratch: string | undefined;
  if (ext === '.ts') {
    // Node 20 runs no TypeScript: strip the types with the compiler (a dev dependency).
    let ts: typeof import('typescript');
    try { ts = (await import('typescript')).default; } catch { throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `${file}: running a .ts job needs the typescript package; or write it as .mjs`); }
    const out = ts.transpileModule(await readFile(path, 'utf8'), { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText;
    scratch = await mkdtemp(join(tmpdir(), 'flyfs-job-'));
    const js = join(scratch, 'job.mjs');
    // Bare imports of flyfs resolve from this package, wherever the job file lives.
    await writeFile(js, out.replace(/from\s+['"]flyfs\/jobs['"]/g, `from '${pathToFileURL(new URL('../../client/jobs/index.js', import.meta.url).pathname).href}'`));
    url = pathToFileURL(js).href;
  }
  try {
    const mod = await import(url) as { default?: unknown };
    const v = typeof mod.default === 'function' ? await (mod.default as () => unknown)() : mod.default;
    if (v instanceof DataFrame || (typeof v === 'object' && v !== null && 'stages' in v && typeof (v as DataFrame).plan === 'function')) return (v as DataFrame).plan();
    return checkPlan(v);
  } finally {
    if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
  }
}

/** One line per stage on stderr: a bar when stderr is a terminal, a line per change otherwise. */
class StageBars {
  private readonly tty = process.stderr.isTTY === true;
  private last = '';

  on(e: JobEvent): void {
    if (e.kind === 'stage') {
      const width = 30;
      const filled = e.tasks === 0 ? width : Math.round((e.done / e.tasks) * width);
      const line = `stage ${e.stage} ${e.op.padEnd(11)} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${e.done}/${e.tasks}`;
      if (this.tty) process.stderr.write(`\r${line}`); else if (e.done === e.tasks || e.done === 0) process.stderr.write(line + '\n');
      if (this.tty && e.done === e.tasks) process.stderr.write('\n');
      this.last = line;
    } else if (e.kind === 'task' && (e.state === 'retry' || e.state === 'failed')) {
      process.stderr.write(`${this.tty ? '\n' : ''}task ${e.task} ${e.state} (attempt ${e.attempt}): ${e.message ?? ''}\n`);
    }
  }

  end(): void { if (this.tty && this.last !== '') process.stderr.write('\n'); }
}

function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]): string => r.map((c, i) => c.padStart(widths[i]!)).join('  ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n') + '\n';
}
