/*
 * heap_leak.c — a program with a known leak, for the heap profiler (HAKMEM_PROFILE).
 *
 *   heap_leak LEAK_MIB CHURN_MIB
 *     remember_request() leaks LEAK_MIB MiB in blocks of 256..511 bytes (never freed);
 *     format_reply() allocates and frees CHURN_MIB MiB in blocks of 2..8 KiB, and
 *     load_image() 8 blocks of 1..3 MiB each round, freed too (more bytes allocated than
 *     the leak, none of them live at the end). Prints "leaked_bytes=<usable bytes of the
 *     leaked blocks>" and, when hak_profile_dump exists, dumps the profile (argv[3]).
 */
#include "test_common.h"

#include <malloc.h>

static void *leaked[1 << 20];
static size_t leaked_count;

__attribute__((noinline)) static void *remember_request(size_t size) {
    void *p = malloc(size);
    REQUIRE(p != NULL);
    memset(p, 1, size);
    return p;
}

__attribute__((noinline)) static void format_reply(size_t size) {
    char *p = malloc(size);
    REQUIRE(p != NULL);
    memset(p, 2, size);
    free(p);
}

__attribute__((noinline)) static void load_image(size_t size) {
    char *p = malloc(size);
    REQUIRE(p != NULL);
    memset(p, 3, size);
    free(p);
}

int main(int argc, char **argv) {
    require_hakmem();
    const size_t leak = (size_t)arg_long(argc, argv, 1, 64) << 20, churn = (size_t)arg_long(argc, argv, 2, 256) << 20;
    rng_t rng;
    rng_seed(&rng, 7);
    size_t leaked_bytes = 0, churned = 0, leaked_requested = 0;
    while (leaked_requested < leak && leaked_count < (1 << 20)) {
        size_t size = rng_range(&rng, 256, 511);
        void *p = remember_request(size);
        leaked[leaked_count++] = p;
        leaked_requested += size;
        leaked_bytes += malloc_usable_size(p);
        for (int k = 0; k < 4 && churned < churn; k++) {
            size_t s = rng_range(&rng, 2048, 8192);
            format_reply(s);
            churned += s;
        }
        if (leaked_count % 4096 == 0) {
            for (int k = 0; k < 8; k++) load_image(rng_range(&rng, 1 << 20, 3 << 20));
        }
    }
    printf("leaked_bytes=%zu leaked_blocks=%zu churned_bytes=%zu\n", leaked_bytes, leaked_count, churned);
    int (*dump)(const char *) = (int (*)(const char *))hak_symbol("hak_profile_dump");
    if (argc > 3 && dump) CHECK(dump(argv[3]) == 0);
    return finish("heap_leak");
}
