// The lazy job API, after smallpond's DataFrame: each call adds a stage to a plan and nothing
// runs until `run`, `count` or `take`. Partition-wise SQL names its input `{0}`.
//
//   const df = readParquet('/data/events/*.parquet')
//     .repartition(8, { hashBy: ['user_id'] })
//     .partialSql('select user_id, count(*) as n from {0} group by user_id')
//     .writeParquet('/data/out/user-counts');
//   await df.run(fs, { jobDir: '/jobs/user-counts', workers: 4, cluster });
import { flyfsError } from '../../common/errors.js';
import { openDuck, quoteString, scalar } from './duck.js';
import { runJob, type JobSummary, type RunJobOptions } from './driver.js';
import { checkPlan, pieceName, type InputFormat, type Plan, type Stage } from './plan.js';
import type { FileSystem } from '../fs.js';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export class DataFrame {
  /** @internal */
  constructor(readonly stages: readonly Stage[]) {}

  private then(s: Stage): DataFrame {
    if (this.stages[this.stages.length - 1]?.kind === 'write') throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', 'nothing follows writeParquet');
    return new DataFrame([...this.stages, s]);
  }

  /** Hash (`hashBy` columns), by a column holding the partition number (`by`), or by row ranges (`byRows`). */
  repartition(n: number, o: { hashBy?: string | readonly string[]; by?: string; byRows?: boolean; keyRange?: boolean }): DataFrame {
    const hashBy = typeof o.hashBy === 'string' ? [o.hashBy] : o.hashBy;
    return this.then({
      kind: 'repartition', n, ...(hashBy === undefined ? {} : { hashBy: [...hashBy] }), ...(o.by === undefined ? {} : { by: o.by }),
      ...(o.byRows ? { byRows: true } : {}), ...(o.keyRange ? { keyRange: true } : {}),
    });
  }

  /** SQL over each partition; `{0}` is the partition. */
  partialSql(query: string): DataFrame { return this.then({ kind: 'sql', query }); }

  /** Columns as SQL expressions: `map('a, b * 2 as c')` or `map({ c: 'b * 2' })`. */
  map(exprs: string | Readonly<Record<string, string>>): DataFrame {
    const list = typeof exprs === 'string' ? exprs : Object.entries(exprs).map(([k, v]) => `${v} AS "${k.replace(/"/g, '""')}"`).join(', ');
    return this.partialSql(`SELECT ${list} FROM {0}`);
  }

  filter(condition: string): DataFrame { return this.partialSql(`SELECT * FROM {0} WHERE ${condition}`); }

  writeParquet(dir: string): DataFrame { return this.then({ kind: 'write', dir }); }

  /** Sorts gensort records by key within each partition (after a keyRange repartition: globally). */
  sortRecords(): DataFrame { return this.then({ kind: 'sortRecords' }); }

  /** Writes the partitions as they are (gensort records stay records). */
  write(dir: string): DataFrame { return this.then({ kind: 'write', dir }); }

  plan(): Plan { return checkPlan({ format: 'flyfs-job', version: 1, stages: this.stages }); }

  run(fs: FileSystem, o: RunJobOptions): Promise<JobSummary> { return runJob(fs, this.plan(), o); }

  /** Rows of the result (runs the plan; a write stage, if any, runs too). */
  async count(fs: FileSystem, o: RunJobOptions): Promise<number> {
    const df = this.stages.length >= 2 ? this : this.partialSql('SELECT * FROM {0}');
    const s = await df.run(fs, o);
    return s.stages[s.stages.length - 1]!.rows;
  }

  /** The first `n` rows of the result, as objects (order as the partitions come). */
  async take(fs: FileSystem, n: number, o: RunJobOptions): Promise<Array<Record<string, unknown>>> {
    const df = this.stages[this.stages.length - 1]?.kind === 'write' ? this : this.partialSql(`SELECT * FROM {0} LIMIT ${Math.max(0, Math.floor(n))}`);
    await df.run(fs, o);
    const last = df.stages.length - 1;
    const scratch = await mkdtemp(join(tmpdir(), 'flyfs-take-'));
    const duck = await openDuck();
    try {
      const out: Array<Record<string, unknown>> = [];
      // A written result is in its output folder; any other in the last stage's task folders.
      const end = df.stages[last]!;
      const files = end.kind === 'write'
        ? (await fs.readdir(end.dir)).filter((x) => x.endsWith('.parquet')).sort().map((x) => `${end.dir.replace(/\/+$/, '')}/${x}`)
        : (await fs.readdir(`${o.jobDir.replace(/\/+$/, '')}/stages/${String(last).padStart(3, '0')}`)).filter((x) => /^\d{5}$/.test(x)).sort()
          .map((x) => `${o.jobDir.replace(/\/+$/, '')}/stages/${String(last).padStart(3, '0')}/${x}/${pieceName(Number(x))}`);
      for (const [k, path] of files.entries()) {
        if (out.length >= n) break;
        const name = String(k).padStart(5, '0');
        let bytes: Buffer;
        try { bytes = await fs.readFile(path) as Buffer; } catch (err) {
          // A partition that got no rows wrote no file.
          if ((err as { code?: string }).code === 'ENOENT') continue;
          throw err;
        }
        const local = join(scratch, `${name}.parquet`);
        await writeFile(local, bytes);
        if (await scalar(duck.conn, `SELECT count(*) FROM read_parquet(${quoteString(local)})`) === 0) continue;
        const rows = (await duck.conn.runAndReadAll(`SELECT * FROM read_parquet(${quoteString(local)}) LIMIT ${n - out.length}`)).getRowObjectsJS();
        out.push(...(rows as Array<Record<string, unknown>>));
      }
      return out;
    } finally {
      duck.close();
      await rm(scratch, { recursive: true, force: true });
    }
  }
}

function read(format: InputFormat, glob: string): DataFrame { return new DataFrame([{ kind: 'read', format, glob }]); }

export const readParquet = (glob: string): DataFrame => read('parquet', glob);
export const readCsv = (glob: string): DataFrame => read('csv', glob);
export const readJson = (glob: string): DataFrame => read('json', glob);
/** gensort's binary 100-byte records (GraySort). */
export const readGensort = (glob: string): DataFrame => read('gensort', glob);

/** GraySort as a job: shuffle by key range into `partitions`, sort each, write in order. */
export function graySort(inputGlob: string, outDir: string, partitions: number): DataFrame {
  return readGensort(inputGlob).repartition(partitions, { keyRange: true }).sortRecords().write(outDir);
}
/** smallpond's spellings. */
export const read_parquet = readParquet;
export const read_csv = readCsv;
export const read_json = readJson;
