// Bounded parallelism: run fn(0) … fn(count − 1) with at most `limit` of them in flight, each
// index taken once; resolves when all are done, rejects with the first failure (the others that
// already started run to their end, no new ones start).
export async function forEachParallel(count: number, limit: number, fn: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const lane = async (): Promise<void> => {
    while (!failed && next < count) {
      const k = next++;
      try { await fn(k); } catch (err) { failed = true; throw err; }
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(0, limit), count) }, lane));
}
