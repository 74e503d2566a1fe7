/*
 * pairs_kernel.c — the bench's native batch loop (micro_kernel), built as a shared library:
 * n malloc+free pairs of one size through the given function pointers, the same loop for
 * every allocator, so FFI cost does not hide allocator cost.
 */
#include <stdint.h>
#include <stddef.h>
#include <time.h>

typedef void *(*alloc_fn_t)(size_t);
typedef void (*free_fn_t)(void *);

uint64_t bench_kernel_pairs(alloc_fn_t alloc_fn, free_fn_t free_fn, uint64_t size, uint64_t n) {
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (uint64_t i = 0; i < n; i++) {
        volatile char *p = alloc_fn((size_t)size);
        if (p) p[0] = (char)i;
        free_fn((void *)p);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    return (uint64_t)(b.tv_sec - a.tv_sec) * 1000000000ull + (uint64_t)(b.tv_nsec - a.tv_nsec);
}
