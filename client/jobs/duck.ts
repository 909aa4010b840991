// DuckDB for one task: an in-memory database with bounded threads and memory, a view `t0` over
// the task's staged inputs, and helpers that quote paths and identifiers.
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import type { InputFormat } from './plan.js';

export const duckLimits = { threads: 1, memoryLimit: '1GB' } as const;

export function quoteString(s: string): string { return `'${s.replace(/'/g, "''")}'`; }
export function quoteIdent(s: string): string { return `"${s.replace(/"/g, '""')}"`; }

export function readerOf(format: InputFormat, paths: readonly string[]): string {
  const list = `[${paths.map(quoteString).join(', ')}]`;
  switch (format) {
    case 'parquet': return `read_parquet(${list})`;
    case 'csv': return `read_csv(${list}, header = true, auto_detect = true)`;
    case 'json': return `read_json_auto(${list})`;
    case 'gensort': throw new Error('assertion failed: gensort records are not read by DuckDB');
  }
}

export async function openDuck(): Promise<{ conn: DuckDBConnection; close: () => void }> {
  const db = await DuckDBInstance.create(':memory:', { threads: String(duckLimits.threads), memory_limit: duckLimits.memoryLimit });
  const conn = await db.connect();
  return { conn, close: () => { conn.closeSync(); db.closeSync(); } };
}

/** The single number a query like `select count(*) from …` answers. */
export async function scalar(conn: DuckDBConnection, sql: string): Promise<number> {
  const r = await conn.runAndReadAll(sql);
  const v = r.getRows()[0]?.[0];
  return typeof v === 'bigint' ? Number(v) : Number(v ?? 0);
}
