// handoff.ts — a user workload module for src/threads.ts: one thread allocates blocks and
// hands their addresses back; another thread frees them (cross-thread, "remote" frees).
// Each function receives the hakmem API, its args, and { thread, threads }.
import type * as Hakmem from "../index.ts";

type Api = typeof Hakmem;

/** Allocates `count` blocks cycling through `sizes`, writes a tag byte in each, returns them. */
export function allocate(api: Api, args: { count: number; sizes: number[] }, ctx: { thread: number }) {
  const pointers: number[] = [];
  for (let i = 0; i < args.count; i++) {
    const p = api.alloc(args.sizes[i % args.sizes.length]);
    api.view(p, 1)[0] = ctx.thread;
    pointers.push(p);
  }
  return { ops: args.count, value: pointers };
}

/** Frees every pointer given (allocated by another thread); returns how many. */
export function release(api: Api, args: { pointers: number[] }) {
  for (const p of args.pointers) api.free(p);
  return args.pointers.length;
}

/** Gives this thread's cached blocks back to their pages (remote frees are counted then). */
export function settle(api: Api) {
  api.collect(true);
  return 0;
}
