/*
 * larson.c — Larson-style server workload with verification.
 *
 * usage: larson THREADS ROUNDS SEED
 * Each thread owns an array of 1024 blocks (8..1024 bytes). Every round it replaces random
 * blocks in its array (checking each block's pattern before freeing it); between rounds
 * the arrays rotate to the next thread, so most frees are of blocks another thread
 * allocated. Any corruption, crash or lost block fails the run.
 */
#define _GNU_SOURCE
#include <pthread.h>

#include "test_common.h"

#define BLOCKS 1024
#define REPLACEMENTS_PER_ROUND 2048

typedef struct {
    unsigned char *ptr;
    size_t size;
    uint64_t tag;
} block_t;

typedef struct {
    block_t blocks[BLOCKS];
} array_t;

static int g_threads, g_rounds;
static uint64_t g_seed;
static array_t *g_arrays;
static pthread_barrier_t g_barrier;

static void fill_block(block_t *b, rng_t *r, uint64_t tag) {
    b->size = (size_t)rng_range(r, 8, 1024);
    b->ptr = malloc(b->size);
    REQUIRE(b->ptr != NULL);
    CHECK(is_aligned(b->ptr, 16));
    b->tag = tag;
    pattern_fill(b->ptr, b->size, tag);
}

static void drop_block(block_t *b, const char *what) {
    pattern_ok(b->ptr, b->size, b->tag, what);
    free(b->ptr);
    b->ptr = NULL;
}

static void *worker_main(void *arg) {
    int id = (int)(intptr_t)arg - 1; /* threads_start numbers threads from 1 */
    rng_t rng;
    rng_seed(&rng, mix64(g_seed * 7919 + (uint64_t)id));
    uint64_t counter = 0;
    uint64_t tag_base = (uint64_t)(id + 1) << 40;
    array_t *mine = &g_arrays[id];
    for (int i = 0; i < BLOCKS; i++) fill_block(&mine->blocks[i], &rng, tag_base | ++counter);
    pthread_barrier_wait(&g_barrier);
    for (int round = 0; round < g_rounds; round++) {
        /* this round's array: rotated by `round` positions */
        array_t *a = &g_arrays[(id + round) % g_threads];
        for (int k = 0; k < REPLACEMENTS_PER_ROUND; k++) {
            block_t *b = &a->blocks[rng_next(&rng) % BLOCKS];
            drop_block(b, "larson replace");
            fill_block(b, &rng, tag_base | ++counter);
        }
        pthread_barrier_wait(&g_barrier);
    }
    /* free the array this thread would work on next: again mostly remote */
    array_t *last = &g_arrays[(id + g_rounds) % g_threads];
    for (int i = 0; i < BLOCKS; i++) drop_block(&last->blocks[i], "larson final");
    return NULL;
}

int main(int argc, char **argv) {
    const char *usage = "THREADS ROUNDS SEED";
    g_threads = (int)arg_in_range(argc, argv, 1, 0, 1, 256, usage);
    g_rounds = (int)arg_in_range(argc, argv, 2, -1, 0, 1L << 30, usage);
    g_seed = (uint64_t)arg_in_range(argc, argv, 3, -1, 0, LONG_MAX, usage);
    require_hakmem();
    g_arrays = calloc((size_t)g_threads, sizeof *g_arrays);
    REQUIRE(g_arrays != NULL);
    pthread_barrier_init(&g_barrier, NULL, (unsigned)g_threads);
    pthread_t *threads = calloc((size_t)g_threads, sizeof *threads);
    REQUIRE(threads != NULL);
    threads_start(threads, g_threads, worker_main, NULL, 0);
    threads_join(threads, g_threads);
    printf("larson threads=%d rounds=%d seed=%llu replacements=%ld\n", g_threads, g_rounds,
           (unsigned long long)g_seed, (long)g_threads * g_rounds * REPLACEMENTS_PER_ROUND);
    free(threads);
    free(g_arrays);
    return finish("larson");
}
