// One partition task, as a worker runs it: stage the inputs from flyfs into a local scratch
// folder (in parallel), run the stage's SQL in DuckDB, upload the outputs into a fresh attempt
// folder in flyfs with a manifest, and publish that folder by renaming it to the task's output
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

/** Inputs staged at once by one task. */
const stagingInflight = 8;

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
  await mkdir(scratchRoot(), { recursive: true });
  const scratch = await mkdtemp(join(scratchRoot(), `${process.pid}-${task.id}-`));
  try {
    const inDir = join(scratch, 'in');
    const outDir = join(scratch, 'out');
    await mkdir(inDir);
    await mkdir(outDir);
    const local: string[] = new Array(task.inputs.length);
    await forEachParallel(task.inputs.length, stagingInflight, async (k) => {
      const src = task.inputs[k]!.path;
      let bytes: Buffer;
      try { bytes = await fs.readFile(src) as Buffer; } catch (err) {
        const code = (err as { code?: string }).code;
        if (code === 'ENOENT' || code === 'EISDIR') throw new TaskInputError(`task ${task.id}: input ${src}: ${(err as Error).message}`, src);
        throw err;
      }
      local[k] = join(inDir, `${String(k).padStart(6, '0')}-${src.slice(src.lastIndexOf('/') + 1)}`);
      await writeFile(local[k]!, bytes);
    });
    const outputs = task.inputs[0]?.format === 'gensort' || task.op.kind === 'sortRecords' ? await runRecords(task, local, outDir) : await runSql(task, local, outDir);
    // Upload into a fresh attempt folder, then publish it whole.
    const attemptDir = `${task.outputDir}.attempt-${attempt}-${randomUUID().slice(0, 8)}`;
    await fs.mkdir(attemptDir, { recursive: true });
    for (const name of outputs.files) await fs.writeFile(`${attemptDir}/${name}`, await readFile(join(outDir, name)));
    const manifest: TaskManifest = { task: task.id, files: outputs.files, format: outputs.format, rows: outputs.rows, attempt, ms: Date.now() - started };
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
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

async function readManifest(fs: FileSystem, task: Task): Promise<TaskManifest> {
  return JSON.parse(await fs.readFile(`${task.outputDir}/${taskManifest}`, 'utf8') as string) as TaskManifest;
}

/** Runs the task's SQL over its staged inputs; the files it wrote to outDir and the rows. */
type Outputs = { files: string[]; rows: number; format: InputFormat };

/** gensort records: split by key range, sort, or copy — in this process, no SQL. */
async function runRecords(task: Task, inputs: readonly string[], outDir: string): Promise<Outputs> {
  const op = task.op;
  if (inputs.length === 0) return { files: [], rows: 0, format: 'gensort' };
  if (task.inputs.some((i) => i.format !== 'gensort')) throw new TaskInputError(`task ${task.id}: sortRecords needs gensort records, not ${task.inputs[0]!.format}`);
  const what = `task ${task.id} input`;
  const all = Buffer.concat(await Promise.all(inputs.map((p) => readFile(p))));
  if (all.length % recordBytes !== 0) throw new TaskInputError(`task ${task.id}: its inputs (${task.inputs.map((i) => i.path).join(', ')}) are not whole ${recordBytes}-byte records`, task.inputs[0]!.path);
  const rows = all.length / recordBytes;
  if (op.kind === 'repartition') {
    if (op.keyRange !== true) throw new TaskInputError(`task ${task.id}: gensort records repartition by keyRange only`);
    const files: string[] = [];
    const pieces = partitionRecords(all, op.n, what);
    for (const [p, piece] of pieces.entries()) {
      if (piece.length === 0) continue;
      const name = pieceName(p, 'gensort');
      await writeFile(join(outDir, name), piece);
      files.push(name);
    }
    return { files, rows, format: 'gensort' };
  }
  if (op.kind === 'sql') throw new TaskInputError(`task ${task.id}: SQL over gensort records is not supported`);
  const name = pieceName(task.partition, 'gensort');
  await writeFile(join(outDir, name), op.kind === 'sortRecords' ? sortRecords(all, what) : all);
  return { files: [name], rows, format: 'gensort' };
}

async function runSql(task: Task, inputs: readonly string[], outDir: string): Promise<Outputs> {
  if (inputs.length === 0) return { files: [], rows: 0, format: 'parquet' };
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
      return { files: [name], rows: await scalar(duck.conn, `SELECT count(*) FROM read_parquet(${q(join(outDir, name))})`), format: 'parquet' };
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
    const files: string[] = [];
    let rows = 0;
    for (const [p, c] of counts) {
      const name = pieceName(Number(p));
      await duck.conn.run(`COPY (SELECT * EXCLUDE (__flyfs_part) FROM parts WHERE __flyfs_part = ${Number(p)}) TO ${q(join(outDir, name))} (FORMAT parquet)`);
      files.push(name);
      rows += Number(c);
    }
    return { files, rows, format: 'parquet' };
  } finally {
    duck.close();
  }
}

