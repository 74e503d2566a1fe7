//! abandoned.zig — the pages no heap holds that have room, one list per bin, for any heap
//! that needs a page of that bin (mimalloc 3's abandoned pages). A page comes here when a
//! heap gives it up with free blocks (its thread exits) or when a thread that took an
//! abandoned page by freeing into it finds it has room now (thread/heap.zig settleClaimed);
//! a heap that finds no page of a bin among its own takes one from here before it places
//! a new one, so the memory an exited or idle thread left serves the next thread of the
//! same size class, and a producer's pages serve it again once its consumer freed into them.
//!
//!   lists[bin]:  page <-> page <-> page     (page.next/prev; page.listed; under `lock`)
//!   counts[bin]: how many (read without the lock: is there any?)
//!
//! A listed page belongs to nobody (its owned bit clear, page.zig) until a thread takes it:
//! `take` claims it with the owned bit and unlists it; a thread that took it by a free
//! (pushRemoteChain said so) unlists it before it gives the page back or keeps it.
const std = @import("std");
const size_class = @import("../settings/size_class.zig");
const stats = @import("../settings/stats.zig");
const page_mod = @import("page.zig");
const Lock = @import("../base/lock.zig").Lock;
const Page = page_mod.Page;

const bins = size_class.bin_count;

pub var lock: Lock = .{};

const PageList = struct {
    first: ?*Page = null,
    last: ?*Page = null,
};

var lists: [bins]PageList = [_]PageList{.{}} ** bins;
var counts: [bins]usize = [_]usize{0} ** bins;

/// Listed pages a take() tries to claim at most (each one another thread holds right now
/// is passed over: it unlists it or lets it go again).
const take_tries_max = 8;

/// (the caller holds `page`, which is in no heap's queue) Lists it for its bin.
pub fn list(page: *Page) void {
    std.debug.assert(page.isHeld()); // the caller's,
    std.debug.assert(page.owner.load(.monotonic) == null); // no heap's
    std.debug.assert(page.freeRoom() > 0); // listed with room only (a heap takes it for a block)
    if (@atomicLoad(bool, &page.listed, .monotonic)) return; // (only its holder lists it)
    lock.acquire();
    defer lock.release();
    std.debug.assert(page.next == null); // in no queue
    std.debug.assert(page.prev == null);
    const l = &lists[page.bin];
    page.prev = l.last;
    page.next = null;
    if (l.last) |last| last.next = page else l.first = page;
    l.last = page;
    page.listed = true;
    @atomicStore(usize, &counts[page.bin], counts[page.bin] + 1, .monotonic);
}

/// (the caller holds `page`) Takes it off its list if it is listed.
pub fn unlist(page: *Page) void {
    std.debug.assert(page.isHeld());
    std.debug.assert(page.owner.load(.monotonic) == null); // listed pages are nobody's
    if (!@atomicLoad(bool, &page.listed, .monotonic)) return; // (only the holder lists it)
    lock.acquire();
    defer lock.release();
    removeLocked(page);
}

fn removeLocked(page: *Page) void {
    std.debug.assert(lock.isHeld());
    std.debug.assert(page.listed);
    const l = &lists[page.bin];
    std.debug.assert((page.prev == null) == (l.first == page));
    std.debug.assert((page.next == null) == (l.last == page));
    if (page.prev) |p| p.next = page.next else l.first = page.next;
    if (page.next) |n| n.prev = page.prev else l.last = page.prev;
    page.next = null;
    page.prev = null;
    @atomicStore(bool, &page.listed, false, .monotonic);
    std.debug.assert(counts[page.bin] > 0);
    @atomicStore(usize, &counts[page.bin], counts[page.bin] - 1, .monotonic);
}

/// A listed page of `bin`, claimed for the caller (its owned bit set, unlisted, owner
/// still null); null when none could be. Oldest first: the page listed longest has had the
/// most time to collect frees.
pub fn take(bin: usize) ?*Page {
    std.debug.assert(bin < bins);
    if (@atomicLoad(usize, &counts[bin], .monotonic) == 0) return null;
    lock.acquire();
    defer lock.release();
    var it = lists[bin].first;
    var tries: usize = 0;
    while (it) |page| : (tries += 1) {
        if (tries == take_tries_max) return null;
        it = page.next;
        std.debug.assert(page.bin == bin); // on its bin's list,
        std.debug.assert(page.owner.load(.monotonic) == null); // no heap's
        if (!page.tryClaim()) continue; // a thread freeing into it holds it now
        removeLocked(page);
        stats.incr(&stats.pages_reclaimed);
        return page;
    }
    return null;
}

/// Listed pages of `bin` now (a hint: no lock).
pub fn count(bin: usize) usize {
    std.debug.assert(bin < bins);
    return
 @atomicLoad(usize, &counts[bin], .monotonic);
}

pub fn resetLockInChild() void {
    lock.resetInChild();
}

pub const Invalid = error{ AbandonedListBroken, AbandonedCountWrong, AbandonedPageOwned, AbandonedPageWrongBin };

/// Checks every list under the lock: links, counts, each page of its bin, listed, owned by
/// no heap. Bounded by the counts.
pub fn validate() Invalid!void {
    lock.acquire();
    defer lock.release();
    for (&lists, counts, 0..) |*l, n_want, bin| {
        var prev: ?*Page = null;
        var it = l.first;
        var n: usize = 0;
        while (it) |page| : (it = page.next) {
            n += 1;
            if (n > n_want) return error.AbandonedCountWrong;
            if (page.prev != prev or !page.listed) return error.AbandonedListBroken;
            if (page.bin != bin) return error.AbandonedPageWrongBin;
            if (page.owner.load(.monotonic) != null) return error.AbandonedPageOwned;
            prev = page;
        }
        if (n != n_want or l.last != prev) return error.AbandonedCountWrong;
    }
}
