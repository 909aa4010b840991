// One partition task, as a worker runs it: stage the inputs from flyfs into a local scratch
// folder (in parallel), run the stage's SQL in DuckDB (gensort records are split or sorted in
// memory instead, with no scratch), upload the outputs into a fresh attempt folder in flyfs
// with a manifest, and publish that folder by renaming it to the task's output
// folder. A retried task therefore never leaves duplicates: the first attempt to publish wins,
// a later one finds the folder there and throws its own away. The scratch folder goes in every
// case; scratch left by a killed worker is swept by the next worker (sweepScratch).
import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { forEachParallel } from '../../common/parallel.js';
import { pathExists } from '../exists.js';
import type { FileSystem } from '../fs.js';
import { openDuck, quoteIdent, quoteString, readerOf, scalar } from './duck.js';
import { partitionRecords, recordBytes, sortRecords } from './graysort.js';
import { pieceName, taskManifest, type InputFormat, type Task, type TaskManifest } from './plan.js';

/** Inputs one task reads (or stages) at once, and outputs it uploads at once. */
const stagingInflight = 8;
const uploadInflight = 4;

export const scratchRoot = (): string => join(tmpdir(), 'flyfs-job-scratch');

/** An error a retry cannot fix: bad SQL, an unreadable or missing input. */
export class TaskInputError extends Error {
  constructor(message: string, readonly file?: string) { super(message); this.name = 'TaskInputError'; }
}

/** Removes scratch folders of workers that are gone (their names start with the pid). */
export async function sweepScratch(): Promise<void> {
  let names: string[];
  try { names = await readdir(scratchRoot()); } catch { return; }
  for (const n of names) {
    const pid = Number(n.split('-')[0]);
    let alive = false;
    try { process.kill(pid, 0); alive = true; } catch (e) { alive = (e as NodeJS.ErrnoException).code === 'EPERM'; }
    if (!alive || pid === process.pid) await rm(join(scratchRoot(), n), { recursive: true, force: true });
  }
}

export async function runTask(fs: FileSystem, task: Task, attempt: number): Promise<TaskManifest> {
  const started = Date.now();
  if (await pathExists(fs, `${task.outputDir}/${taskManifest}`)) return readManifest(fs, task);
  const run = { attempt, started };
  if (task.inputs[0]?.format === 'gensort' || task.op.kind === 'sortRecords') return publish(fs, task, run, await runRecords(fs, task));
  return withScratch(task, async (scratch) => publish(fs, task, run, await runSql(fs, task, scratch)));
}

/**
 * Uploads the outputs into a fresh attempt folder with a manifest, then publishes that folder
 * whole (renames it to the task's folder); the manifest that stands.
 */
async function publish(fs: FileSystem, task: Task, run: { attempt: number; started: number }, outputs: Outputs): Promise<TaskManifest> {
  const attemptDir = `${task.outputDir}.attempt-${run.attempt}-${randomUUID().slice(0, 8)}`;
  await fs.mkdir(attemptDir, { recursive: true });
  await forEachParallel(outputs.files.length, uploadInflight, async (k) => {
    const f = outputs.files[k]!;
    await fs.writeFile(`${attemptDir}/${f.name}`, await f.bytes());
  });
  const manifest: TaskManifest = { task: task.id, files: outputs.files.map((f) => f.name), format: outputs.format, rows: outputs.rows, attempt: run.attempt, ms: Date.now() - run.started };
  await fs.writeFile(`${attemptDir}/${taskManifest}`, JSON.stringify(manifest));
  try {
    await fs.rename(attemptDir, task.outputDir);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
    // Another attempt published first: its outputs stand, this one's go.
    await fs.rm(attemptDir, { recursive: true, force: true });
    return readManifest(fs, task);
  }
  return manifest;
}

async function readManifest(fs: FileSystem, task: Task): Promise<TaskManifest> {
  return JSON.parse(await fs.readFile(`${task.outputDir}/${taskManifest}`, 'utf8') as string) as TaskManifest;
}

/** A task's output files: their names in the task's folder, and where their bytes come from. */
type Outputs = { files: Array<{ name: string; bytes: () => Promise<Buffer> }>; rows: number; format: InputFormat };

/** Runs `fn` in a fresh local scratch folder, which is removed whatever happens. */
async function withScratch<T>(task: Task, fn: (scratch: string) => Promise<T>): Promise<T> {
  await mkdir(scratchRoot(), { recursive: true });
  const scratch = await mkdtemp(join(scratchRoot(), `${process.pid}-${task.id}-`));
  try { return await fn(scratch); } finally { await rm(scratch, { recursive: true, force: true }); }
}

/** Reads one of the task's inputs from flyfs; a missing one is an input error. */
async function readInput(fs: FileSystem, task: Task, k: number): Promise<Buffer> {
  const src = task.inputs[k]!.path;
  try { return await fs.readFile(src) as Buffer; } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ENOENT' || code === 'EISDIR') throw new TaskInputError(`task ${task.id}: input ${src}: ${(err as Error).message}`, src);
    throw err;
  }
}

/** The task's inputs, read from flyfs into memory in parallel. */
async function readInputs(fs: FileSystem, task: Task): Promise<Buffer[]> {
  const bufs: Buffer[] = new Array(task.inputs.length);
  await forEachParallel(task.inputs.length, stagingInflight, async (k) => { bufs[k] = await readInput(fs, task, k); });
  return bufs;
}

/**
 * gensort records: split by key range, sort, or pass on — in this process and in memory, no
 * SQL, so nothing is staged on local disk: the inputs are read from flyfs into memory and the
 * outputs are uploaded from there.
 */
async function runRecords(fs: FileSystem, task: Task): Promise<Outputs> {
  const op = task.op;
  if (task.inputs.length === 0) return { files: [], rows: 0, format: 'gensort' };
  if (task.inputs.some((i) => i.format !== 'gensort')) throw new TaskInputError(`task ${task.id}: sortRecords needs gensort records, not ${task.inputs[0]!.format}`);
  if (op.kind === 'sql') throw new TaskInputError(`task ${task.id}: SQL over gensort records is not supported`);
  if (op.kind === 'repartition' && op.keyRange !== true) throw new TaskInputError(`task ${task.id}: gensort records repartition by keyRange only`);
  const what = `task ${task.id} input`;
  const parts = await readInputs(fs, task);
  const all = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  parts.length = 0;
  if (all.length % recordBytes !== 0) throw new TaskInputError(`task ${task.id}: its inputs (${task.inputs.map((i) => i.path).join(', ')}) are not whole ${recordBytes}-byte records`, task.inputs[0]!.path);
  const rows = all.length / recordBytes;
  const file = (name: string, data: Buffer): Outputs['files'][number] => ({ name, bytes: () => Promise.resolve(data) });
  if (op.kind === 'repartition') {
    const pieces = partitionRecords(all, op.n, what);
    const files = [...pieces.entries()].filter(([, piece]) => piece.length > 0).map(([p, piece]) => file(pieceName(p, 'gensort'), piece));
    return { files, rows, format: 'gensort' };
  }
  return { files: [file(pieceName(task.partition, 'gensort'), op.kind === 'sortRecords' ? sortRecords(all, what) : all)], rows, format: 'gensort' };
}

/** Stages the task's inputs into scratch, runs its SQL over them; its outputs stay in scratch
 * until they are uploaded (within `withScratch`). */
async function runSql(fs: FileSystem, task: Task, scratch: string): Promise<Outputs> {
  if (task.inputs.length === 0) return { files: [], rows: 0, format: 'parquet' };
  const inDir = join(scratch, 'in');
  const outDir = join(scratch, 'out');
  await mkdir(inDir);
  await mkdir(outDir);
  const inputs: string[] = new Array(task.inputs.length);
  await forEachParallel(task.inputs.length, stagingInflight, async (k) => {
    const bytes = await readInput(fs, task, k);
    const src = task.inputs[k]!.path;
    inputs[k] = join(inDir, `${String(k).padStart(6, '0')}-${src.slice(src.lastIndexOf('/') + 1)}`);
    await writeFile(inputs[k]!, bytes);
  });
  const local = (name: string): Outputs['files'][number] => ({ name, bytes: () => readFile(join(outDir, name)) });
  const format = task.inputs[0]!.format;
  const duck = await openDuck();
  const q = (s: string): string => quoteString(s);
  try {
    try {
      await duck.conn.run(`CREATE VIEW t0 AS SELECT * FROM ${readerOf(format, inputs)}`);
      await duck.conn.run('SELECT * FROM t0 LIMIT 0');
    } catch (err) {
      throw new TaskInputError(`task ${task.id}: cannot read its ${format} inputs (${task.inputs.map((i) => i.path).join(', ')}): ${(err as Error).message}`, task.inputs[0]!.path);
    }
    const op = task.op;
    const sql = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
      try { return await fn(); } catch (err) { throw new TaskInputError(`task ${task.id}: ${what}: ${(err as Error).message}`); }
    };
    if (op.kind === 'sql' || op.kind === 'write') {
      const query = op.kind === 'sql' ? op.query.replaceAll('{0}', 't0') : 'SELECT * FROM t0';
      const name = pieceName(task.partition);
      await sql(op.kind === 'sql' ? `SQL '${op.query}'` : 'write', () => duck.conn.run(`COPY (${query}) TO ${q(join(outDir, name))} (FORMAT parquet)`));
      return { files: [local(name)], rows: await scalar(duck.conn, `SELECT count(*) FROM read_parquet(${q(join(outDir, name))})`), format: 'parquet' };
    }
    // Repartition: every row gets its output partition, then one piece per non-empty partition.
    if (op.kind !== 'repartition') throw new Error('assertion failed: a repartition');
    if (op.keyRange === true) throw new TaskInputError(`task ${task.id}: keyRange repartitions gensort records; these inputs are ${format}`);
    const part = op.hashBy !== undefined
      ? `(hash(${op.hashBy.map(quoteIdent).join(', ')}) % ${op.n})`
      : op.by !== undefined
        ? `CAST(${quoteIdent(op.by)} AS BIGINT)`
        : `(ntile(${op.n}) OVER () - 1)`;
    await sql('repartition', () => duck.conn.run(`CREATE TABLE parts AS SELECT *, ${part} AS __flyfs_part FROM t0`));
    const bad = await scalar(duck.conn, `SELECT count(*) FROM parts WHERE __flyfs_part IS NULL OR __flyfs_part < 0 OR __flyfs_part >= ${op.n}`);
    if (bad > 0) throw new TaskInputError(`task ${task.id}: ${bad} rows have a partition outside 0..${op.n - 1} (by ${op.by ?? ''})`);
    const counts = (await duck.conn.runAndReadAll('SELECT __flyfs_part, count(*) FROM parts GROUP BY 1 ORDER BY 1')).getRows();
    const files: Outputs['files'] = [];
    let rows = 0;
    for (const [p, c] of counts) {
      const name = pieceName(Number(p));
      await duck.conn.run(`COPY (SELECT * EXCLUDE (__flyfs_part) FROM parts WHERE __flyfs_part = ${Number(p)}) TO ${q(join(outDir, name))} (FORMAT parquet)`);
      files.push(local(name));
      rows += Number(c);
    }
    return { files, rows, format: 'parquet' };
  } finally {
    duck.close();
  }
}

