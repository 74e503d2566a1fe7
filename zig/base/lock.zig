//! lock.zig — the spin lock that guards hakmem's few shared lists (the arena's segments,
//! the abandoned pages, the heap registry and the exited heaps, the large-mapping cache,
//! the large regions). Only slow paths take it.
//! A plain word, so fork() handlers can take every lock before the fork and reset them
//! in the child.
const std = @import("std");

pub const Lock = struct {
    state: std.atomic.Value(u32) = .init(0),

    pub fn acquire(self: *Lock) void {
        var spins: u32 = 0;
        while (self.state.cmpxchgWeak(0, 1, .acquire, .monotonic) != null) {
            spins +|= 1;
            if (spins < 64) {
                std.atomic.spinLoopHint();
            } else {
                _ = std.os.linux.sched_yield();
            }
        }
        std.debug.assert(self.isHeld()); // ours now
    }

    /// Takes the lock when it is free; false (without waiting) when it is held.
    pub fn tryAcquire(self: *Lock) bool {
        const taken = self.state.cmpxchgStrong(0, 1, .acquire, .monotonic) == null;
        std.debug.assert(!taken or self.isHeld()); // ours now, when taken
        return taken;
    }

    pub fn release(self: *Lock) void {
        std.debug.assert(self.isHeld()); // released by its holder, once
        comptime std.debug.assert(@sizeOf(Lock) == @sizeOf(u32)); // a plain word (fork resets it)
        self.state.store(0, .release);
    }

    /// Held (by someone: a plain word cannot say whom). For assertions by a holder: a plain
    /// read, which the ReleaseFast build drops with the assertion (an atomic load it keeps);
    /// no other thread writes the word while it is held (a failed cmpxchg only reads it).
    pub fn isHeld(self: *const Lock) bool {
        const state = self.state.raw;
        std.debug.assert(state <= 1); // 0 free, 1 held: nothing else is ever stored
        return state == 1;
    }

    /// In a forked child only: the lock's holder does not exist there.
    pub fn resetInChild(self: *Lock) void {
        std.debug.assert(self.state.raw <= 1); // (0 or 1 only, also in the child)
        self.state.store(0, .monotonic);
        std.debug.assert(!self.isHeld()); // the child's first taker finds it free
    }
};

test "lock excludes" {
    var lock: Lock = .{};
    lock.acquire();
    try std.testing.expect(lock.state.load(.monotonic) == 1);
    lock.release();
    lock.acquire();
    try std.testing.expect(!lock.tryAcquire());
    lock.release();
    try std.testing.expect(lock.tryAcquire());
    lock.release();
}
