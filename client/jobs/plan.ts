// A preprocessing job's plan: a chain of stages over partitioned data, built lazily by the
// DataFrame API (dataframe.ts) and stored as plan.json in the job's flyfs folder. Stage 0 reads
// files (one partition per file); every later stage maps each partition of the stage before it
// (SQL), or repartitions (every input task writes one piece per output partition, and output
// partition j is all the pieces j). `compile` turns a plan and the input files into tasks.
import { flyfsError } from '../../common/errors.js';

/** Table formats DuckDB reads, and gensort's binary 100-byte records (GraySort, graysort.ts). */
export type InputFormat = 'parquet' | 'csv' | 'json' | 'gensort';

export type Stage =
  | { readonly kind: 'read'; readonly format: InputFormat; readonly glob: string }
  | { readonly kind: 'sql'; readonly query: string }
  | { readonly kind: 'repartition'; readonly n: number; readonly hashBy?: readonly string[]; readonly by?: string; readonly byRows?: boolean; readonly keyRange?: boolean }
  /** Sorts gensort records by key, per partition. */
  | { readonly kind: 'sortRecords' }
  | { readonly kind: 'write'; readonly dir: string };

export interface Plan {
  readonly format: 'flyfs-job';
  readonly version: 1;
  readonly stages: readonly Stage[];
}

export const jobLimits = {
  stagesMax: 64,
  partitionsMax: 4096,
  queryBytesMax: 256 * 1024,
  inputFilesMax: 100_000,
  workersMax: 64,
  tasksPerWorkerMax: 8,
  retriesMax: 10,
} as const;

/** Where a task finds one input: a flyfs file, read with the format's DuckDB reader. */
export interface TaskInput { readonly path: string; readonly format: InputFormat }

export interface Task {
  readonly id: string;
  readonly stage: number;
  readonly partition: number;
  readonly op: Exclude<Stage, { kind: 'read' }>;
  readonly inputs: readonly TaskInput[];
  /** The folder this task's outputs are published to (renamed into place whole). */
  readonly outputDir: string;
}

function bad(detail: string): never { throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `job plan: ${detail}`); }

const columnName = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function checkPlan(p: unknown): Plan {
  const plan = p as Partial<Plan> | null;
  if (plan === null || typeof plan !== 'object' || plan.format !== 'flyfs-job' || plan.version !== 1 || !Array.isArray(plan.stages)) bad('not a flyfs-job plan of version 1');
  if (plan.stages.length < 2 || plan.stages.length > jobLimits.stagesMax) bad(`a plan has 2..${jobLimits.stagesMax} stages`);
  plan.stages.forEach((s, i) => {
    if (s === null || typeof s !== 'object') bad(`stage ${i}`);
    if ((i === 0) !== (s.kind === 'read')) bad('the first stage, and only it, reads');
    switch (s.kind) {
      case 'read':
        if (!['parquet', 'csv', 'json', 'gensort'].includes(s.format)) bad(`stage ${i}: format ${String(s.format)}`);
        if (typeof s.glob !== 'string' || !s.glob.startsWith('/')) bad(`stage ${i}: an absolute flyfs glob`);
        break;
      case 'sql':
        if (typeof s.query !== 'string' || s.query.length === 0 || s.query.length > jobLimits.queryBytesMax || !s.query.includes('{0}')) bad(`stage ${i}: a query that reads {0}`);
        break;
      case 'repartition': {
        if (!Number.isSafeInteger(s.n) || s.n < 1 || s.n > jobLimits.partitionsMax) bad(`stage ${i}: n must be 1..${jobLimits.partitionsMax}`);
        const ways = [s.hashBy !== undefined, s.by !== undefined, s.byRows === true, s.keyRange === true].filter(Boolean).length;
        if (ways !== 1) bad(`stage ${i}: exactly one of hashBy, by, byRows, keyRange`);
        if (s.hashBy !== undefined && (!Array.isArray(s.hashBy) || s.hashBy.length === 0 || !s.hashBy.every((c: unknown) => typeof c === 'string' && columnName.test(c)))) bad(`stage ${i}: hashBy names columns`);
        if (s.by !== undefined && (typeof s.by !== 'string' || !columnName.test(s.by))) bad(`stage ${i}: by names a column`);
        break;
      }
      case 'sortRecords':
        break;
      case 'write':
        if (i !== plan.stages!.length - 1) bad('write is the last stage');
        if (typeof s.dir !== 'string' || !s.dir.startsWith('/')) bad(`stage ${i}: an absolute flyfs folder`);
        break;
      default:
        bad(`stage ${i}: kind ${String((s as { kind?: unknown }).kind)}`);
    }
  });
  return plan as Plan;
}

export function stageDir(jobDir: string, stage: number): string { return `${jobDir}/stages/${String(stage).padStart(3, '0')}`; }
export function taskDir(jobDir: string, stage: number, partition: number): string { return `${stageDir(jobDir, stage)}/${String(partition).padStart(5, '0')}`; }
export const taskManifest = 'manifest.json';
export function pieceName(partition: number, format: InputFormat = 'parquet'): string {
  return `part-${String(partition).padStart(5, '0')}.${format === 'gensort' ? 'gensort' : 'parquet'}`;
}

/** What a finished task published: its files (relative to its folder) and rows. */
export interface TaskManifest { readonly task: string; readonly files: readonly string[]; readonly format: InputFormat; readonly rows: number; readonly attempt: number; readonly ms: number }

/** Partitions a stage produces, given how many its input has. */
function partitionsOut(stage: Stage, inputs: number): number {
  return stage.kind === 'repartition' ? stage.n : inputs;
}

/**
 * The tasks of stage `s` (≥ 1), given what the stage before it published: for a map stage,
 * partition p reads partition p's files; after a repartition, partition j reads piece j of
 * every task of that stage.
 */
export function tasksOf(plan: Plan, jobDir: string, s: number, before: ReadonlyArray<{ partition: number; files: readonly TaskInput[] }>): Task[] {
  const stage = plan.stages[s]!;
  if (stage.kind === 'read') throw new Error('assertion failed: the read stage has no tasks');
  const prev = plan.stages[s - 1]!;
  const inputsOf = (p: number): TaskInput[] => {
    if (prev.kind === 'repartition') return before.flatMap((t) => t.files.filter((f) => f.path.slice(f.path.lastIndexOf('/') + 1).startsWith(`part-${String(p).padStart(5, '0')}.`)));
    return [...(before.find((t) => t.partition === p)?.files ?? [])];
  };
  const n = prev.kind === 'repartition' ? prev.n : before.length;
  return Array.from({ length: n }, (_, p) => ({
    id: `s${s}-p${p}`, stage: s, partition: p, op: stage, inputs: inputsOf(p), outputDir: taskDir(jobDir, s, p),
  }));
}

export { partitionsOut };

/** Matches a flyfs glob's last component (`*`, `?`); the folder part has no wildcards. */
export function splitGlob(glob: string): { dir: string; pattern: RegExp } {
  const at = glob.lastIndexOf('/');
  const dir = glob.slice(0, at) || '/';
  if (/[*?[\]]/.test(dir)) bad(`glob ${glob}: wildcards only in the last component`);
  const last = glob.slice(at + 1);
  const re = '^' + last.replace(/[.+^${}()|\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]') + '$';
  return { dir, pattern: new RegExp(re) };
}
