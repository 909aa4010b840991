// sort: GraySort through flyfs (chains of 3) as a job on 2 worker processes — gensort records
// shuffled by key range and sorted per partition (client/jobs) — against DuckDB sorting the same
// records from and to local disk in one process, in the same run. Also a 3-stage SQL job (read
// Parquet → hash repartition → per-partition aggregate → write) against the same SQL in one
// local DuckDB process. The local records are Parquet (key BLOB, payload BLOB) made untimed
// from the very same gensort records: DuckDB reads no fixed-width binary records.
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { SeededRandom } from '../client/dataset/order.js';
import { genRecords, graySort, readParquet, recordBytes, runJob, validateSorted } from '../client/jobs/index.js';
import { openDuck, quoteString } from '../client/jobs/duck.js';
import { assert } from '../common/errors.js';
import { logTargets, ratioTarget, withBenchCluster, withinMs } from './cluster-bench.js';
import { figure, measured, throughputGBps, timeMs, unitGBps, type BenchContext, type Figure } from './harness.js';

const MiB = 1024 * 1024;

export interface SortBenchConfig {
  /** Bytes of gensort records (`--size`). */
  bytes: number;
  /** Records per input file (gensort files of this many × 100 bytes). */
  fileBytes: number;
  /** Partitions of the shuffle: about 256 MiB each by default. */
  partitions: number;
  workers: number;
  /** Parquet bytes of the SQL job's input, as a share of `bytes`. */
  sqlShare: number;
  /** Each timed pass must end within this. */
  passMsMax: number;
}

export function sortBenchConfig(bytes: number): SortBenchConfig {
  return { bytes, fileBytes: 64 * MiB, partitions: Math.max(2, Math.round(bytes / (256 * MiB))), workers: 2, sqlShare: 0.125, passMsMax: 3_600_000 };
}

/** Issue 7's target: flyfs GraySort ≥ 0.7× DuckDB's local sort of the same records. */
export const sortRatioTarget = 0.7;

const aggregate = 'SELECT user_id, count(*) AS n, sum(amount) AS total, min(category) AS first_cat FROM {0} GROUP BY user_id';

export async function runSortBench(ctx: BenchContext, cfg: SortBenchConfig): Promise<Figure[]> {
  return withBenchCluster(ctx, { name: 'sort' }, async ({ tmp, fs, cluster }) => {
    const records = Math.floor(cfg.bytes / recordBytes);
    const perFile = Math.floor(cfg.fileBytes / recordBytes);
    const files = Math.ceil(records / perFile);
    const bytes = records * recordBytes;
    // Inputs, untimed: the gensort files locally and in flyfs, and the same records as Parquet.
    const localIn = path.join(tmp, 'in');
    const localParquet = path.join(tmp, 'in-parquet');
    await mkdir(localIn);
    await mkdir(localParquet);
    await fs.mkdir('/sort/in', { recursive: true });
    const duck = await openDuck();
    try {
      await duck.conn.run("SET memory_limit = '4GB'");
      await duck.conn.run('SET threads = 2');
      for (let f = 0; f < files; f++) {
        const count = Math.min(perFile, records - f * perFile);
        const buf = Buffer.allocUnsafe(count * recordBytes);
        genRecords(buf, f * perFile, count, new SeededRandom(7, f));
        const name = `input-${String(f).padStart(6, '0')}.gensort`;
        await writeFile(path.join(localIn, name), buf);
        await fs.writeFile(`/sort/in/${name}`, buf);
        await duck.conn.run('CREATE OR REPLACE TABLE r (key BLOB, payload BLOB)');
        const app = await duck.conn.createAppender('r');
        for (let i = 0; i < count; i++) {
          app.appendBlob(buf.subarray(i * recordBytes, i * recordBytes + 10));
          app.appendBlob(buf.subarray(i * recordBytes + 10, (i + 1) * recordBytes));
          app.endRow();
        }
        app.closeSync();
        await duck.conn.run(`COPY r TO ${quoteString(path.join(localParquet, `${name}.parquet`))} (FORMAT parquet)`);
      }
      await duck.conn.run('DROP TABLE r');
      // The SQL job's input: events as Parquet, locally and in flyfs.
      const sqlFiles = Math.max(2, Math.round((cfg.bytes * cfg.sqlShare) / (32 * MiB)));
      const rowsPerFile = Math.max(1000, Math.round((cfg.bytes * cfg.sqlShare) / sqlFiles / 16));
      const localEvents = path.join(tmp, 'events');
      await mkdir(localEvents);
      await fs.mkdir('/sql/in', { recursive: true });
      let eventBytes = 0;
      for (let f = 0; f < sqlFiles; f++) {
        const p = path.join(localEvents, `events-${f}.parquet`);
        await duck.conn.run(`COPY (SELECT (i * 7919 + ${f}) % 100000 AS user_id, ((i * 31 + ${f}) % 1000) / 10.0 AS amount, chr(CAST(97 + (i % 26) AS INTEGER)) AS category FROM range(${rowsPerFile}) t(i)) TO ${quoteString(p)} (FORMAT parquet)`);
        const b = await readFile(p);
        eventBytes += b.length;
        await fs.writeFile(`/sql/in/events-${f}.parquet`, b);
      }
      ctx.log(`sort: ${records} records (${bytes} bytes) in ${files} files, ${cfg.partitions} partitions; SQL job over ${sqlFiles} Parquet files (${eventBytes} bytes)`);

      const series: Record<string, number[]> = { flyfsSort: [], localSort: [], flyfsSql: [], localSql: [] };
      for (let run = 0; run < ctx.runs; run++) {
        // DuckDB in one process, local disk: read, sort, write.
        const localOut = path.join(tmp, `sorted-${run}.parquet`);
        const localMs = await timeMs(async () => {
          await duck.conn.run(`COPY (SELECT key, payload FROM read_parquet(${quoteString(path.join(localParquet, '*.parquet'))}) ORDER BY key) TO ${quoteString(localOut)} (FORMAT parquet)`);
        });
        series.localSort!.push(throughputGBps(bytes, localMs));
        // flyfs: the GraySort job on the workers.
        const out = `/sort/out-${run}`;
        const flyfsMs = await timeMs(async () => {
          await withinMs(cfg.passMsMax, 'the flyfs sort', runJob(fs, graySort('/sort/in/*.gensort', out, cfg.partitions).plan(), { jobDir: `/jobs/sort-${run}`, workers: cfg.workers, cluster: cluster.clusterAddress }));
        });
        series.flyfsSort!.push(throughputGBps(bytes, flyfsMs));
        const v = await validateSorted(fs, out, '/sort/in');
        assert(v.ordered && v.matchesInput === true && v.records === records, `the sort's output validates (${JSON.stringify({ ordered: v.ordered, records: v.records, matches: v.matchesInput })})`);
        await fs.rm(out, { recursive: true, force: true });
        await fs.rm(`/jobs/sort-${run}`, { recursive: true, force: true });
        // The 3-stage SQL job, and the same SQL in one local process.
        const sqlLocalOut = path.join(tmp, `agg-${run}.parquet`);
        const sqlLocalMs = await timeMs(async () => {
          await duck.conn.run(`COPY (${aggregate.replace('{0}', `read_parquet(${quoteString(path.join(localEvents, '*.parquet'))})`)}) TO ${quoteString(sqlLocalOut)} (FORMAT parquet)`);
        });
        series.localSql!.push(throughputGBps(eventBytes, sqlLocalMs));
        const sqlMs = await timeMs(async () => {
          await withinMs(cfg.passMsMax, 'the flyfs SQL job', readParquet('/sql/in/*.parquet').repartition(cfg.partitions, { hashBy: 'user_id' }).partialSql(aggregate).writeParquet(`/sql/out-${run}`)
            .run(fs, { jobDir: `/jobs/sql-${run}`, workers: cfg.workers, cluster: cluster.clusterAddress }));
        });
        series.flyfsSql!.push(throughputGBps(eventBytes, sqlMs));
        ctx.log(`sort: run ${run + 1}: GraySort flyfs ${(flyfsMs / 1000).toFixed(1)} s vs DuckDB local ${(localMs / 1000).toFixed(1)} s; SQL job flyfs ${(sqlMs / 1000).toFixed(1)} s vs local ${(sqlLocalMs / 1000).toFixed(1)} s`);
        await fs.rm(`/sql/out-${run}`, { recursive: true, force: true });
        await fs.rm(`/jobs/sql-${run}`, { recursive: true, force: true });
        assert((await stat(sqlLocalOut)).size > 0 && (await readdir(tmp)).length > 0, 'the local runs wrote their outputs');
      }
      const figures = [
        figure(`flyfs GraySort, ${cfg.workers} workers, ${cfg.partitions} partitions, chains of 3 (gensort records)`, unitGBps, measured(series.flyfsSort!),
          'DuckDB ORDER BY in one process, local disk (the same records as Parquet)', measured(series.localSort!)),
        figure(`flyfs 3-stage SQL job (read → hash repartition ${cfg.partitions} → aggregate → write), ${cfg.workers} workers`, unitGBps, measured(series.flyfsSql!),
          'the same SQL in one local DuckDB process', measured(series.localSql!)),
      ];
      logTargets(ctx, 'sort', [ratioTarget(figures[0]!, sortRatioTarget)]);
      return figures;
    } finally {
      duck.close();
    }
  });
}

export async function runSort(ctx: BenchContext): Promise<Figure[]> {
  return runSortBench(ctx, sortBenchConfig(ctx.sizeBytes));
}
