// test/fuzz/ — randomized API testing of hakmem: a seeded generator of long operation sequences
// (alloc, calloc, realloc across tiers, alignedAlloc 16 B..1 MiB, free, usableSize, live
// routing changes, collect) run through the TypeScript API, with a model of every live block
// that checks the invariants after every step. A failure is a FuzzFailure whose message is
//   FAIL seed=<seed> [threads=<T> phase=<p> thread=<t>] step=<n> op=<op> call=<API call>: <what went wrong>
// and `bun test/fuzz/cli.ts --seed <seed> [--ops N] [--threads T]` replays it. In a threaded
// run, thread t draws from stream t of the seed; the interleaving of threads is not replayed.
//
// Invariants checked
//  * after every step, on the block(s) the step touched: alignment (16 B, and the requested
//    alignment), usableSize >= requested size and stable while the block lives, no overlap of
//    [ptr, ptr + usable) with its neighbours among all live blocks, calloc memory zero;
//  * contents: every block holds a tag-derived pattern over its whole requested size, checked
//    in full before free and realloc (realloc: the preserved prefix), on handoff to another
//    thread, and on a random sample of live blocks every few steps (all of them now and then);
//  * statistics, single thread (runFuzz): after every step, per tier, stats().liveBlocks and
//    liveBytes minus the baseline taken at the start equal the model's count and byte sum.
//    liveBytes counts a block's usable bytes. A plain block (alloc/calloc/realloc) belongs to
//    the tier route(size) gave when it was allocated, for its usable size (a realloc that
//    returns the same pointer with the same usable size keeps the block's tier). An aligned
//    block may be served from a rounded-up or padded request, so its tier and accounted
//    bytes are learned from the stats change of its allocation and checked for plausibility:
//    exactly one tier grew by one block, that tier is route(size)'s or a higher one, and the
//    bytes are in [usable, usable + alignment - 1] (usable counts from the aligned pointer);
//  * statistics, threads (runFuzzThreads): workers run their own seeded sequences at the same
//    time, so per-step global stats mean nothing; at every barrier between phases (all
//    workers idle) the main thread compares the stats with the union of the per-thread
//    models: plain blocks exactly per tier, aligned blocks as totals within the bounds above
//    (each tier's surplus non-negative, the aligned count per tier consistent with their
//    lowest possible tiers), plus no overlap among all threads' live blocks. The main thread
//    changes the thresholds between phases, and every third phase also while the workers
//    run (every millisecond): blocks allocated then have an unknown tier (their bytes are
//    still exact for plain blocks);
//  * a block freed twice in a row is rejected (RangeError) the second time;
//  * in check mode (set before the first allocation, e.g. cli.ts --check): the same, with
//    stats bytes as lower bounds (usable sizes are then the requested sizes) and no
//    deliberate double free; any check-mode report aborts the process (a false positive);
//  * at the end, everything freed: live blocks and bytes per tier are back at the baseline.
//
// One idea per file:
//   rng.ts       the seeded PRNG (streams: one per thread)
//   contents.ts  the pattern a live block holds, and the check that finds a changed byte
//   model.ts     one thread's live blocks: totals per tier, overlap index
//   compare.ts   the statistics invariant: hakmem.stats() against the model's totals
//   failure.ts   the replayable FAIL line
//   options.ts   what a run is asked (FuzzOptions, defaults) and reports (FuzzReport)
//   sequence.ts  one thread's random steps and their checks
//   single.ts    the single-thread runner (every invariant after every step)
//   phase.ts     a worker's phase of a threaded run (a src/threads.ts module task)
//   threads.ts   the threaded runner (phases, barriers, handoffs between workers)
//   cli.ts       `bun test/fuzz/cli.ts` (`npm run fuzz --`): long runs, replays
// test/fuzz.test.ts runs a few seeds of each kind; test/soak.ts runs slices in a loop.
export { FuzzFailure } from "./failure.ts";
export type { FuzzOptions, FuzzReport } from "./options.ts";
export { runFuzz } from "./single.ts";
export { runFuzzThreads, type ThreadFuzzOptions } from "./threads.ts";
