// What the chain head executes mutations against: committed LMDB state, overlaid with the
// writes of its log entries that are not applied yet, overlaid with the running operation's own
// writes. The operation's writes become the write set its log entry carries; every replica
// applies that write set when the entry commits. A savepoint lets one operation undo part of its
// writes (a failed step inside a request whose failure is remembered for retries).
import { compareKeys, type Key } from 'lmdb';
import { tableNames, withSavepoint, type MetaTables, type RangeOptions, type Table, type TableName } from '../tables.js';
import type { LogIndex } from './types.js';

/** One write of a write set: a put, or a remove when `value` is undefined. */
export type Write = readonly [table: TableName, key: Key, value: unknown];

interface Slot { readonly key: Key; readonly value: unknown; readonly index: LogIndex }

const keyId = (key: Key): string => JSON.stringify(key);

function inRange(key: Key, o: RangeOptions): boolean {
  if (o.reverse === true) {
    if (o.start !== undefined && compareKeys(key, o.start) > 0) return false;
    if (o.end !== undefined && compareKeys(key, o.end) <= 0) return false;
    return true;
  }
  if (o.start !== undefined && compareKeys(key, o.start) < 0) return false;
  if (o.end !== undefined && compareKeys(key, o.end) >= 0) return false;
  return true;
}

/** The writes of log entries after the applied index, newest per key. */
export class Overlay {
  private readonly tables = new Map<TableName, Map<string, Slot>>(tableNames.map((n) => [n, new Map()]));

  add(index: LogIndex, writes: readonly Write[]): void {
    for (const [t, key, value] of writes) this.tables.get(t)!.set(keyId(key), { key, value, index });
  }

  /** The entry at `index` is in LMDB now: its writes leave the overlay unless a later entry rewrote them. */
  applied(index: LogIndex, writes: readonly Write[]): void {
    for (const [t, key] of writes) {
      const m = this.tables.get(t)!;
      const id = keyId(key);
      const slot = m.get(id);
      if (slot !== undefined && slot.index <= index) m.delete(id);
    }
  }

  clear(): void { for (const m of this.tables.values()) m.clear(); }

  size(): number { let n = 0; for (const m of this.tables.values()) n += m.size; return n; }

  table(t: TableName): ReadonlyMap<string, Slot> { return this.tables.get(t)!; }
}

/** One operation's view and its write set. */
export class WriteSetTables {
  readonly writes: Write[] = [];
  private readonly local = new Map<TableName, Map<string, Slot>>(tableNames.map((n) => [n, new Map()]));
  readonly tables: MetaTables;

  constructor(base: MetaTables, overlay: Overlay) {
    const entries = tableNames.map((n) => [n, new LayeredTable(n, base[n], overlay.table(n), this.local.get(n)!, this.writes)] as const);
    this.tables = withSavepoint(Object.fromEntries(entries) as unknown as MetaTables, (fn) => this.savepoint(fn));
  }

  /** Runs `fn`; if it throws, its writes are undone and the error goes on. */
  savepoint<T>(fn: () => T): T {
    const mark = this.writes.length;
    try {
      return fn();
    } catch (err) {
      this.rollback(mark);
      throw err;
    }
  }

  private rollback(mark: number): void {
    this.writes.length = mark;
    for (const m of this.local.values()) m.clear();
    for (const [t, key, value] of this.writes) this.local.get(t)!.set(keyId(key), { key, value, index: 0 });
  }
}

class LayeredTable implements Table {
  constructor(
    private readonly name: TableName,
    private readonly base: Table,
    private readonly overlay: ReadonlyMap<string, Slot>,
    private readonly local: Map<string, Slot>,
    private readonly writes: Write[],
  ) {}

  get(key: Key): unknown {
    const id = keyId(key);
    const slot = this.local.get(id) ?? this.overlay.get(id);
    return slot !== undefined ? slot.value : this.base.get(key);
  }

  putSync(key: Key, value: unknown): void {
    this.local.set(keyId(key), { key, value, index: 0 });
    this.writes.push([this.name, key, value]);
  }

  removeSync(key: Key): boolean {
    const existed = this.get(key) !== undefined;
    this.local.set(keyId(key), { key, value: undefined, index: 0 });
    this.writes.push([this.name, key, undefined]);
    return existed;
  }

  getRange(o: RangeOptions): Iterable<{ key: Key; value: unknown }> {
    const slots = new Map<string, Slot>();
    for (const layer of [this.overlay, this.local]) {
      for (const [id, s] of layer) if (inRange(s.key, o)) slots.set(id, s);
    }
    if (slots.size === 0) return this.base.getRange(o);
    // Each slot hides at most one committed row: ask LMDB for that many more.
    const limit = o.limit === undefined ? undefined : o.limit + slots.size;
    const rows = new Map<string, { key: Key; value: unknown }>();
    for (const r of this.base.getRange({ ...o, limit })) rows.set(keyId(r.key), { key: r.key, value: r.value });
    for (const [id, s] of slots) {
      if (s.value === undefined) rows.delete(id); else rows.set(id, { key: s.key, value: s.value });
    }
    const sign = o.reverse === true ? -1 : 1;
    const merged = [...rows.values()].sort((a, b) => sign * compareKeys(a.key, b.key));
    return o.limit === undefined ? merged : merged.slice(0, o.limit);
  }

  getKeys(o: RangeOptions): Iterable<Key> {
    return [...this.getRange(o)].map((r) => r.key);
  }
}
