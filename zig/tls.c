/* tls.c — the thread-local variables of hakmem: the calling thread's cache, its heap in
 * check mode (or when tracing), where the cache stays the sentinel, and check mode's
 * record of the call being served (its return address and the caller's frame pointer).
 * Defined in C because Zig has no TLS-model attribute: initial-exec makes every access
 * a single %fs-relative load (thread.zig reads it with two instructions of inline asm)
 * instead of a __tls_get_addr call. It starts at the heapless sentinel (thread.zig's
 * empty_entries, exported hidden as hakmem_empty_cache), so it is never null: the dynamic
 * linker relocates the TLS image before copying it into a thread. Hidden: not part of
 * the library's interface. */
__attribute__((visibility("hidden"))) extern char hakmem_empty_cache[];

__attribute__((tls_model("initial-exec"), visibility("hidden")))
__thread void *hakmem_tls_cache = hakmem_empty_cache;

/* Check mode's (and tracing's) heap: every malloc and free of check mode reads it. */
__attribute__((tls_model("initial-exec"), visibility("hidden")))
__thread void *hakmem_tls_check_heap = 0;

/* Check mode: the entry point of the call being served writes where it was called from
 * (its return address, the caller's frame pointer); check.zig takes it (check_sites.zig). */
__attribute__((tls_model("initial-exec"), visibility("hidden")))
__thread unsigned long hakmem_tls_check_entry[2] = {0, 0};
