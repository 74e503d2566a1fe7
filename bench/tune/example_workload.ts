// example_workload.ts — a TypeScript workload module for `bun run tune`, run on every
// thread of a ThreadPool: a buffer pool that allocates, fills and frees blocks of 16 B to
// 64 KiB through the hakmem API (a mix that crosses the tiny/mid thresholds), then the
// native random-mixed kernel. Returns the number of operations.
//   bun run tune -- bench/tune/example_workload.ts --threads 2 --module-args '{"rounds":20000}'
import type * as Hakmem from "../../src/index.ts";

interface Args {
  rounds?: number;
  live?: number;
  seed?: number;
}

export default function bufferPool(api: typeof Hakmem, args: Args = {}, ctx: { thread: number }): number {
  const rounds = args.rounds ?? 20_000;
  const slots: number[] = new Array(args.live ?? 256).fill(0);
  let x = ((args.seed ?? 1) + ctx.thread * 7919) >>> 0 || 1;
  const next = () => (x = (Math.imul(x, 1664525) + 1013904223) >>> 0);
  for (let i = 0; i < rounds; i++) {
    const slot = next() % slots.length;
    if (slots[slot]) api.free(slots[slot]);
    const size = 16 << (next() % 13); // 16 B .. 64 KiB
    slots[slot] = api.alloc(size);
    api.view(slots[slot], 1)[0] = i & 0xff;
  }
  for (const p of slots) if (p) api.free(p);
  api.kernels.randomMixed({ cycles: rounds * 10, ws: 400, min: 16, max: 4096, seed: ctx.thread + 1 });
  return rounds * 11;
}
