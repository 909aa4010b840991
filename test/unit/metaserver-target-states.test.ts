// Scenario tests of the chain-state rules: each script is a list of steps `[events, chain after
// the step, chain version after it]`. Events change what the storage servers report and stay in
// force: `B down` (lease lost or medium failed: offline), `B up` (online), `B synced` (up-to-date);
// `tick` changes nothing. Every step then runs one evaluation (stepChain) of the chain.
import { describe, expect, it } from 'vitest';
import {
  checkChain, describeChain, newChain, stepChain, targetAccess, type ChainState, type LocalTargetState,
} from '../../metaserver/target-states.js';

type Step = readonly [events: string, chain: string, version: number];

function play(names: readonly string[], steps: readonly Step[], start: { holding?: readonly string[] } = {}): void {
  const id = (n: string): number => { const i = names.indexOf(n); if (i < 0) throw new Error(`no target ${n}`); return i + 1; };
  const name = (targetId: number): string => names[targetId - 1]!;
  const local = new Map<number, LocalTargetState>();
  for (const n of names) if (!start.holding?.includes(n)) local.set(id(n), 'online');
  let chain: ChainState = newChain(7, names.map(id));
  for (const [events, expected, version] of steps) {
    for (const event of events.split(';').map((e) => e.trim()).filter((e) => e !== 'tick' && e !== '')) {
      const [who, what] = event.split(' ') as [string, string];
      const state: LocalTargetState = what === 'down' ? 'offline' : what === 'up' ? 'online' : what === 'synced' ? 'up-to-date' : (() => { throw new Error(event); })();
      for (const n of who.split(',')) local.set(id(n), state);
    }
    chain = stepChain(chain, local);
    expect(`${events} -> ${describeChain(chain, name)} v${chain.version}`).toBe(`${events} -> ${expected} v${version}`);
  }
}

describe('chain state rules', () => {
  it('a failed target moves to the tail as offline; it comes back waiting, syncs from its predecessor, serves', () => {
    play(['A', 'B', 'C'], [
      ['tick', 'A:serving B:serving C:serving', 1],
      ['B down', 'A:serving C:serving B:offline', 2],
      ['tick', 'A:serving C:serving B:offline', 2], // no change, no new version
      ['B up', 'A:serving C:serving B:waiting', 3],
      ['tick', 'A:serving C:serving B:syncing', 4], // C, the last serving one, fills it
      ['tick', 'A:serving C:serving B:syncing', 4],
      ['B synced', 'A:serving C:serving B:serving', 5],
    ]);
  });

  it('a failed head: the next serving target becomes the head', () => {
    play(['A', 'B', 'C'], [
      ['A down', 'B:serving C:serving A:offline', 2],
      ['A up', 'B:serving C:serving A:waiting', 3],
      ['tick', 'B:serving C:serving A:syncing', 4],
      ['A synced', 'B:serving C:serving A:serving', 5],
    ]);
  });

  it('the last serving target to fail becomes lastsrv and stays in place; nothing syncs until it returns', () => {
    play(['A', 'B', 'C'], [
      ['A,B down', 'C:serving A:offline B:offline', 2], // a double failure: both to the tail, in chain order
      ['C down', 'C:lastsrv A:offline B:offline', 3],
      ['A up', 'C:lastsrv A:waiting B:offline', 4],
      ['tick', 'C:lastsrv A:waiting B:offline', 4], // a lastsrv target fills nobody: it is down
      ['C up', 'C:serving A:syncing B:offline', 5], // it holds the newest data: the others resync from it
      ['B up', 'C:serving A:syncing B:waiting', 6],
      ['A synced', 'C:serving A:serving B:syncing', 7],
      ['B synced', 'C:serving A:serving B:serving', 8],
    ]);
  });

  it('when every serving target fails at once, the head becomes lastsrv', () => {
    play(['A', 'B', 'C'], [
      ['A,B,C down', 'A:lastsrv B:offline C:offline', 2],
      ['B,C up', 'A:lastsrv B:waiting C:waiting', 3],
      ['A up', 'A:serving B:syncing C:waiting', 4], // one target syncs at a time
      ['B synced', 'A:serving B:serving C:syncing', 5],
      ['C synced', 'A:serving B:serving C:serving', 6],
    ]);
  });

  it('a lastsrv target that returns up-to-date serves; one still reported down stays lastsrv', () => {
    play(['A'], [
      ['A down', 'A:lastsrv', 2],
      ['tick', 'A:lastsrv', 2],
      ['A synced', 'A:serving', 3],
      ['A down', 'A:lastsrv', 4],
      ['A up', 'A:serving', 5],
    ]);
  });

  it('a syncing target that fails goes offline; its predecessor failing sends it back to waiting', () => {
    play(['A', 'B', 'C'], [
      ['C down', 'A:serving B:serving C:offline', 2],
      ['C up', 'A:serving B:serving C:waiting', 3],
      ['tick', 'A:serving B:serving C:syncing', 4],
      ['C down', 'A:serving B:serving C:offline', 5],
      ['C up', 'A:serving B:serving C:waiting', 6],
      ['tick', 'A:serving B:serving C:syncing', 7],
      // B was filling C: C must start over from its new predecessor A.
      ['B down', 'A:serving C:waiting B:offline', 8],
      ['tick', 'A:serving C:syncing B:offline', 9],
      ['C synced', 'A:serving C:serving B:offline', 10],
    ]);
  });

  it('a syncing target whose only serving predecessor fails waits for the lastsrv one', () => {
    play(['A', 'B'], [
      ['B down', 'A:serving B:offline', 2],
      ['B up', 'A:serving B:waiting', 3],
      ['tick', 'A:serving B:syncing', 4],
      ['A down', 'A:lastsrv B:waiting', 5],
      ['A up', 'A:serving B:syncing', 6],
    ]);
  });

  it('a returning target that was in the middle rejoins at the tail, behind the one already syncing', () => {
    play(['A', 'B', 'C', 'D'], [
      ['B,C down', 'A:serving D:serving B:offline C:offline', 2],
      ['C up', 'A:serving D:serving C:waiting B:offline', 3], // back ahead of the targets still down
      ['B up', 'A:serving D:serving C:syncing B:waiting', 4],
      ['tick', 'A:serving D:serving C:syncing B:waiting', 4],
      ['C synced', 'A:serving D:serving C:serving B:syncing', 5],
      ['B synced', 'A:serving D:serving C:serving B:serving', 6],
    ]);
  });

  it('a stale up-to-date report does not let a waiting or offline target skip syncing', () => {
    play(['A', 'B'], [
      ['B down', 'A:serving B:offline', 2],
      ['B synced', 'A:serving B:waiting', 3],
      ['tick', 'A:serving B:waiting', 3], // waits until its server reports it online
      ['B up', 'A:serving B:syncing', 4],
    ]);
  });

  it('a target with no news (its node not heard since a manager restart) holds its state', () => {
    play(['A', 'B'], [
      ['tick', 'A:serving B:serving', 1],
      ['A down', 'B:serving A:offline', 2],
    ], { holding: ['B'] });
  });

  it('public states decide what a target answers', () => {
    expect(targetAccess('serving')).toEqual({ read: true, write: true });
    expect(targetAccess('syncing')).toEqual({ read: false, write: true });
    expect(targetAccess('lastsrv')).toEqual({ read: true, write: false });
    expect(targetAccess('waiting')).toEqual({ read: false, write: false });
    expect(targetAccess('offline')).toEqual({ read: false, write: false });
  });

  it('random failures and returns keep every chain well formed (seeded)', () => {
    const seed = 20240611;
    let x = seed;
    const rand = (n: number): number => { x = (Math.imul(x, 1103515245) + 12345) >>> 0; return x % n; };
    const states: LocalTargetState[] = ['offline', 'online', 'up-to-date'];
    for (let run = 0; run < 200; run++) {
      const size = 1 + rand(4);
      let chain = newChain(1, Array.from({ length: size }, (_, i) => i + 1));
      const local = new Map<number, LocalTargetState>();
      for (let step = 0; step < 50; step++) {
        local.set(1 + rand(size), states[rand(3)]!);
        const next = stepChain(chain, local);
        checkChain(next);
        expect([...next.members.map((m) => m.targetId)].sort(), `seed ${seed} run ${run}`).toEqual(chain.members.map((m) => m.targetId).sort());
        expect(next.version - chain.version, `seed ${seed} run ${run}`).toBe(next === chain ? 0 : 1);
        // Data is never lost by the rules: some target is serving or holds the newest copy.
        expect(next.members.some((m) => m.state === 'serving' || m.state === 'lastsrv'), `seed ${seed} run ${run}`).toBe(true);
        chain = next;
      }
    }
  });
});
