import { describe, expect, it } from 'vitest';
import { TurnBatcher } from '../../client/turn-batcher.js';

function recorder(): { calls: string[]; batcher: TurnBatcher<number, number> } {
  const calls: string[] = [];
  const batcher = new TurnBatcher<number, number>(
    3,
    async (n) => { calls.push(`one ${n}`); return n * 10; },
    async (ns) => {
      calls.push(`many ${ns.join(',')}`);
      if (ns.includes(666)) throw new Error('batch down');
      return ns.map((n) => (n < 0 ? Promise.reject(new Error(`bad ${n}`)) : Promise.resolve(n * 10)));
    },
  );
  return { calls, batcher };
}

describe('turn batcher', () => {
  it('sends a lone call as itself', async () => {
    const { calls, batcher } = recorder();
    expect(await batcher.submit(4)).toBe(40);
    expect(calls).toEqual(['one 4']);
  });

  it('sends the calls of one turn together, at most the limit per batch, answering each in order', async () => {
    const { calls, batcher } = recorder();
    const answers = await Promise.all([1, 2, 3, 4, 5].map((n) => batcher.submit(n)));
    expect(answers).toEqual([10, 20, 30, 40, 50]);
    expect(calls).toEqual(['many 1,2,3', 'many 4,5']);
    // A later turn starts a new batch.
    expect(await batcher.submit(6)).toBe(60);
    expect(calls).toEqual(['many 1,2,3', 'many 4,5', 'one 6']);
  });

  it('fails one item alone, and every item when the whole batch fails', async () => {
    const { batcher } = recorder();
    const settled = await Promise.allSettled([batcher.submit(1), batcher.submit(-2), batcher.submit(3)]);
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    const down = await Promise.allSettled([batcher.submit(666), batcher.submit(7)]);
    expect(down.map((s) => (s.status === 'rejected' ? (s.reason as Error).message : 'ok'))).toEqual(['batch down', 'batch down']);
  });
});
