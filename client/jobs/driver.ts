// The job driver: stores the plan in the job folder, lists the inputs once, and runs the stages
// in order on a pool of worker processes — each stage's tasks once the stage before it is done.
// A task whose folder holds a manifest is done, so a driver started again on the same job
// folder (after it was killed) resumes where the last one stopped. A task whose worker died or
// failed runs again (a fresh attempt; publishing is atomic, see task.ts) up to `retries` times;
// an input error (bad SQL, a missing or unreadable file) ends the job at once, naming the task
// and the file. Progress goes to `onEvent`; every event also goes to the job log in flyfs.
import { spawn, type ChildProcess } from 'node:child_process';
import { flyfsError, FlyfsError } from '../../common/errors.js';
import { cliPath } from '../../tools/package-root.js';
import { pathExists, readTextIfExists } from '../exists.js';
import type { FileSystem } from '../fs.js';
import { checkPlan, jobLimits, splitGlob, stageDir, taskDir, taskManifest, tasksOf, type Plan, type Task, type TaskInput, type TaskManifest } from './plan.js';
import type { FromWorker, ToWorker } from './worker.js';

export interface RunJobOptions {
  jobDir: string;
  workers: number;
  /** The cluster address the workers connect to. */
  cluster: string;
  /** Attempts after the first for a task whose worker died or failed (default 3). */
  retries?: number;
  /**
   * Tasks one worker runs at once (default 1). More lets one task's reads and writes in flyfs
   * overlap another's computing, but multiplies the bytes in flight: on chains of 3 on 2 cores,
   * 2 × 2 concurrent 256 MiB writes had chunk writes miss the chain's 10 s commit deadline.
   */
  tasksPerWorker?: number;
  /** The worker command (default: this package's CLI, `job worker`). */
  workerCommand?: readonly string[];
  onEvent?: (e: JobEvent) => void;
}

export type JobEvent =
  | { kind: 'stage'; stage: number; op: string; tasks: number; done: number }
  | { kind: 'task'; stage: number; task: string; state: 'started' | 'done' | 'retry' | 'failed'; rows?: number; attempt: number; message?: string; pid?: number }
  | { kind: 'worker'; pid: number; state: 'started' | 'exited'; code?: number | null; signal?: string | null };

export interface StageSummary { stage: number; op: string; tasks: number; resumed: number; rows: number; retries: number; ms: number }
export interface JobSummary { jobDir: string; stages: StageSummary[]; output?: string; ms: number }

const planFile = 'plan.json';
const inputsFile = 'inputs.json';
const logFile = 'log.jsonl';

export async function runJob(fs: FileSystem, planInput: Plan, o: RunJobOptions): Promise<JobSummary> {
  const plan = checkPlan(planInput);
  if (!Number.isSafeInteger(o.workers) || o.workers < 1 || o.workers > jobLimits.workersMax) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `workers must be 1..${jobLimits.workersMax}`);
  const perWorker = o.tasksPerWorker ?? 1;
  if (!Number.isSafeInteger(perWorker) || perWorker < 1 || perWorker > jobLimits.tasksPerWorkerMax) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `tasksPerWorker must be 1..${jobLimits.tasksPerWorkerMax}`);
  const retries = o.retries ?? 3;
  const jobDir = o.jobDir.replace(/\/+$/, '');
  const started = Date.now();
  await fs.mkdir(jobDir, { recursive: true });
  const text = JSON.stringify(plan);
  if (await pathExists(fs, `${jobDir}/${planFile}`)) {
    if (await fs.readFile(`${jobDir}/${planFile}`, 'utf8') !== text) throw flyfsError('FLYFS_ERR_EXISTS', `${jobDir} holds another job's plan`, { path: jobDir });
  } else {
    await writeAtomic(fs, `${jobDir}/${planFile}`, text);
  }
  // Appends go one at a time: each is a whole line at the end of the log.
  let logTail = Promise.resolve();
  const log = (e: JobEvent | { kind: 'job'; state: string; message?: string }): Promise<void> => {
    const line = JSON.stringify({ at: new Date().toISOString(), ...e }) + '\n';
    logTail = logTail.then(() => fs.appendFile(`${jobDir}/${logFile}`, line)).catch(() => undefined);
    return logTail;
  };
  const emit = (e: JobEvent): void => { o.onEvent?.(e); void log(e); };
  await log({ kind: 'job', state: 'started' });

  // The inputs, listed once: a resumed job reads exactly the same files.
  let inputs: TaskInput[];
  if (await pathExists(fs, `${jobDir}/${inputsFile}`)) {
    inputs = JSON.parse(await fs.readFile(`${jobDir}/${inputsFile}`, 'utf8') as string) as TaskInput[];
  } else {
    const read = plan.stages[0]!;
    if (read.kind !== 'read') throw new Error('assertion failed: stage 0 reads');
    const { dir, pattern } = splitGlob(read.glob);
    const names = (await fs.readdir(dir, { withFileTypes: true })).filter((d) => d.isFile() && pattern.test(d.name)).map((d) => d.name).sort();
    if (names.length === 0) throw flyfsError('FLYFS_ERR_NOT_FOUND', `no input file matches ${read.glob}`, { path: read.glob });
    if (names.length > jobLimits.inputFilesMax) throw flyfsError('FLYFS_ERR_LIMIT', `${names.length} input files; at most ${jobLimits.inputFilesMax}`);
    inputs = names.map((n) => ({ path: `${dir === '/' ? '' : dir}/${n}`, format: read.format }));
    await writeAtomic(fs, `${jobDir}/${inputsFile}`, JSON.stringify(inputs));
  }

  const pool = new WorkerPool(o, emit);
  const stages: StageSummary[] = [];
  let publishFrom: Array<{ partition: number; files: TaskInput[] }> = [];
  try {
    let before: Array<{ partition: number; files: TaskInput[] }> = inputs.map((f, p) => ({ partition: p, files: [f] }));
    publishFrom = before;
    for (let s = 1; s < plan.stages.length; s++) {
      const t0 = Date.now();
      const kind = plan.stages[s]!.kind;
      const prevKind = plan.stages[s - 1]!.kind;
      if (kind === 'write' && (prevKind === 'sql' || prevKind === 'sortRecords')) {
        // One file per partition already, in the output's format: the publish below moves those
        // files into place; a write task would only copy them once more.
        stages.push({ stage: s, op: kind, tasks: 0, resumed: 0, rows: stages[stages.length - 1]?.rows ?? 0, retries: 0, ms: 0 });
        break;
      }
      const tasks = tasksOf(plan, jobDir, s, before);
      await fs.mkdir(stageDir(jobDir, s), { recursive: true });
      const manifests: TaskManifest[] = new Array(tasks.length);
      let resumed = 0;
      for (const [k, t] of tasks.entries()) {
        const m = await readManifestIfDone(fs, t);
        if (m !== undefined) { manifests[k] = m; resumed++; }
      }
      const op = plan.stages[s]!.kind;
      let done = resumed;
      emit({ kind: 'stage', stage: s, op, tasks: tasks.length, done });
      let stageRetries = 0;
      await Promise.all(tasks.map(async (t, k) => {
        if (manifests[k] !== undefined) return;
        const r = await pool.run(t, retries);
        manifests[k] = r.manifest;
        stageRetries += r.attempts - 1;
        done++;
        emit({ kind: 'stage', stage: s, op, tasks: tasks.length, done });
      }));
      // Attempts that died before they published leave folders beside the published ones.
      for (const name of await fs.readdir(stageDir(jobDir, s))) {
        if (name.includes('.attempt-')) await fs.rm(`${stageDir(jobDir, s)}/${name}`, { recursive: true, force: true });
      }
      stages.push({ stage: s, op, tasks: tasks.length, resumed, rows: manifests.reduce((n, m) => n + m.rows, 0), retries: stageRetries, ms: Date.now() - t0 });
      before = tasks.map((t, k) => ({ partition: t.partition, files: manifests[k]!.files.map((f) => ({ path: `${taskDir(jobDir, s, t.partition)}/${f}`, format: manifests[k]!.format ?? 'parquet' })) }));
      publishFrom = before;
    }
  } catch (err) {
    await log({ kind: 'job', state: 'failed', message: (err as Error).message });
    throw err;
  } finally {
    await pool.close();
  }
  // The write stage's outputs, published whole: its files are moved (renamed, not copied) into a
  // folder beside the target, which is then renamed into place. A driver that dies midway finds
  // each file either still in its task's folder or already in the staging folder, and goes on.
  const last = plan.stages[plan.stages.length - 1]!;
  let output: string | undefined;
  if (last.kind === 'write') {
    output = last.dir.replace(/\/+$/, '');
    if (!(await pathExists(fs, output))) {
      const staging = `${output}.publishing`;
      await fs.mkdir(staging, { recursive: true });
      // The last tasks' outputs: the write stage's, or the stage before it when that one
      // already wrote one file per partition.
      for (const part of publishFrom) {
        for (const f of part.files) {
          const name = f.path.slice(f.path.lastIndexOf('/') + 1);
          if (await pathExists(fs, f.path)) await fs.rename(f.path, `${staging}/${name}`);
          else if (!(await pathExists(fs, `${staging}/${name}`))) throw flyfsError('FLYFS_ERR_NOT_FOUND', `output ${name} is in neither ${f.path} nor ${staging}`, { path: f.path });
        }
      }
      await fs.rename(staging, output);
    }
  }
  const summary: JobSummary = { jobDir, stages, ...(output === undefined ? {} : { output }), ms: Date.now() - started };
  await log({ kind: 'job', state: 'done', message: JSON.stringify(summary) });
  return summary;
}

async function readManifestIfDone(fs: FileSystem, t: Task): Promise<TaskManifest | undefined> {
  const text = await readTextIfExists(fs, `${t.outputDir}/${taskManifest}`);
  return text === undefined ? undefined : JSON.parse(text) as TaskManifest;
}

async function writeAtomic(fs: FileSystem, path: string, text: string): Promise<void> {
  await fs.writeFile(`${path}.tmp`, text);
  await fs.rename(`${path}.tmp`, path);
}

interface Slot {
  proc: ChildProcess;
  ready: Promise<void>;
  /** Places taken by callers of idle() (counted in the same turn as the check, so no more than
   * tasksPerWorker take one slot). */
  taken: number;
  /** The tasks it runs, by id. */
  busy: Map<string, { task: Task; resolve: (m: TaskManifest) => void; reject: (e: unknown) => void }>;
}

/** Worker processes; a task whose worker dies runs again elsewhere. */
class WorkerPool {
  private readonly slots: Slot[] = [];
  private readonly waiting: Array<() => void> = [];
  private closed = false;

  private readonly tasksPerWorker: number;

  constructor(private readonly o: RunJobOptions, private readonly emit: (e: JobEvent) => void) {
    this.tasksPerWorker = o.tasksPerWorker ?? 1;
  }

  /** Runs `t` until it succeeds, failing after `retries` more attempts or on an input error. */
  async run(t: Task, retries: number): Promise<{ manifest: TaskManifest; attempts: number }> {
    for (let attempt = 1; ; attempt++) {
      try {
        const manifest = await this.once(t, attempt);
        this.emit({ kind: 'task', stage: t.stage, task: t.id, state: 'done', rows: manifest.rows, attempt });
        return { manifest, attempts: attempt };
      } catch (err) {
        const input = err instanceof FlyfsError && err.code === 'FLYFS_ERR_INVALID_ARGUMENT';
        const message = (err as Error).message;
        if (input || attempt > retries) {
          this.emit({ kind: 'task', stage: t.stage, task: t.id, state: 'failed', attempt, message });
          throw err;
        }
        this.emit({ kind: 'task', stage: t.stage, task: t.id, state: 'retry', attempt, message });
      }
    }
  }

  private async once(t: Task, attempt: number): Promise<TaskManifest> {
    const slot = await this.idle();
    return new Promise<TaskManifest>((resolve, reject) => {
      if (!this.slots.includes(slot)) { reject(flyfsError('FLYFS_ERR_CHILD_FAILED', `task ${t.id}: its worker exited before it started`)); return; }
      slot.busy.set(t.id, { task: t, resolve, reject });
      slot.proc.send({ type: 'task', task: t, attempt } satisfies ToWorker);
      this.emit({ kind: 'task', stage: t.stage, task: t.id, state: 'started', attempt, pid: slot.proc.pid ?? -1 });
    });
  }

  private async idle(): Promise<Slot> {
    for (;;) {
      if (this.closed) throw flyfsError('FLYFS_ERR_CLOSED', 'the job stopped');
      if (this.slots.length < this.o.workers) { this.slots.push(this.spawn()); continue; }
      // The least busy worker, so that tasks spread over all of them.
      const free = this.slots.reduce<Slot | undefined>((best, s) => (s.taken < this.tasksPerWorker && (best === undefined || s.taken < best.taken) ? s : best), undefined);
      if (free !== undefined) {
        free.taken++;
        await free.ready;
        if (this.slots.includes(free)) return free;
        continue;
      }
      await new Promise<void>((r) => this.waiting.push(r));
    }
  }

  private spawn(): Slot {
    const cmd = this.o.workerCommand ?? [cliPath(), 'job', 'worker'];
    const proc = spawn(process.execPath, [...cmd, '--cluster', this.o.cluster], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    let markReady!: () => void;
    const slot: Slot = { proc, ready: new Promise<void>((r) => { markReady = r; }), taken: 0, busy: new Map() };
    this.emit({ kind: 'worker', pid: proc.pid ?? -1, state: 'started' });
    proc.on('message', (m: FromWorker) => {
      if (m.type === 'ready') { markReady(); return; }
      const b = slot.busy.get(m.id);
      if (b === undefined) return;
      slot.busy.delete(m.id);
      slot.taken--;
      if (m.type === 'done') b.resolve(m.manifest);
      else b.reject(m.input ? flyfsError('FLYFS_ERR_INVALID_ARGUMENT', m.message, m.file === undefined ? {} : { path: m.file }) : flyfsError('FLYFS_ERR_UNAVAILABLE', m.message));
      this.wake();
    });
    proc.on('exit', (code, signal) => {
      this.emit({ kind: 'worker', pid: proc.pid ?? -1, state: 'exited', code, signal });
      const i = this.slots.indexOf(slot);
      if (i >= 0) this.slots.splice(i, 1);
      markReady();
      for (const b of slot.busy.values()) b.reject(flyfsError('FLYFS_ERR_CHILD_FAILED', `task ${b.task.id}: its worker (pid ${proc.pid}) exited with ${signal ?? code}`));
      slot.busy.clear();
      this.wake();
    });
    return slot;
  }

  private wake(): void { for (const w of this.waiting.splice(0)) w(); }

  async close(): Promise<void> {
    this.closed = true;
    this.wake();
    await Promise.all(this.slots.map((s) => new Promise<void>((resolve) => {
      if (s.proc.exitCode !== null || s.proc.signalCode !== null) { resolve(); return; }
      s.proc.once('exit', () => resolve());
      s.proc.disconnect();
    })));
  }
}
