/* tls.c — the one thread-local variable of hakmem: the calling thread's heap.
 * Defined in C because Zig has no TLS-model attribute: initial-exec makes every access
 * a single %fs-relative load (thread.zig reads it with two instructions of inline asm)
 * instead of a __tls_get_addr call. Hidden: not part of the library's interface. */
__attribute__((tls_model("initial-exec"), visibility("hidden")))
__thread void *hakmem_tls_heap = 0;
