//! misuse.zig — every line hakmem writes about a program's misuse of the heap, or about
//! its own lists found corrupt, and what happens next.
//!
//!   normal mode
//!     double free found at the call (free, realloc)  -> the caller decides: the libc names
//!         (preload.zig) write one line and abort; hak_free returns HAK_ERR_INVALID
//!     double free found later, in a batch (a cache flush, a page collecting remote frees)
//!         -> one line and abort when hakmem is the program's malloc (`libc_mode`); else
//!            (bun:ffi, hak_* only) the second copy is dropped (contained) and counted
//!     a free-list link that does not decode to a free block of its page
//!         -> "heap corruption", abort: the list cannot be trusted past it
//!   check mode (HAKMEM_CHECK=1 / warn, check.zig): `report` with the block's tier, class
//!     and offset; abort, or (warn) carry on without the bad operation
//!
//! Nothing here allocates; each line is one write(2).
const std = @import("std");
const os = @import("../base/os.zig");
const config = @import("config.zig");

/// Set once a libc entry point (malloc, free, … of preload.zig) has served the process:
/// hakmem is then the program's malloc, and a double free aborts as glibc's would.
pub var libc_mode: bool = false;

/// Double frees found in batch paths and contained (library mode).
pub var contained_double_frees = std.atomic.Value(u64).init(0);

pub inline fn noteLibcMode() void {
    if (!@atomicLoad(bool, &libc_mode, .monotonic)) @atomicStore(bool, &libc_mode, true, .monotonic);
}

/// Where a block lives, for the reports. `class` is null for a large mapping.
pub const Where = struct {
    tier: []const u8,
    class: ?usize = null,
    block_size: usize = 0,
};

pub const Problem = enum {
    double_free,
    interior_pointer,
    not_owned,
    overflow,
    underflow,
    trailer_overwritten,
    use_after_free,
    realloc_freed,
    not_a_block,

    pub fn text(self: Problem) []const u8 {
        const t = switch (self) {
            .double_free => "double free of",
            .interior_pointer => "free of an interior pointer (not the start of a block)",
            .not_owned => "free of a pointer hakmem does not own",
            .overflow => "write past the requested size of",
            .underflow => "write before the start of",
            .trailer_overwritten => "write past the requested size (block trailer overwritten) of",
            .use_after_free => "write to a freed block, found when reusing",
            .realloc_freed => "realloc of a freed block",
            .not_a_block => "free of a pointer into hakmem's heap that is not a live block (an interior pointer, or a block freed earlier)",
        };
        std.debug.assert(t.len > 0);
        std.debug.assert(std.mem.indexOfScalar(u8, t, '\n') == null); // a report is one line
        return t;
    }
};

/// One line: "hakmem: [CHECK: ]<problem> 0x… (<tier> tier, class c, n-byte blocks[, offset o], thread t)".
pub noinline fn say(prefix: []const u8, problem: Problem, ptr: usize, where: ?Where, offset: ?usize) void {
    std.debug.assert(prefix.len == 0 or std.mem.eql(u8, prefix, "CHECK: ")); // normal mode, or check mode
    std.debug.assert(prefix.len == 0 or config.check_mode != .off); // (check mode's reports only)
    std.debug.assert(where == null or where.?.tier.len > 0); // a tier named ("tiny", "mid", "large")
    const tid = std.os.linux.gettid();
    var buf: [96]u8 = undefined;
    const at: []const u8 = if (offset) |o| std.fmt.bufPrint(&buf, ", offset {d}", .{o}) catch "" else "";
    const w = where orelse return os.printStderr("hakmem: {s}{s} 0x{x} (thread {d})\n", .{ prefix, problem.text(), ptr, tid });
    if (w.class) |class| {
        os.printStderr("hakmem: {s}{s} 0x{x} ({s} tier, class {d}, {d}-byte blocks{s}, thread {d})\n", .{ prefix, problem.text(), ptr, w.tier, class, w.block_size, at, tid });
    } else {
        os.printStderr("hakmem: {s}{s} 0x{x} ({s} tier, {d}-byte mapping{s}, thread {d})\n", .{ prefix, problem.text(), ptr, w.tier, w.block_size, at, tid });
    }
}

/// Check mode's report: the line, then abort (HAKMEM_CHECK=1) or return (=warn).
pub fn report(problem: Problem, ptr: usize, where: ?Where, offset: ?usize) void {
    std.debug.assert(config.check_mode != .off); // normal mode aborts or contains instead
    say("CHECK: ", problem, ptr, where, offset);
    afterReport();
}

/// What follows a check-mode report: abort (HAKMEM_CHECK=1), or return (=warn).
pub fn afterReport() void {
    std.debug.assert(config.check_mode != .off); // (normal mode aborts or contains at the finding)
    if (config.check_mode == .abort) {
        os.writeStderr("hakmem: CHECK: aborting (set HAKMEM_CHECK=warn to continue instead)\n");
        std.c.abort();
    }
}

/// A double free (or a free of a pointer into the heap that is no block) found at a free()
/// or realloc() of the libc names: one line, abort, as glibc does.
pub noinline fn abortMisuse(problem: Problem, addr: usize, where: ?Where) noreturn {
    // what a free or realloc of the libc names can find at the call (others: check mode's)
    std.debug.assert(problem == .double_free or problem == .not_a_block or problem == .realloc_freed);
    say("", problem, addr, where, null);
    std.c.abort();
}

/// A double free found in a batch path. Returns when the duplicate is to be dropped.
pub noinline fn doubleFreeFound(addr: usize, where: Where) void {
    std.debug.assert(where.class != null); // found in a batch of a page's blocks: tiny or mid
    std.debug.assert(addr % 16 == 0); // a block start (every block keeps malloc's alignment)
    std.debug.assert(where.block_size > 0);
    if (config.check_mode != .off) return report(.double_free, addr, where, null);
    if (@atomicLoad(bool, &libc_mode, .monotonic)) abortMisuse(.double_free, addr, where);
    _ = contained_double_frees.fetchAdd(1, .monotonic);
}

/// A free-list link or key that was written after the block was freed. In check mode it
/// is reported as a write to a freed block (warn: returns, the list is cut there); in normal
/// mode the heap is corrupt and the process stops.
pub noinline fn freedBlockWritten(addr: usize, where: Where, offset: usize) void {
    std.debug.assert(offset == 0 or offset == 8); // the word found written: the link, or the key
    std.debug.assert(where.class != null); // a free-list link: a page's block
    std.debug.assert(addr % 16 == 0); // a block start (every block keeps malloc's alignment)
    if (config.check_mode != .off) return report(.use_after_free, addr, where, offset);
    corrupted("the free-list link of a freed block was overwritten (a write after free?)", addr);
}

/// The key word of a free block (in a thread cache, or free on its page) no longer says
/// free: found when a cache gives blocks back to their pages (flush) or takes them from one
/// (refill). A write after free, or an overflow of the block before it (`before`, 0 when
/// the block starts its page) that ran past its end. Check mode reports it as a write to a
/// freed block (warn: returns); normal mode stops, the block's page cannot be trusted.
pub noinline fn freeBlockKeyWritten(addr: usize, before: usize, where: Where) void {
    if (before != 0) std.debug.assert(addr - before == where.block_size); // the block just before it
    std.debug.assert(where.class != null); // a block of a page: in a cache or free on its page
    std.debug.assert(addr % 16 == 0); // a block start (every block keeps malloc's alignment)
    if (config.check_mode != .off) return report(.use_after_free, addr, where, 8);
    if (before != 0) {
        os.printStderr("hakmem: heap corruption: the key word of a free block was overwritten: a write after free, or an overflow of the {d}-byte block before it, 0x{x} (block 0x{x}, thread {d}); run with HAKMEM_CHECK=1 to find the culprit\n", .{ where.block_size, before, addr, std.os.linux.gettid() });
    } else {
        os.printStderr("hakmem: heap corruption: the key word of a free block was overwritten: a write after free (block 0x{x}, thread {d}); run with HAKMEM_CHECK=1 to find the culprit\n", .{ addr, std.os.linux.gettid() });
    }
    std.c.abort();
}

/// Heap corruption the allocator cannot recover from: say so and abort.
pub noinline fn corrupted(what: []const u8, addr: usize) noreturn {
    std.debug.assert(what.len > 0); // says what was found
    os.printStderr("hakmem: heap corruption: {s} (block 0x{x}, thread {d}); run with HAKMEM_CHECK=1 to find the culprit\n", .{ what, addr, std.os.linux.gettid() });
    std.c.abort();
}
