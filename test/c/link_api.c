/*
 * link_api.c — a program linked against libhakmem.so with the flags of its pkg-config file
 * (zig-out/lib/pkgconfig/hakmem.pc: -I, -L, -lhakmem and an rpath) and run without
 * LD_PRELOAD or LD_LIBRARY_PATH. Checks that it starts, that linking replaces malloc/free
 * for the whole program (as preloading does), the realloc(p, 0) rule of each interface,
 * and that the constants of <hakmem.h> (generated from zig/abi.zig) agree with the library.
 */
#define _GNU_SOURCE
#include <hakmem.h>
#include <malloc.h>
#include <stdint.h>

#include "test_common.h"

static void test_linking_replaces_malloc(void) {
    void *m = malloc(10);
    REQUIRE(m != NULL);
    CHECK(hak_owns(m) == HAK_OK);
    CHECK(hak_free(m) == HAK_OK); /* a malloc'd block is hakmem's */
    void *h = hak_alloc(24);
    free(h); /* and the other way round */
}

static void test_realloc_zero(void) {
    /* hak_realloc(p, 0): a valid minimum-size block, like hak_alloc(0) */
    void *p = hak_alloc(100);
    REQUIRE(p != NULL);
    void *q = hak_realloc(p, 0);
    CHECK(q != NULL);
    CHECK(hak_owns(q) == HAK_OK);
    CHECK(hak_free(q) == HAK_OK);
    /* realloc(p, 0), the libc name: frees p and returns NULL, as glibc */
    p = malloc(100);
    REQUIRE(p != NULL);
    CHECK(realloc(p, 0) == NULL);
}

static void test_constants_agree_with_the_library(void) {
    CHECK(hak_tiny_max_limit() == HAK_TINY_MAX_LIMIT);
    CHECK(hak_mid_max_limit() == HAK_MID_MAX_LIMIT);
    CHECK(hak_mid_max_min() == HAK_MID_MAX_MIN);
    CHECK(hak_tiny_max() == HAK_TINY_MAX_DEFAULT);
    CHECK(hak_mid_max() == HAK_MID_MAX_DEFAULT);
    CHECK(hak_route(0) == HAK_TIER_TINY);
    CHECK(hak_route(HAK_TINY_MAX_DEFAULT + 1) == HAK_TIER_MID);
    CHECK(hak_route(HAK_MID_MAX_DEFAULT + 1) == HAK_TIER_LARGE);
    CHECK(hak_set_thresholds(0, HAK_MID_MAX_MIN - 1) == HAK_ERR_ARG);
    CHECK(hak_set_thresholds(HAK_TINY_MAX_LIMIT + 1, HAK_MID_MAX_LIMIT) == HAK_ERR_ARG);
    CHECK(hak_set_thresholds(0, HAK_MID_MAX_MIN) == HAK_OK);
    CHECK(hak_route(1) == HAK_TIER_MID);
    CHECK(hak_set_thresholds(HAK_TINY_MAX_DEFAULT, HAK_MID_MAX_DEFAULT) == HAK_OK);
    CHECK(hak_check_mode() == HAK_CHECK_OFF);
    CHECK(hak_set_check_mode(HAK_CHECK_WARN + 1) == HAK_ERR_ARG);

    errno = 0;
    CHECK(hak_alloc(HAK_SIZE_MAX + 1) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(hak_aligned_alloc(HAK_ALIGNMENT_MAX * 2, 16) == NULL && errno == ENOMEM);
    void *p = hak_alloc(1);
    CHECK((uintptr_t)p % HAK_MIN_ALIGNMENT == 0);
    char local[16];
    CHECK(hak_free(local) == HAK_ERR_NOT_OWNED);
    CHECK(hak_free((char *)p + 1) == HAK_ERR_INVALID);
    /* a double free has its own code, in every tier: the block in this thread's cache, and
       a large block (nothing is changed by the second call) */
    size_t double_free_sizes[] = {64, 3000, 200000, HAK_MID_MAX_DEFAULT + 1};
    for (size_t i = 0; i < sizeof double_free_sizes / sizeof double_free_sizes[0]; i++) {
        void *d = hak_alloc(double_free_sizes[i]);
        REQUIRE(d != NULL);
        CHECK(hak_free(d) == HAK_OK);
        CHECK(hak_free(d) == HAK_ERR_DOUBLE_FREE);
    }

    /* the statistics layout */
    uint64_t before[HAK_STAT_VALUES + 4], after[HAK_STAT_VALUES + 4];
    CHECK(hak_stats_read(before, HAK_STAT_VALUES + 4) == HAK_STAT_VALUES);
    void *q = hak_alloc(100);
    CHECK(hak_stats_read(after, HAK_STAT_VALUES) == HAK_STAT_VALUES);
    CHECK(after[HAK_STAT_INDEX(HAK_TIER_TINY, HAK_STAT_LIVE_BYTES)] - before[HAK_STAT_INDEX(HAK_TIER_TINY, HAK_STAT_LIVE_BYTES)] == hak_usable_size(q));
    CHECK(after[HAK_STAT_INDEX(HAK_TIER_TINY, HAK_STAT_LIVE_BLOCKS)] == before[HAK_STAT_INDEX(HAK_TIER_TINY, HAK_STAT_LIVE_BLOCKS)] + 1);
    CHECK(after[HAK_STAT_GLOBAL_INDEX(HAK_STAT_THREADS_LIVE)] >= 1);
    hak_free(hak_alloc(HAK_MID_MAX_DEFAULT + 1));
    CHECK(hak_stats_read(after, HAK_STAT_VALUES) == HAK_STAT_VALUES);
    CHECK(after[HAK_STAT_INDEX(HAK_TIER_LARGE, HAK_STAT_ALLOCS)] == before[HAK_STAT_INDEX(HAK_TIER_LARGE, HAK_STAT_ALLOCS)] + 1);
    CHECK(after[HAK_STAT_GLOBAL_INDEX(HAK_STAT_LARGE_CACHE_LIMIT_BYTES)] > 0); /* set by the first large block */
    hak_free(q);
    hak_free(p);
    CHECK(hak_stat_name(HAK_STAT_NAMES) == NULL);
    CHECK(hak_stat_name(HAK_STAT_LIVE_BYTES) && strcmp(hak_stat_name(HAK_STAT_LIVE_BYTES), "live_bytes") == 0);
    CHECK(hak_stat_name(HAK_STAT_FIELDS + HAK_STAT_LARGE_CACHE_LIMIT_BYTES) &&
          strcmp(hak_stat_name(HAK_STAT_FIELDS + HAK_STAT_LARGE_CACHE_LIMIT_BYTES), "large_cache_limit_bytes") == 0);
}

int main(void) {
    require_hakmem();
    CHECK(getenv("LD_PRELOAD") == NULL);
    test_linking_replaces_malloc();
    test_realloc_zero();
    test_constants_agree_with_the_library();
    return finish("link_api");
}
