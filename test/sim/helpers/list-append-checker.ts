// Linearizability of a history of appends to and reads of one list (the model the metadata
// chain simulation drives). With the final list F as the order of the appends, a history is
// linearizable exactly when the pairwise conditions below hold (each read sits between the
// appends at its length and the next); the checker names the first that fails.
export interface AppendOp { readonly kind: 'append'; readonly value: number; readonly invokeMs: number; readonly completeMs: number | undefined }
export interface ReadOp { readonly kind: 'read'; readonly list: readonly number[]; readonly invokeMs: number; readonly completeMs: number }
export type ListOp = AppendOp | ReadOp;

export function checkListHistory(key: string, ops: readonly ListOp[], final: readonly number[]): string | undefined {
  const pos = new Map<number, number>();
  for (const [i, v] of final.entries()) {
    if (pos.has(v)) return `${key}: value ${v} appended twice`;
    pos.set(v, i);
  }
  const appends = ops.filter((o): o is AppendOp => o.kind === 'append');
  const reads = ops.filter((o): o is ReadOp => o.kind === 'read');
  const invoked = new Map(appends.map((a) => [a.value, a]));
  for (const v of final) if (!invoked.has(v)) return `${key}: value ${v} was never appended`;
  for (const a of appends) {
    if (a.completeMs !== undefined && !pos.has(a.value)) return `${key}: acknowledged append ${a.value} lost`;
  }
  for (const r of reads) {
    if (r.list.length > final.length || r.list.some((v, i) => final[i] !== v)) {
      return `${key}: read [${r.list.join(',')}] at ${r.invokeMs}-${r.completeMs} is not a prefix of the final [${final.join(',')}]`;
    }
  }
  const inFinal = appends.filter((a) => pos.has(a.value));
  for (const a of inFinal) {
    if (a.completeMs === undefined) continue;
    for (const b of inFinal) {
      if (a.completeMs < b.invokeMs && pos.get(a.value)! > pos.get(b.value)!) {
        return `${key}: append ${a.value} (done ${a.completeMs}) ordered after ${b.value} (started ${b.invokeMs})`;
      }
    }
  }
  for (const r of reads) {
    for (const a of inFinal) {
      const p = pos.get(a.value)!;
      if (a.completeMs !== undefined && a.completeMs < r.invokeMs && p >= r.list.length) {
        return `${key}: read at ${r.invokeMs} misses append ${a.value} acknowledged at ${a.completeMs}`;
      }
      if (p < r.list.length && a.invokeMs > r.completeMs) {
        return `${key}: read done at ${r.completeMs} saw append ${a.value} started at ${a.invokeMs}`;
      }
    }
  }
  const sorted = [...reads].sort((x, y) => x.completeMs - y.completeMs);
  for (const r1 of sorted) {
    for (const r2 of reads) {
      if (r1.completeMs < r2.invokeMs && r1.list.length > r2.list.length) {
        return `${key}: read at ${r2.invokeMs} saw ${r2.list.length} items after a read done at ${r1.completeMs} saw ${r1.list.length}`;
      }
    }
  }
  return undefined;
}
