//! hakmem — a general-purpose allocator. This file is the library's root: it names every
//! part, draws the data structures, says who may write what, and fixes the layering (a
//! test below checks every @import against it). Read alloc.zig for the fast paths of
//! malloc and free (free's tests: free_fast.zig), slow.zig for everything below them.
//!
//! ─── The picture ──────────────────────────────────────────────────────────────────────
//!
//!   thread ──TLS──> Heap (heap.zig; one per thread that allocated or freed; never unmapped;
//!                    at thread exit it gives its pages up and waits for the next thread)
//!                    │
//!                    ├─ cache: per bin an array stack of free block pointers (thread_cache.zig)
//!                    │    malloc pops, free pushes — any thread's blocks; refilled from one
//!                    │    page, flushed (oldest half) back to their pages in runs
//!                    ├─ direct[bin] ─> the page that refills the bin now
//!                    ├─ queues[bin]:  page <-> page   the pages this heap holds (the direct
//!                    │                                page is one of them)
//!                    └─ large_local:  up to 4 region blocks this thread freed lately (large_local.zig)
//!
//!   a bin = (tier, size class): tiny bins 0..55, mid bins 56..167 (size_class.zig); u8
//!
//!   Segment (segment.zig): 4 MiB, 4 MiB aligned, shared by every heap (arena.zig)
//!   ┌──────────────────────┬─────────┬─────────┬──────────────────┬─────┐
//!   │ slice 0: header,     │ slice 1 │ slice 2 │ slices 3..6      │ ... │  64 slices of 64 KiB:
//!   │ 64 page descriptors, │ heap A's│ heap B's│ one mid page     │     │  slice 0 the header,
//!   │ block bitmaps        │ page    │ page    │ (a span of 4)    │     │  63 for pages
//!   └──────────────────────┴─────────┴─────────┴──────────────────┴─────┘
//!   Page (page.zig): a span of 1..16 slices cut into blocks of one size, held by one heap
//!     or by nobody (abandoned); its free blocks are bits (one per block), blocks given back
//!     by threads that do not hold it a list (thread_free, whose low bit says "held")
//!   Block (block.zig): word 0 a link (on thread_free only, encoded), word 1 the key
//!     (free_key while free, 0 while handed out)
//!
//!   Arena (arena.zig): every segment, one list, one lock: where a page's span is placed
//!     (the run with the most resident slices) and goes back (dirty), dirty slices purged
//!     and empty segments unmapped along the decay curve (decay.zig)
//!   Abandoned pages (abandoned.zig): per bin, the pages no heap holds that have room (given
//!     up at a thread's exit, or listed by a thread whose free took one): a heap that needs
//!     a page of the bin takes one before it places a new one
//!   Large (large.zig): blocks above mid_max, each with a header before it (large_header.zig).
//!     Up to 256 MiB: a run of 64 KiB units in a reserved 1 GiB region (large_region.zig;
//!     freed runs coalesce and stay resident, purged oldest first along the decay curve; a
//!     new block's units without pages take those of free resident units elsewhere, and a
//!     block realloc moves takes its own along, by mremap: large_move.zig);
//!     larger, or aligned to more than 64 KiB: a mapping of its own (4 MiB aligned; freed
//!     mappings wait in a cache: large_mappings.zig; realloc by mremap: large_resize.zig).
//!     Both keep at most the limit large_cache.zig sizes from recent demand.
//!   segment_map.zig: one byte per 4 MiB of address space: none, segment, large head/tail,
//!     large region
//!
//! ─── Following malloc and free ────────────────────────────────────────────────────────
//!
//!   malloc   preload.zig malloc, api.zig hak_alloc
//!     alloc.zig   mallocFrom: routing.fastRoute (one table load), the bin's stack: pop   [fast]
//!                 mallocSlow: check mode -> check.zig; else slow.zig mallocWith: routing.bin
//!                 (traced, HAKMEM_TRACE: the cache is the sentinel as in check mode, so every
//!                 libc call reaches its slow path, which records it: trace.zig)
//!     heap.zig    allocSlow -> findPage: the direct page, its queue (a page found full is
//!                 given up), an abandoned page of the bin (abandoned.take), a new span
//!                 (arena.placePage) -> the page's free bits refill the stack (thread_cache
//!                 refillAndPop, page.popMany)
//!                 (above mid_max: slow.zig mallocLarge -> large.zig alloc)
//!   free     preload.zig free, api.zig hak_free
//!     free_fast.zig  freeFast, every test in this one file: segment_map tag, the
//!                 slice's fast block test: push (hak_free: the key too)           [fast]
//!     alloc.zig   freeOther: check mode -> check.zig; else slow.zig free -> page.blockOf
//!                 -> freeBlock: looks freed? search (a double free?); else push
//!     heap.zig    freeFull: thread_cache overflow -> flush runs to their pages (a page this
//!                 heap holds: page.pushFree, its bit; any other: page.pushRemoteChain,
//!                 which may take a page nobody held: settleClaimed) -> a page that empties
//!                 goes back (arena.releasePage); freeToPage: one block
//!                 (not in a segment: slow.zig -> large.zig free)
//!
//! ─── Who writes what ──────────────────────────────────────────────────────────────────
//!
//!   Heap: every field is its owner thread's (plain loads and stores), except
//!     - registry_next/prev: under thread.registry_lock; exited_next: under exited_lock
//!     - read by other threads, never written: cache stacks (a double-free search:
//!       monotonic loads, may be stale, never unmapped), event counters (stats readers)
//!   Page ownership: the thread that holds the page (page.zig: thread_free's owned bit set
//!     by its placement, a take from the abandoned lists, or the one push that found the bit
//!     clear) writes its owner-only fields; `owner` (atomic) is the heap whose queues hold
//!     it, null while nobody's or between a take and what the taker makes of it; a heap
//!     stores null before it clears the bit (tryUnown, release)
//!   Page, first cache line (start, div/fast magic, carved_end, bin, span, flags, block_size,
//!     capacity): written by the holder (extend, init under the arena's lock), and flags
//!     (setFlags/clearFlags: atomic read-modify-writes) by any thread that hands out an
//!     aligned block of the page (one it popped from its cache may be another heap's),
//!     copied into every slice of the span, read by free on any thread (plain loads: a
//!     block was carved before it was handed out, so its reader sees it)
//!   Page, the holder only: used, free_count, free_cursor, bits (other threads may load a
//!     word, monotonic: a double-free check), origin, empty_since_ms; next/prev: the
//!     owner heap's queue, or the abandoned list (under its lock, while `listed`)
//!   Page.thread_free: atomic; any thread pushes a chain with one CAS (acq_rel), the holder
//!     takes it whole with one swap (acquire) in collect, and clears the owned bit with a
//!     CAS (release) when nothing waits on it
//!   Segment: everything but its page descriptors: under arena.lock (slice masks, counts,
//!     list links, purging_slices); a descriptor of a free slice: arena.lock too
//!   Heap.large_local: its owner thread only (plain); a held block's header magic: atomic
//!   (free's CAS from live, so two racing frees cannot both hold it)
//!   Large header: written by the thread that allocates, resizes or frees the block; the
//!     mapping cache's entries, cached_bytes and recent_peak: under large_mappings'
//!     cache_lock; a region's unit maps (free, writable, resident, owner, edges) and
//!     large_move's edge count: under large_region's lock; the ring of blocks given back lately (large_recent.zig): atomic
//!     slots, no lock
//!   segment_map tags: atomic bytes (release stores when mapping/unmapping, monotonic loads)
//!   routing's thresholds and tables: atomic stores (release) by hak_set_thresholds (and
//!     once at init, from HAKMEM_TINY_MAX/MID_MAX), plain loads on malloc's fast path;
//!     every setting of config.zig: written once, at init
//!   stats: atomic counters, or the owner heap's plain counters read with monotonic loads
//!
//! ─── Lock order ────────────────────────────────────────────────────────────────────────
//!
//!   Every lock is a leaf: arena.lock, abandoned.lock, thread.registry_lock,
//!   heap.exited_lock, large_mappings' cache_lock, large_region's lock and profile's lock
//!   are each taken alone (profile's never across backtrace(), which may call malloc).
//!   None is held across a system call except large_region's (a unit's mprotect, a purge,
//!   a move of pages): the arena maps and unmaps segments and purges slices with its lock
//!   released (a purge's slices are taken out of the free set meanwhile). fork
//!   (process.zig) takes registry_lock, exited_lock, arena.lock, abandoned.lock,
//!   large_mappings' cache_lock, large_region's lock (these two through large.zig's hooks),
//!   profile's and guard's lock, in that order, and resets them in the child. Only slow
//!   paths take a lock; malloc's and free's fast paths take none and use no atomic.
//!
//! ─── A block's life ────────────────────────────────────────────────────────────────────
//!
//!   carved (Page.extend: bit set, key = free_key)                       free on its page
//!     -> refill: Page.popMany clears bits, used += n                  -> in a thread cache
//!     -> malloc pops it if keyed free (else: a double free's copy,
//!        dropped and reported): key = 0                              -> live (the program's)
//!     -> free: key = free_key, pushed on the freeing thread's cache  -> in a thread cache
//!        (free(3) loads nothing of the block: a second copy is found
//!        where it leaves the cache: pop, flush, collect, refill)
//!     -> flush (cache full, maintenance, thread exit), in runs of one page:
//!          a page the heap holds: Page.pushFree sets its bit (set already: a double free)
//!          any other page: thread_free (one CAS per run); its holder's collect sets the
//!          bits (a bit set already: a double free); a page nobody held is the flushing
//!          thread's then (heap.settleClaimed)                         -> free on its page
//!     -> a page with used == 0 goes back to its segment (its slices dirty: still resident)
//!     -> dirty slices are purged along the decay curve (MADV_DONTNEED); an empty segment
//!        is unmapped along the same curve
//!   A page's life: placed for a heap (arena.placePage) -> refills its bins' stacks ->
//!     found full: given up (nobody's) -> the first free into it takes it: back to its
//!     segment when that emptied it, into the queue of the heap that gave it up, or listed
//!     (abandoned.zig) for any heap of its bin -> taken by a heap that needs the bin ...
//!     At a thread's exit every page is given up (listed when it has room).
//!   Bins without a cache (blocks above 256 KiB, and every bin in check mode) skip the
//!   thread cache: a block comes straight off its page and goes straight back to it (in
//!   check mode after the quarantine, and mostly it is handed out again before that:
//!   check_reuse.zig).
//!   A large block in a region: a run of units (resident ones reused first; its units
//!   without pages given those of free resident units elsewhere) -> live (realloc: grown in
//!   place, else moved with its pages) -> freed: its units free, coalesced with their
//!   neighbours, resident until purged or their pages move to a new block (its address
//!   remembered then: a second free is a double free, not a foreign pointer).
//!   A region block of at most 48 MiB freed by a thread first waits in that thread's
//!   large_local (header magic "held": a second free is a double free) -> taken back by a
//!   malloc of the same units, else back to its region (a miss, maintenance, thread exit).
//!   A large block of its own mapping: mapped (or a cached mapping reused) -> live ->
//!   freed: cached -> reused, trimmed or grown for another block, or unmapped (remembered).
//!
//! ─── The files, by layer ───────────────────────────────────────────────────────────────
//!
//! A file imports only files of lower layers, or of its own layer listed before it
//! (`layers` below; the test "every import goes down the layers" checks it).
//! Each layer is a folder of zig/ (`folders` below; the test "every file of zig/ has its
//! place in the layers" checks it); lib.zig and abi.zig (listed with base) stay in zig/
//! itself, the tools are in zig/tools/.
//!
//!  exports/    api.zig       hak_* C ABI for bun:ffi and C (zig/hakmem.h)
//!              preload.zig   libc names (malloc, free, …) for LD_PRELOAD and linking
//!  calls/      slow.zig      the allocator below its fast paths: a thread's heap, malloc
//!                            by route (a bin's page or a large block), aligned blocks,
//!                            the one general free (any page, thread, tier), classify
//!              check_live.zig  check mode's table of live large blocks (sharded, with call sites)
//!              check_pattern.zig  check mode: which bytes of a freed block hold the freed
//!                            pattern, and which each verification reads
//!              check_redzone.zig  check mode: a live block's redzones (header, canary,
//!                            trailer): written when it is handed out, read back
//!              check_sites.zig  check mode: the call sites of allocations and frees
//!                            (return addresses, HAKMEM_CHECK_STACKS backtraces), symbolized
//!              check_side.zig  check mode: each page block's record beside it (live or
//!                            freed, its call sites), in a side table per segment
//!              check_reuse.zig  check mode: per thread, stacks of the blocks it let go
//!                            from the quarantine, handed out again by its next mallocs
//!              check.zig     check mode: malloc and free, the quarantine, the sweep,
//!                            zero-size blocks, reports (on slow.zig)
//!              free_fast.zig  free's fast path, whole: its four tests and the push, in order
//!              alloc.zig     malloc/free fast paths, and every call's way in (check mode or
//!                            slow.zig); calloc, realloc and its growth log, queries
//!  process/    background.zig  HAKMEM_BACKGROUND=1: a thread that purges idle memory
//!              memory_report.zig  where the memory goes: hak_memory_report, the summary's
//!                            memory lines (counters, a walk of the heaps, mincore)
//!              report.zig    the statistics array and the exit summary
//!              trace.zig     HAKMEM_TRACE: every allocation call recorded (per-thread
//!                            buffers, an address -> object id table), for replays
//!              process.zig   lazy init, fork handlers, the exit summary's destination
//!  thread/     thread_cache.zig  per-thread cache of free blocks per bin: stacks, refill,
//!                            flush, overflow, idle maintenance, self-sizing capacity
//!              purge.zig     empty memory back to the OS along the decay curve (the
//!                            segments' dirty slices and empty segments, the large tier's)
//!              growth.zig    realloc's growth log: a block grown again gets room to spare
//!              heap.zig      a thread's heap: pages per bin, page finding (malloc's slow
//!                            path), free's slow path, pages given up and taken, maintenance,
//!                            thread exit
//!              validate.zig  the checked library's run-time invariant checks (slow paths,
//!                            thread exit) and hak_validate
//!              thread.zig    the calling thread's heap (TLS), heap registry, exit key
//!  memory/     page.zig      a page: bitmap of free blocks, remote-free list (thread_free),
//!                            who holds it (the owned bit, owner)
//!              profile.zig   HAKMEM_PROFILE: the sampled heap profiler (a byte countdown
//!                            charged at refills and large allocations; flag_sampled pages)
//!              segment.zig   a segment: header, page descriptors, spans of slices
//!              large_units.zig  a large region's unit maps (in a block, writable, resident,
//!                            owner, free time, mapping edges): bit ranges and runs
//!              large_move.zig  pages moved between units by mremap instead of faulted
//!                            (a new block's empty units, a block realloc moves); the
//!                            mappings moves make, bounded and healed
//!              large_region.zig  regions of 64 KiB units that large blocks up to 256 MiB
//!                            are runs of
//!              large_header.zig  the header before every large block and its states (magic)
//!              large_recent.zig  the large blocks given back lately (a second free of one
//!                            is a double free)
//!              large_resize.zig  realloc of a large block without a copy: region units
//!                            (in place, or the block moved with its pages), or a mapping
//!                            by mremap
//!              large_mappings.zig  the cache of freed mappings of their own and its decay;
//!                            the large tier's retention limit from recent demand
//!              large.zig     the large tier's entry points: where a block goes (region
//!                            units or a mapping), free, lookup, decay, fork hooks
//!              large_local.zig  a thread's cache of the region blocks it freed lately, and
//!                            the hand-over of a block to and from it
//!              arena.zig     every segment: placing and releasing pages' spans, purging
//!                            dirty slices, unmapping empty segments (one lock)
//!              abandoned.zig  the pages no heap holds that have room, per bin
//!              guard.zig     guarded sampling (a sampled block against a guard page, freed
//!                            into a protected slot) and the fault handler that reports it
//!  settings/   size_class.zig  sizes -> classes -> bins (tier x class) -> page geometry
//!              routing.zig   the thresholds and malloc's routing tables (read on its fast path)
//!              config.zig    every HAKMEM_* setting: defaults, limits, parsing, warnings
//!              misuse.zig    every report of misuse or corruption, and what follows it
//!              stats.zig     counters
//!              budget.zig    HAKMEM_MEMORY_LIMIT_MB (claims where memory is mapped) and the
//!                            cgroup v2 limits (memory.current polled at maintenance ticks)
//!  base/       abi.zig       every constant of the ABI; hakmem.h and src/abi.ts are
//!                            generated from it (abi_gen.zig, `zig build abi`)
//!              os.zig        mmap/munmap/madvise/mremap/clock (raw syscalls, no errno)
//!              lock.zig      the spin lock of the few shared lists
//!              segment_map.zig  one byte per 4 MiB chunk: is a pointer ours, and of what kind
//!              block.zig     what a free block holds: encoded link, key; the secrets
//!              decay.zig     how fast retained empty memory goes back (a curve over purge_delay_ms)
//!              large_cache.zig  the large cache's limit from recent demand
//!              foreign.zig   check mode: where a pointer hakmem does not own points
//!              libc_next.zig  the next allocator (dlsym RTLD_NEXT), for foreign pointers
//!              pprof.zig     the pprof profile.proto writer (hand-encoded protobuf)
//!              scan.zig      check mode: does a range hold one byte value (vector loads)
//!
//! Not part of libhakmem.so: tools/kernels.zig, the harness's workload loops, is the root of its
//! own library (libhakmem_kernels.so, build.zig), which calls hak_* through libhakmem.so;
//! tools/abi_gen.zig is a build tool. Both import nothing of the allocator but abi.zig.
const std = @import("std");

comptime {
    _ = @import("exports/api.zig");
    _ = @import("exports/preload.zig");
    _ = @import("process/process.zig");
}

/// The layers, lowest first; in each, the order in which a file may import the ones
/// before it. Every .zig file of zig/ is in exactly one (tools: the last), in its folder (`folders`).
const layers = [_][]const []const u8{
    &.{ "abi", "os", "lock", "segment_map", "block", "decay", "large_cache", "foreign", "libc_next", "pprof", "scan" },
    &.{ "size_class", "routing", "config", "misuse", "stats", "budget" },
    &.{ "page", "profile", "segment", "large_units", "large_move", "large_region", "large_header", "large_recent", "large_resize", "large_mappings", "large", "large_local", "arena", "abandoned", "guard" },
    &.{ "thread_cache", "purge", "growth", "heap", "validate", "thread" },
    &.{ "background", "memory_report", "report", "trace", "process" },
    &.{ "slow", "check_live", "check_pattern", "check_redzone", "check_sites", "check_side", "check_reuse", "check", "free_fast", "alloc" },
    &.{ "api", "preload" },
};
/// Tools built beside the library: they may import abi.zig only.
const tools = [_][]const u8{ "kernels", "abi_gen" };
/// The folder of zig/ that holds each layer's files, parallel to `layers` (the test "every
/// file of zig/ has its place in the layers" checks it); the files of `at_top` stay in
/// zig/ itself.
const folders = [_][]const u8{ "base", "settings", "memory", "thread", "process", "calls", "exports" };
/// Files in zig/ itself: the library's root, and the ABI's constants (the tools import them too).
const at_top = [_][]const u8{ "lib", "abi" };
/// The folder of `tools`.
const tools_folder = "tools";
comptime {
    std.debug.assert(folders.len == layers.len);
}

test {
    _ = @import("abi.zig");
    _ = @import("process/process.zig");
    _ = @import("settings/size_class.zig");
    _ = @import("base/segment_map.zig");
    _ = @import("memory/page.zig");
    _ = @import("memory/segment.zig");
    _ = @import("settings/routing.zig");
    _ = @import("settings/config.zig");
    _ = @import("base/os.zig");
    _ = @import("settings/stats.zig");
    _ = @import("base/lock.zig");
    _ = @import("calls/alloc.zig");
    _ = @import("calls/slow.zig");
    _ = @import("calls/check.zig");
    _ = @import("calls/free_fast.zig");
    _ = @import("calls/check_live.zig");
    _ = @import("calls/check_pattern.zig");
    _ = @import("calls/check_sites.zig");
    _ = @import("calls/check_redzone.zig");
    _ = @import("calls/check_side.zig");
    _ = @import("calls/check_reuse.zig");
    _ = @import("base/foreign.zig");
    _ = @import("thread/thread_cache.zig");
    _ = @import("base/large_cache.zig");
    _ = @import("base/decay.zig");
    _ = @import("tools/kernels.zig");
    _ = @import("base/block.zig");
    _ = @import("thread/heap.zig");
    _ = @import("settings/misuse.zig");
    _ = @import("memory/large_units.zig");
    _ = @import("memory/large_move.zig");
    _ = @import("memory/large_region.zig");
    _ = @import("memory/large_header.zig");
    _ = @import("memory/large_recent.zig");
    _ = @import("memory/large_resize.zig");
    _ = @import("memory/large_mappings.zig");
    _ = @import("memory/large.zig");
    _ = @import("memory/large_local.zig");
    _ = @import("memory/arena.zig");
    _ = @import("thread/thread.zig");
    _ = @import("memory/abandoned.zig");
    _ = @import("thread/purge.zig");
    _ = @import("thread/growth.zig");
    _ = @import("memory/guard.zig");
    _ = @import("process/trace.zig");
    _ = @import("thread/validate.zig");
    _ = @import("settings/budget.zig");
    _ = @import("process/memory_report.zig");
    _ = @import("memory/profile.zig");
    _ = @import("base/pprof.zig");
    _ = @import("base/scan.zig");
}

/// Position of a file in the layering: (layer, index in it); tools are past every layer.
fn rank(name: []const u8) ?struct { layer: usize, index: usize } {
    std.debug.assert(name.len > 0); // a file's name without ".zig"
    std.debug.assert(!std.mem.endsWith(u8, name, ".zig"));
    for (layers, 0..) |layer, l| {
        for (layer, 0..) |file, i| if (std.mem.eql(u8, file, name)) return .{ .layer = l, .index = i };
    }
    for (tools) |file| if (std.mem.eql(u8, file, name)) return .{ .layer = layers.len, .index = 0 };
    if (std.mem.eql(u8, name, "lib")) return .{ .layer = layers.len + 1, .index = 0 };
    return null;
}

/// Where lib.zig places a file, as a path from zig/: its layer's folder (`folders`; a
/// tool: `tools_folder`), or zig/ itself (`at_top`). Called at comptime only.
fn path(comptime name: []const u8) []const u8 {
    @setEvalBranchQuota(100_000);
    for (at_top) |top| {
        if (std.mem.eql(u8, top, name)) return name ++ ".zig";
    }
    const me = rank(name) orelse @compileError(name ++ " is in no layer of lib.zig");
    std.debug.assert(me.layer <= layers.len); // a layer's, or a tool (lib.zig is at_top)
    const folder = if (me.layer < layers.len) folders[me.layer] else tools_folder;
    return folder ++ "/" ++ name ++ ".zig";
}

/// The file lib.zig places at `file_path` (a path from zig/), or null.
fn placedAt(file_path: []const u8) ?[]const u8 {
    std.debug.assert(!std.fs.path.isAbsolute(file_path)); // a path from zig/
    inline for (layers ++ .{ &tools, &[_][]const u8{"lib"} }) |group| {
        inline for (group) |name| {
            if (std.mem.eql(u8, comptime path(name), file_path)) return name;
        }
    }
    return null;
}

/// An @import's `relative` path, from the file at `from` (a path from zig/), as a path from
/// zig/; null when it leaves zig/ or does not fit in `buffer`.
fn resolve(buffer: []u8, from: []const u8, relative: []const u8) ?[]const u8 {
    std.debug.assert(std.mem.endsWith(u8, from, ".zig")); // a file of zig/,
    std.debug.assert(!std.fs.path.isAbsolute(from)); // named from zig/
    var dir: []const u8 = std.fs.path.dirname(from) orelse "";
    var rest = relative;
    while (true) { // bounded: each turn takes 2 or 3 bytes off rest
        if (std.mem.startsWith(u8, rest, "./")) {
            rest = rest[2..];
        } else if (std.mem.startsWith(u8, rest, "../")) {
            if (dir.len == 0) return null;
            dir = std.fs.path.dirname(dir) orelse "";
            rest = rest[3..];
        } else break;
    }
    if (dir.len == 0) return rest;
    return std.fmt.bufPrint(buffer, "{s}/{s}", .{ dir, rest }) catch null;
}

fn source(comptime name: []const u8) []const u8 {
    return @embedFile(comptime path(name));
}

test "every import goes down the layers" {
    @setEvalBranchQuota(1_000_000);
    var checked: usize = 0;
    inline for (layers ++ .{ &tools, &[_][]const u8{"lib"} }) |layer| {
        inline for (layer) |name| {
            const me = rank(name).?;
            const my_path = comptime path(name);
            const text = source(name);
            var rest: []const u8 = text;
            while (std.mem.indexOf(u8, rest, "@import(\"")) |at| {
                rest = rest[at + "@import(\"".len ..];
                const end = std.mem.indexOfScalar(u8, rest, '"').?;
                const target = rest[0..end];
                rest = rest[end..];
                if (!std.mem.endsWith(u8, target, ".zig")) continue; // std, build_options
                var buffer: [256]u8 = undefined;
                const target_path = resolve(&buffer, my_path, target) orelse "";
                const them_name = placedAt(target_path) orelse {
                    std.debug.print("zig/{s} imports {s} (zig/{s}), which is in no layer of lib.zig or not in its layer's folder\n", .{ my_path, target, target_path });
                    return error.UnknownFile;
                };
                const them = rank(them_name).?;
                const is_tool = me.layer == layers.len;
                const down = if (me.layer > layers.len) true else if (is_tool) std.mem.eql(u8, them_name, "abi") else them.layer < me.layer or (them.layer == me.layer and them.index < me.index);
                if (!down) {
                    std.debug.print("zig/{s} imports {s}, which is not below it (lib.zig: layers)\n", .{ my_path, target });
                    return error.ImportGoesUp;
                }
                checked += 1;
            }
        }
    }
    try std.testing.expect(checked > 100);
}

test "every file of zig/ has its place in the layers" {
    @setEvalBranchQuota(1_000_000);
    var dir = std.fs.cwd().openDir("zig", .{ .iterate = true }) catch return error.SkipZigTest; // run from the repository root
    defer dir.close();
    var walker = try dir.walk(std.testing.allocator);
    defer walker.deinit();
    var seen: usize = 0;
    while (try walker.next()) |entry| : (seen += 1) {
        if (seen >= 100_000) return error.TooManyFiles; // the bound of the walk
        if (std.mem.startsWith(u8, entry.path, "toolchain/")) continue;
        if (entry.kind != .file or !std.mem.endsWith(u8, entry.basename, ".zig")) continue;
        if (placedAt(entry.path) != null) continue;
        const name = entry.basename[0 .. entry.basename.len - 4];
        inline for (layers ++ .{ &tools, &[_][]const u8{"lib"} }) |group| {
            inline for (group) |listed| {
                if (std.mem.eql(u8, listed, name)) {
                    std.debug.print("zig/{s} is not in its layer's folder: lib.zig places it at zig/{s} (folders)\n", .{ entry.path, comptime path(listed) });
                    return error.MisplacedFile;
                }
            }
        }
        std.debug.print("zig/{s} is in no layer of lib.zig\n", .{entry.path});
        return error.UnknownFile;
    }
}
