//! hakmem — a general-purpose allocator. This file is the library's root: it names every
//! part. Read alloc.zig for the fast paths of malloc and free.
//!
//!   preload.zig   libc names (malloc, free, …) for LD_PRELOAD      ─┐
//!   api.zig       hak_* C ABI for bun:ffi and C (zig/hakmem.h)     ─┴─> alloc.zig
//!   alloc.zig     malloc/free fast paths, tier dispatch, realloc, aligned, calloc
//!   check.zig     check mode: canaries, trailers, freed patterns, misuse reports
//!   foreign.zig   check mode: where a pointer hakmem does not own points (stack, file, …)
//!   heap.zig      a thread's heap: direct page per bin, page queues, slow paths, purge
//!   thread.zig    the calling thread's heap (TLS), heap registry, thread exit
//!   thread_cache.zig  per-thread cache of freed blocks per bin, self-sizing capacity
//!   page.zig      a page: blocks of one size, local and remote (thread_free) free lists
//!   segment.zig   4 MiB aligned segment: header + 64 slices of 64 KiB; pages are spans
//!   segment_map.zig  one byte per 4 MiB chunk: is a pointer ours, and of what kind
//!   arena.zig     segment cache (empty, decaying) and abandoned segments (adoption)
//!   large.zig     large tier: one mapping per block, mapping cache, mremap realloc
//!   large_region.zig regions of 4 MiB chunks that large blocks up to 256 MiB are runs of
//!   large_cache.zig  the mapping cache's limit from recent demand (peak live large bytes)
//!   background.zig  HAKMEM_BACKGROUND=1: a thread that purges idle memory (decay curve)
//!   decay.zig     how fast retained empty memory goes back to the OS (a curve over purge_delay_ms)
//!   size_class.zig  sizes -> classes -> bins (tier x class) -> page geometry
//!   abi.zig       every constant of the ABI (codes, tiers, limits, stats layout); hakmem.h
//!                 and src/abi.ts are generated from it (abi_gen.zig, `zig build abi`)
//!   config.zig    thresholds and settings, HAKMEM_* environment
//!   process.zig   lazy init, thread-exit key, fork handlers, exit summary
//!   stats.zig / report.zig  counters and their readers
//!   os.zig        mmap/munmap/madvise/mremap/clock (raw syscalls, no errno)
//!   lock.zig      the spin lock of the few shared lists
//!
//! Not part of libhakmem.so: kernels.zig, the harness's workload loops, is the root of its
//! own library (libhakmem_kernels.so, build.zig), which calls hak_* through libhakmem.so;
//! the unit tests below compile it with the core.
const std = @import("std");

comptime {
    _ = @import("api.zig");
    _ = @import("preload.zig");
    _ = @import("process.zig");
}

test {
    _ = @import("abi.zig");
    _ = @import("process.zig");
    _ = @import("size_class.zig");
    _ = @import("segment_map.zig");
    _ = @import("page.zig");
    _ = @import("segment.zig");
    _ = @import("config.zig");
    _ = @import("os.zig");
    _ = @import("stats.zig");
    _ = @import("lock.zig");
    _ = @import("alloc.zig");
    _ = @import("slow.zig");
    _ = @import("check.zig");
    _ = @import("foreign.zig");
    _ = @import("thread_cache.zig");
    _ = @import("large_cache.zig");
    _ = @import("large_region.zig");
    _ = @import("decay.zig");
    _ = @import("kernels.zig");
    _ = @import("block.zig");
    _ = @import("heap.zig");
    _ = @import("misuse.zig");
}
