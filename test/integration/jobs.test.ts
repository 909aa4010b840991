// Preprocessing jobs against a real cluster: a 3-stage job (read Parquet → hash repartition →
// per-partition aggregate → write) equals DuckDB running the same SQL over all the data in one
// process; every row lands in exactly one partition; a killed worker and a killed driver (then
// resume) still give the exact result with no duplicate rows; input errors name the task and the
// file.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type FileSystem } from '../../client/index.js';
import { readParquet, type JobEvent } from '../../client/jobs/index.js';
import { openDuck, quoteString } from '../../client/jobs/duck.js';
import { isAlive, startTestCluster } from '../helpers/cluster.js';

const files = 10;
const aggregate = 'SELECT user_id, count(*) AS n, sum(amount) AS total, min(category) AS first_cat FROM {0} GROUP BY user_id';

describe('preprocessing jobs', () => {
  let fs: FileSystem;
  let address: string;
  let dir: string;
  let cleanup: () => Promise<void>;
  let expected: string[];
  const children: ChildProcess[] = [];

  const resultOf = async (path: string): Promise<string[]> => {
    const duck = await openDuck();
    try {
      const local = join(dir, `result-${Date.now()}-${Math.random()}`);
      await mkdir(local);
      for (const f of await fs.readdir(path)) await writeFile(join(local, f), await fs.readFile(`${path}/${f}`) as Buffer);
      const rows = (await duck.conn.runAndReadAll(`SELECT user_id, n, round(total, 6), first_cat FROM read_parquet(${quoteString(join(local, '*.parquet'))}) ORDER BY user_id`)).getRows();
      return rows.map((r) => r.map(String).join('|'));
    } finally { duck.close(); }
  };

  /** One result file's rows, as resultOf renders them. */
  const fileResult = async (path: string): Promise<string[]> => {
    const duck = await openDuck();
    try {
      const local = join(dir, `part-${Date.now()}-${Math.random()}.parquet`);
      await writeFile(local, await fs.readFile(path) as Buffer);
      return (await duck.conn.runAndReadAll(`SELECT user_id, n, round(total, 6), first_cat FROM read_parquet(${quoteString(local)}) ORDER BY user_id`)).getRows().map((r) => r.map(String).join('|'));
    } finally { duck.close(); }
  };

  beforeAll(async () => {
    const c = await startTestCluster('jobs', { metaservers: 1, storageServers: 3, targetsPerServer: 1 });
    cleanup = c.cleanup;
    dir = c.dir;
    address = c.cluster.clusterAddress;
    fs = await connect(address);
    // Input: 10 Parquet files of events made by DuckDB locally, uploaded to flyfs.
    const duck = await openDuck();
    const local = join(dir, 'in');
    await mkdir(local);
    await fs.mkdir('/in', { recursive: true });
    for (let f = 0; f < files; f++) {
      const path = join(local, `events-${f}.parquet`);
      await duck.conn.run(`COPY (SELECT (i * 7919 + ${f}) % 500 AS user_id, ((i * 31 + ${f * 17}) % 1000) / 10.0 AS amount, chr(CAST(97 + ((i + ${f}) % 5) AS INTEGER)) AS category FROM range(2000) t(i)) TO ${quoteString(path)} (FORMAT parquet)`);
      await fs.writeFile(`/in/events-${f}.parquet`, await readFile(path));
    }
    const rows = (await duck.conn.runAndReadAll(`SELECT user_id, n, round(total, 6), first_cat FROM (${aggregate.replace('{0}', `read_parquet(${quoteString(join(local, '*.parquet'))})`)}) ORDER BY user_id`)).getRows();
    expected = rows.map((r) => r.map(String).join('|'));
    duck.close();
    await fs.writeFile('/in/not-parquet.txt', 'ignored by the glob');
  }, 120_000);

  afterAll(async () => {
    // Drivers this file started (a failed test may leave one running), and their workers go first.
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await fs?.close();
    await cleanup?.();
  });

  const job = (out: string) => readParquet('/in/events-*.parquet').repartition(4, { hashBy: 'user_id' }).partialSql(aggregate).writeParquet(out);

  it('a 3-stage job equals DuckDB over all the data; each row lands in exactly one partition', async () => {
    const events: JobEvent[] = [];
    const summary = await job('/out/a').run(fs, { jobDir: '/jobs/a', workers: 2, cluster: address, onEvent: (e) => events.push(e) });
    // The write stage moves the aggregate's files into place: no tasks of its own.
    expect(summary.stages.map((s) => [s.op, s.tasks])).toEqual([['repartition', files], ['sql', 4], ['write', 0]]);
    expect(summary.stages[0]!.rows).toBe(files * 2000);
    expect(await resultOf('/out/a')).toEqual(expected);
    // The shuffle: a user's rows are all in one partition, and every row is in one.
    const byPartition = await Promise.all([0, 1, 2, 3].map((p) => fileResult(`/out/a/part-0000${p}.parquet`).catch(() => [])));
    const owner = new Map<string, number>();
    byPartition.forEach((rows, p) => rows.forEach((r) => { const u = r.split('|')[0]!; expect(owner.has(u), `user ${u} in two partitions`).toBe(false); owner.set(u, p); }));
    expect(owner.size).toBe(expected.length);
    expect(summary.stages[1]!.rows).toBe(expected.length);
    expect(events.some((e) => e.kind === 'worker' && e.state === 'started')).toBe(true);
    const log = (await fs.readFile('/jobs/a/log.jsonl', 'utf8') as string).trim().split('\n').map((l) => JSON.parse(l) as { kind: string; state?: string });
    expect(log[log.length - 1]).toMatchObject({ kind: 'job', state: 'done' });
    // Running it again on the same job folder resumes everything: nothing runs twice.
    const again = await job('/out/a').run(fs, { jobDir: '/jobs/a', workers: 1, cluster: address });
    expect(again.stages.every((s) => s.resumed === s.tasks)).toBe(true);
    expect(await fs.readdir('/out')).toEqual(['a']);
  }, 120_000);

  it('count and take run the plan and read its result', async () => {
    const filtered = readParquet('/in/events-*.parquet').filter("category = 'a'");
    const want = files * 2000 / 5;
    expect(await filtered.count(fs, { jobDir: '/jobs/count', workers: 2, cluster: address })).toBe(want);
    const rows = await filtered.map({ user_id: 'user_id', twice: 'amount * 2' }).take(fs, 5, { jobDir: '/jobs/take', workers: 2, cluster: address });
    expect(rows.length).toBe(5);
    for (const r of rows) expect(Object.keys(r).sort()).toEqual(['twice', 'user_id']);
    const written = await readParquet('/in/events-*.parquet').filter('user_id < 3').writeParquet('/out/small').take(fs, 1_000_000, { jobDir: '/jobs/take-written', workers: 2, cluster: address });
    expect(written.length).toBe(Number((await (async () => {
      const duck = await openDuck();
      try {
        const local = join(dir, 'in', '*.parquet');
        return (await duck.conn.runAndReadAll(`SELECT count(*) FROM read_parquet(${quoteString(local)}) WHERE user_id < 3`)).getRows()[0]![0];
      } finally { duck.close(); }
    })())));
  }, 120_000);

  it('a worker killed with SIGKILL mid-job: its task runs again, the result is exact, no duplicates', async () => {
    let killed = 0;
    const summary = await job('/out/b').run(fs, {
      jobDir: '/jobs/b', workers: 2, cluster: address,
      onEvent: (e) => {
        // The first worker to start a task of the aggregate stage dies while it runs it.
        if (e.kind === 'task' && e.state === 'started' && e.stage === 2 && killed === 0 && e.pid !== undefined) {
          killed = e.pid;
          try { process.kill(e.pid, 'SIGKILL'); } catch { /* gone */ }
        }
      },
    });
    expect(killed).toBeGreaterThan(0);
    expect(summary.stages.reduce((n, s) => n + s.retries, 0)).toBeGreaterThanOrEqual(1);
    expect(await resultOf('/out/b')).toEqual(expected);
    expect(summary.stages[0]!.rows).toBe(files * 2000);
    expect(summary.stages[1]!.retries).toBeGreaterThanOrEqual(1);
    // The killed attempt never published; nothing but the published task folders remains.
    for (const s of ['001', '002']) expect((await fs.readdir(`/jobs/b/stages/${s}`)).filter((n) => !/^\d{5}$/.test(n))).toEqual([]);
  }, 120_000);

  it('the driver killed with SIGKILL mid-job: resume completes it exactly; its workers exit', async () => {
    const planPath = join(dir, 'job-c.json');
    await writeFile(planPath, JSON.stringify(job('/out/c').plan()));
    const cli = (args: string[]) => {
      const p = spawn(process.execPath, ['dist/tools/cli.js', 'job', ...args, '--cluster', address], { stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(p);
      return p;
    };
    const driver = cli(['run', planPath, '--job-dir', '/jobs/c', '--workers', '2']);
    // Kill it once a few tasks of stage 1 are done (as the job log in flyfs says).
    const until = Date.now() + 60_000;
    let workerPids: number[] = [];
    for (;;) {
      const log = await fs.readFile('/jobs/c/log.jsonl', 'utf8').catch(() => '') as string;
      const lines = log.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { kind: string; state?: string; pid?: number; stage?: number });
      workerPids = lines.filter((l) => l.kind === 'worker' && l.state === 'started').map((l) => l.pid!);
      if (lines.filter((l) => l.kind === 'task' && l.state === 'done').length >= 3) break;
      if (Date.now() > until) throw new Error('the driver made no progress');
      await new Promise((r) => setTimeout(r, 50));
    }
    driver.kill('SIGKILL');
    await new Promise((r) => driver.once('exit', r));
    await new Promise((r) => setTimeout(r, 1_500));
    // An orphan that exited may linger as a zombie until init reaps it: that is not alive.
    const running = async (pid: number): Promise<string | undefined> => {
      if (!isAlive(pid)) return undefined;
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
      const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
      return state === 'Z' || state === '' ? undefined : `${state}: ${stat.slice(0, 200)}`;
    };
    for (const pid of workerPids) expect(await running(pid), `worker ${pid} outlived its driver`).toBeUndefined();
    expect(await fs.readdir('/out').then((l) => l.includes('c'), () => false)).toBe(false);
    const resume = cli(['resume', '--job-dir', '/jobs/c', '--workers', '2']);
    let out = '';
    resume.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    const code = await new Promise((r) => resume.once('exit', r));
    expect(code).toBe(0);
    expect(out).toMatch(/job done/);
    expect(out).toMatch(/resumed/);
    expect(await resultOf('/out/c')).toEqual(expected);
  }, 180_000);

  it('input errors end the job with a clear error naming the task and the file', async () => {
    await expect(readParquet('/in/nothing-*.parquet').partialSql('SELECT * FROM {0}').run(fs, { jobDir: '/jobs/e1', workers: 1, cluster: address }))
      .rejects.toMatchObject({ code: 'FLYFS_ERR_NOT_FOUND' });
    await expect(readParquet('/in/events-*.parquet').partialSql('SELEC nonsense FROM {0}').run(fs, { jobDir: '/jobs/e2', workers: 1, cluster: address, retries: 0 }))
      .rejects.toThrow(/task s1-p\d+: SQL 'SELEC nonsense FROM \{0\}'.*syntax error/is);
    await fs.mkdir('/bad', { recursive: true });
    await fs.writeFile('/bad/broken.parquet', 'this is not parquet');
    await expect(readParquet('/bad/*.parquet').partialSql('SELECT * FROM {0}').run(fs, { jobDir: '/jobs/e3', workers: 1, cluster: address }))
      .rejects.toThrow(/task s1-p0: cannot read its parquet inputs \(\/bad\/broken\.parquet\)/);
    await expect(readParquet('/in/events-*.parquet').partialSql('SELECT no_such_column FROM {0}').run(fs, { jobDir: '/jobs/e4', workers: 1, cluster: address }))
      .rejects.toThrow(/no_such_column/);
    expect(() => readParquet('/in/*.parquet').repartition(0, { hashBy: 'x' }).plan()).toThrow(/n must be/);
    expect(() => readParquet('/in/*.parquet').partialSql('select 1').plan()).toThrow(/\{0\}/);
  }, 120_000);
});
