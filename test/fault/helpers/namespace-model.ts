// A worker's model of its own directory under faults. Names are never reused, so each name
// belongs to one file; an operation whose outcome is unknown (it failed retryably, perhaps after
// it applied) leaves its file in one of two states and the worker touches that file no more.
// At the end the directory must match the model exactly once over: acknowledged operations
// applied once, unknown ones applied whole or not at all, nothing else.
import type { FileSystem } from '../../../client/index.js';
import type { NodeStyleError } from '../../../client/node-errors.js';

export type FileFate =
  | { kind: 'present'; name: string; inodeId: number }
  | { kind: 'gone' }
  | { kind: 'unknown-create'; name: string }
  | { kind: 'unknown-rename'; from: string; to: string; inodeId: number }
  | { kind: 'unknown-unlink'; name: string; inodeId: number };

interface FileRecord { readonly names: string[]; fate: FileFate }

export type OpKind = 'create' | 'rename' | 'unlink' | 'stat';

export interface OpTally { acked: number; unknown: number; refused: number }

export interface WorkerReport {
  dir: string;
  ops: number;
  tally: Record<OpKind, OpTally>;
  /** Failure codes (flyfs codes) seen, with counts. */
  codes: Map<string, number>;
  closeFailed: number;
  violations: string[];
}

/** xorshift32: deterministic choices from the printed seed. */
export function rng(seed: number): () => number {
  let x = (seed >>> 0) || 0x9e3779b9;
  return () => {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    return x / 0x1_0000_0000;
  };
}

function codeOf(err: unknown): { flyfsCode: string; retryable: boolean } {
  const e = err as Partial<NodeStyleError>;
  return { flyfsCode: e.flyfsCode ?? String((err as { code?: unknown }).code ?? 'non-flyfs error'), retryable: e.retryable ?? false };
}

/**
 * A failure is a definite "not applied" only when the server said so: a non-retryable flyfs
 * code. Retryable ones (timeouts, a lost head) and an INTERNAL (a stream reset by a dying
 * server becomes one) may have applied.
 */
function isDefiniteRefusal(err: unknown): boolean {
  const c = codeOf(err);
  return !c.retryable && c.flyfsCode !== 'FLYFS_ERR_INTERNAL' && c.flyfsCode.startsWith('FLYFS_ERR_');
}

export class DirectoryWorker {
  private readonly files: FileRecord[] = [];
  private readonly owner = new Map<string, FileRecord>();
  private nextName = 0;
  readonly report: WorkerReport;

  constructor(private readonly fs: FileSystem, readonly dir: string, private readonly random: () => number) {
    const tally = (): OpTally => ({ acked: 0, unknown: 0, refused: 0 });
    this.report = { dir, ops: 0, tally: { create: tally(), rename: tally(), unlink: tally(), stat: tally() }, codes: new Map(), closeFailed: 0, violations: [] };
  }

  private freshName(): string { return `n${this.nextName++}`; }

  private path(name: string): string { return `${this.dir}/${name}`; }

  private present(): FileRecord[] { return this.files.filter((f) => f.fate.kind === 'present'); }

  private pick<T>(list: T[]): T { return list[Math.floor(this.random() * list.length)]!; }

  private violation(text: string): void { this.report.violations.push(`${this.dir}: ${text}`); }

  private failed(op: OpKind, err: unknown): 'unknown' | 'refused' {
    const { flyfsCode } = codeOf(err);
    this.report.codes.set(flyfsCode, (this.report.codes.get(flyfsCode) ?? 0) + 1);
    const outcome = isDefiniteRefusal(err) ? 'refused' : 'unknown';
    this.report.tally[op][outcome]++;
    return outcome;
  }

  /** One operation, chosen so the directory stays small and every kind runs. */
  async step(): Promise<void> {
    this.report.ops++;
    const live = this.present();
    const r = this.random();
    if (live.length < 3 || r < 0.35) return this.create();
    if (r < 0.6) return this.rename(this.pick(live));
    if (r < 0.8) return this.unlink(this.pick(live));
    return this.stat(live);
  }

  private async create(): Promise<void> {
    const name = this.freshName();
    const rec: FileRecord = { names: [name], fate: { kind: 'unknown-create', name } };
    this.files.push(rec);
    this.owner.set(name, rec);
    let inodeId: number;
    try {
      // 'wx': exclusive, so a retry that applied twice would fail with EEXIST against itself.
      const h = await this.fs.open(this.path(name), 'wx');
      inodeId = h.fd;
      this.report.tally.create.acked++;
      rec.fate = { kind: 'present', name, inodeId };
      try { await h.close(); } catch { this.report.closeFailed++; }
    } catch (err) {
      const outcome = this.failed('create', err);
      if (codeOf(err).flyfsCode === 'FLYFS_ERR_EXISTS') this.violation(`exclusive create of fresh name ${name} failed with EEXIST (its own retry applied twice?)`);
      else if (outcome === 'refused') this.violation(`create ${name} refused: ${String(err)}`);
      if (outcome === 'refused') rec.fate = { kind: 'gone' };
    }
  }

  private async rename(rec: FileRecord): Promise<void> {
    if (rec.fate.kind !== 'present') throw new Error('rename of a file not known present');
    const { name: from, inodeId } = rec.fate;
    const to = this.freshName();
    rec.names.push(to);
    this.owner.set(to, rec);
    rec.fate = { kind: 'unknown-rename', from, to, inodeId };
    try {
      await this.fs.rename(this.path(from), this.path(to));
      this.report.tally.rename.acked++;
      rec.fate = { kind: 'present', name: to, inodeId };
    } catch (err) {
      if (this.failed('rename', err) === 'refused') {
        this.violation(`rename ${from} -> ${to} refused: ${String(err)}`);
        rec.fate = { kind: 'present', name: from, inodeId };
      }
    }
  }

  private async unlink(rec: FileRecord): Promise<void> {
    if (rec.fate.kind !== 'present') throw new Error('unlink of a file not known present');
    const { name, inodeId } = rec.fate;
    rec.fate = { kind: 'unknown-unlink', name, inodeId };
    try {
      await this.fs.unlink(this.path(name));
      this.report.tally.unlink.acked++;
      rec.fate = { kind: 'gone' };
    } catch (err) {
      if (this.failed('unlink', err) === 'refused') {
        this.violation(`unlink ${name} refused: ${String(err)}`);
        rec.fate = { kind: 'present', name, inodeId };
      }
    }
  }

  /** Stats a file known present (must be it), or now and then a name known gone (must be absent). */
  private async stat(live: FileRecord[]): Promise<void> {
    const gone = this.files.filter((f) => f.fate.kind === 'gone' && f.names.length > 0);
    if (gone.length > 0 && this.random() < 0.3) {
      const rec = this.pick(gone);
      const name = rec.names[rec.names.length - 1]!;
      try {
        const st = await this.fs.stat(this.path(name));
        this.report.tally.stat.acked++;
        this.violation(`stat of ${name}, acknowledged gone, found inode ${st.ino}`);
      } catch (err) {
        if (codeOf(err).flyfsCode === 'FLYFS_ERR_NOT_FOUND') { this.report.tally.stat.acked++; return; }
        this.failed('stat', err);
      }
      return;
    }
    const rec = this.pick(live);
    if (rec.fate.kind !== 'present') throw new Error('stat of a file not known present');
    const { name, inodeId } = rec.fate;
    try {
      const st = await this.fs.stat(this.path(name));
      this.report.tally.stat.acked++;
      if (st.ino !== inodeId || !st.isFile()) this.violation(`stat ${name}: inode ${st.ino} file=${st.isFile()}, model says file ${inodeId}`);
    } catch (err) {
      if (this.failed('stat', err) === 'refused') this.violation(`stat ${name}, acknowledged present, failed: ${String(err)}`);
    }
  }

  /**
   * Compares the directory (its listing, and each entry's inode) with the model. `listing`
   * maps each name in the directory to its inode.
   */
  check(listing: Map<string, number>): void {
    for (const name of listing.keys()) {
      if (!this.owner.has(name)) this.violation(`${name} exists but no operation ever named it`);
    }
    for (const rec of this.files) {
      const here = rec.names.filter((n) => listing.has(n));
      const f = rec.fate;
      const inodeOk = (id: number): void => {
        for (const n of here) if (listing.get(n) !== id) this.violation(`${n} is inode ${listing.get(n)}, model says ${id}`);
      };
      const is = (names: string[]): boolean => here.length === names.length && names.every((n) => here.includes(n));
      switch (f.kind) {
        case 'present':
          if (!is([f.name])) this.violation(`acknowledged file ${f.name} (names ${rec.names.join(',')}): found under [${here.join(',')}]`);
          inodeOk(f.inodeId);
          break;
        case 'gone':
          if (here.length > 0) this.violation(`file acknowledged gone (names ${rec.names.join(',')}) found under [${here.join(',')}]`);
          break;
        case 'unknown-create':
          if (!is([]) && !is([f.name])) this.violation(`unknown create ${f.name}: found under [${here.join(',')}]`);
          break;
        case 'unknown-rename':
          if (!is([f.from]) && !is([f.to])) this.violation(`unknown rename ${f.from} -> ${f.to}: found under [${here.join(',')}] (half applied)`);
          inodeOk(f.inodeId);
          break;
        case 'unknown-unlink':
          if (!is([]) && !is([f.name])) this.violation(`unknown unlink ${f.name}: found under [${here.join(',')}]`);
          inodeOk(f.inodeId);
          break;
      }
    }
  }

  /** How many files end in each fate (for the log). */
  fates(): Record<FileFate['kind'], number> {
    const out: Record<FileFate['kind'], number> = { 'present': 0, 'gone': 0, 'unknown-create': 0, 'unknown-rename': 0, 'unknown-unlink': 0 };
    for (const f of this.files) out[f.fate.kind]++;
    return out;
  }
}
