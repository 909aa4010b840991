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

/**
 * Like forEachParallel, and the tasks in flight also keep the sum of their `cost` (bytes, say)
 * within `costMax`; one task always runs, whatever its cost. Tasks start in index order.
 */
export async function forEachWithinBudget(
  count: number,
  bound: { readonly limit: number; readonly costMax: number; readonly cost: (index: number) => number },
  fn: (index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  let inflight = 0;
  let spent = 0;
  let failed = false;
  await new Promise<void>((resolve, reject) => {
    const pump = (): void => {
      while (!failed && next < count && inflight < bound.limit && (inflight === 0 || spent + bound.cost(next) <= bound.costMax)) {
        const k = next++;
        const c = bound.cost(k);
        inflight++;
        spent += c;
        fn(k).then(() => {
          inflight--;
          spent -= c;
          pump();
        }, (err: unknown) => {
          if (!failed) { failed = true; reject(err); }
        });
      }
      if (!failed && next >= count && inflight === 0) resolve();
    };
    pump();
  });
}
