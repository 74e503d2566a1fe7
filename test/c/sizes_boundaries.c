/*
 * sizes_boundaries.c — every size 1..4096, every size-class boundary ±1 up to 2 MiB, and
 * HAKMEM's old crash (masses of 63/64/65-byte blocks): each block is filled with its own
 * pattern while many are alive, so any overlap or short block shows up as corruption.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>

#include "test_common.h"

#define MAX_WALK ((size_t)2 << 20)

typedef struct {
    unsigned char *ptr;
    size_t size;
    uint64_t tag;
} block_t;

static void alloc_block(block_t *b, size_t size, uint64_t tag) {
    b->ptr = malloc(size);
    REQUIRE(b->ptr != NULL);
    b->size = size;
    b->tag = tag;
    CHECK(is_aligned(b->ptr, 16));
    size_t usable = malloc_usable_size(b->ptr);
    if (usable < size) {
        fprintf(stderr, "malloc(%zu): usable size %zu is too small\n", size, usable);
        g_failures++;
    }
    pattern_fill(b->ptr, size, tag);
}

static void free_block(block_t *b, const char *what) {
    pattern_ok(b->ptr, b->size, b->tag, what);
    free(b->ptr);
    b->ptr = NULL;
}

/* Every size 1..4096: one at a time, then all alive together. */
static void test_every_small_size(void) {
    enum { N = 4096 };
    static block_t blocks[N + 1];
    for (size_t s = 1; s <= N; s++) {
        alloc_block(&blocks[s], s, s);
        free_block(&blocks[s], "single small size");
    }
    for (size_t s = 1; s <= N; s++) alloc_block(&blocks[s], s, s * 31);
    for (size_t s = 1; s <= N; s += 2) free_block(&blocks[s], "all small sizes, odd");
    for (size_t s = 1; s <= N; s += 2) alloc_block(&blocks[s], s, s * 37);
    for (size_t s = N; s >= 1; s--) free_block(&blocks[s], "all small sizes");
}

/* The sizes to probe: class sizes from hakmem when it exports them, plus a geometric walk. */
static size_t collect_boundaries(size_t *out, size_t cap) {
    size_t n = 0;
    uint32_t (*class_count)(void) = (uint32_t(*)(void))hak_symbol("hak_class_count");
    size_t (*class_size)(uint32_t) = (size_t(*)(uint32_t))hak_symbol("hak_class_size");
    int32_t (*class_of)(size_t) = (int32_t(*)(size_t))hak_symbol("hak_class_of");
    if (class_count && class_size) {
        uint32_t count = class_count();
        CHECK(count > 0);
        for (uint32_t c = 0; c < count && n < cap; c++) {
            size_t s = class_size(c);
            if (s > 0 && s <= MAX_WALK) out[n++] = s;
            if (class_of && s > 0) {
                int32_t back = class_of(s);
                CHECK(back >= 0 && class_size((uint32_t)back) >= s);
            }
        }
        printf("class boundaries from hakmem: %u classes\n", count);
    }
    for (size_t p = 16; p <= MAX_WALK && n < cap; p *= 2) out[n++] = p;
    for (double s = 16; s <= (double)MAX_WALK && n < cap; s *= 1.125) out[n++] = (size_t)s;
    return n;
}

static void test_class_boundaries(void) {
    static size_t sizes[4096];
    size_t n = collect_boundaries(sizes, sizeof sizes / sizeof sizes[0]);
    enum { K = 6 };
    block_t held[3][K];
    memset(held, 0, sizeof held);
    for (size_t i = 0; i < n; i++) {
        for (int d = -1; d <= 1; d++) {
            size_t s = sizes[i] + (size_t)(long)d;
            if (s == 0) continue;
            for (int k = 0; k < K; k++) {
                alloc_block(&held[d + 1][k], s, ((uint64_t)i << 8) | (uint64_t)((d + 1) * K + k));
                /* the whole usable size is writable */
                size_t usable = malloc_usable_size(held[d + 1][k].ptr);
                memset(held[d + 1][k].ptr + s, 0x3c, usable - s);
            }
        }
        for (int d = 0; d < 3; d++)
            for (int k = 0; k < K; k++)
                if (held[d][k].ptr) free_block(&held[d][k], "class boundary");
        memset(held, 0, sizeof held);
    }
    printf("class boundaries probed: %zu sizes x3\n", n);
}

/* HAKMEM's old crash: many 64-byte blocks mixed with 63 and 65, freed in random order. */
static void churn_64(rng_t *rng, int rounds, int count, uint64_t tag_base) {
    block_t *blocks = calloc((size_t)count, sizeof *blocks);
    REQUIRE(blocks != NULL);
    for (int round = 0; round < rounds; round++) {
        for (int i = 0; i < count; i++) {
            size_t s = 63 + (size_t)rng_range(rng, 0, 2);
            if (blocks[i].ptr) free_block(&blocks[i], "64-byte churn");
            alloc_block(&blocks[i], s, tag_base + (uint64_t)round * (uint64_t)count + (uint64_t)i);
        }
        for (int i = 0; i < count / 2; i++) {
            int j = (int)rng_range(rng, 0, (uint64_t)count - 1);
            if (blocks[j].ptr) free_block(&blocks[j], "64-byte churn random");
        }
    }
    for (int i = 0; i < count; i++)
        if (blocks[i].ptr) free_block(&blocks[i], "64-byte churn end");
    free(blocks);
}

static void *churn_thread(void *arg) {
    rng_t rng;
    rng_seed(&rng, (uint64_t)(uintptr_t)arg);
    churn_64(&rng, 4, 50000, (uint64_t)(uintptr_t)arg << 40);
    return NULL;
}

static void test_many_64_byte_blocks(void) {
    rng_t rng;
    rng_seed(&rng, 42);
    churn_64(&rng, 6, 200000, 1);
    pthread_t threads[2];
    for (uintptr_t t = 0; t < 2; t++)
        REQUIRE(pthread_create(&threads[t], NULL, churn_thread, (void *)(t + 1)) == 0);
    for (int t = 0; t < 2; t++) pthread_join(threads[t], NULL);
}

int main(void) {
    require_hakmem();
    test_every_small_size();
    test_class_boundaries();
    test_many_64_byte_blocks();
    return finish("sizes_boundaries");
}
