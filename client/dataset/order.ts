// The order a dataset loader visits samples in: a permutation per epoch drawn from (seed, epoch),
// dealt out to ranks so that every sample goes to exactly one rank per epoch. Pure: the same
// (samples, seed, epoch, rank, worldSize) always gives the same list, on any machine.
import { assert } from '../../common/errors.js';

/** A 32-bit mix of (seed, epoch) into a PRNG state (splitmix32-style finaliser). */
function mix(a: number, b: number): number {
  let h = (Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(b + 0x7f4a7c15, 0xc2b2ae35)) >>> 0;
  h ^= h >>> 16; h = Math.imul(h, 0x7feb352d) >>> 0;
  h ^= h >>> 15; h = Math.imul(h, 0x846ca68b) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}

/** xoshiro128** over four 32-bit words: fast, and good enough for shuffling. */
export class SeededRandom {
  private s0: number; private s1: number; private s2: number; private s3: number;

  constructor(seed: number, stream = 0) {
    this.s0 = mix(seed, stream); this.s1 = mix(this.s0, 1); this.s2 = mix(this.s1, 2); this.s3 = mix(this.s2, 3);
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  nextU32(): number {
    const r = Math.imul(rotl(Math.imul(this.s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.s1 << 9) >>> 0;
    this.s2 ^= this.s0; this.s3 ^= this.s1; this.s1 ^= this.s2; this.s0 ^= this.s3;
    this.s2 = (this.s2 ^ t) >>> 0; this.s3 = rotl(this.s3, 11);
    return r;
  }

  /** Uniform in [0, n) for n ≤ 2^32, without modulo bias (Lemire's method with rejection). */
  below(n: number): number {
    assert(n >= 1 && n <= 2 ** 32, 'range of below()');
    if (n <= 2 ** 21) {
      // 32 × 21 bits stays exact in a double.
      const threshold = (2 ** 32 - n) % n;
      for (;;) {
        const x = this.nextU32();
        const m = x * n;
        const low = m % 2 ** 32;
        if (low >= threshold) return Math.floor(m / 2 ** 32);
      }
    }
    // Larger ranges: 53 random bits.
    const r = (this.nextU32() >>> 5) * 2 ** 26 + (this.nextU32() >>> 6);
    return Math.floor((r / 2 ** 53) * n);
  }
}

function rotl(x: number, k: number): number { return ((x << k) | (x >>> (32 - k))) >>> 0; }

/** The permutation of [0, n) for one epoch (Fisher–Yates), or identity order when not shuffling. */
export function epochPermutation(n: number, seed: number, epoch: number, shuffle = true): Uint32Array {
  assert(Number.isSafeInteger(n) && n >= 0 && n < 2 ** 32, 'sample count');
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  if (!shuffle) return p;
  const rnd = new SeededRandom(seed, epoch);
  for (let i = n - 1; i > 0; i--) {
    const j = rnd.below(i + 1);
    const t = p[i]!; p[i] = p[j]!; p[j] = t;
  }
  return p;
}

/**
 * The samples of `rank` in one epoch: positions rank, rank + worldSize, … of the epoch's
 * permutation. Over all ranks every sample appears exactly once; counts differ by at most one.
 */
export function rankOrder(n: number, o: { seed: number; epoch: number; rank: number; worldSize: number; shuffle?: boolean }): Uint32Array {
  const perm = epochPermutation(n, o.seed, o.epoch, o.shuffle ?? true);
  const count = n > o.rank ? Math.ceil((n - o.rank) / o.worldSize) : 0;
  const out = new Uint32Array(count);
  for (let k = 0, pos = o.rank; k < count; k++, pos += o.worldSize) out[k] = perm[pos]!;
  return out;
}
