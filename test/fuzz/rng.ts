// rng.ts — the fuzzer's seeded PRNG: xoshiro128**, seeded through splitmix32, with
// independent streams for one seed (one per thread), so a run replays from its seed.

export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  /** `stream` gives independent sequences for one seed (e.g. one per thread). */
  constructor(seed: number, stream = 0) {
    let x = (seed >>> 0) ^ Math.imul(Math.floor(seed / 2 ** 32) >>> 0, 0x9e3779b9) ^ Math.imul(stream, 0x27d4eb2f);
    const next = () => {
      x = (x + 0x9e3779b9) | 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next() | 1;
  }

  /** A uniform 32-bit unsigned integer. */
  next(): number {
    const result = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return result;
  }

  float(): number {
    return this.next() / 2 ** 32;
  }

  /** An integer in [0, n). */
  below(n: number): number {
    return Math.floor(this.float() * n);
  }

  /** An integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.below(hi - lo + 1);
  }

  /** An integer in [lo, hi], log-uniformly distributed (small values as likely as big ones). */
  logRange(lo: number, hi: number): number {
    if (hi <= lo) return lo;
    const l = Math.log(lo + 1);
    const h = Math.log(hi + 1);
    return Math.min(hi, Math.max(lo, Math.floor(Math.exp(l + this.float() * (h - l)) - 1)));
  }

  chance(p: number): boolean {
    return this.float() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)];
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
