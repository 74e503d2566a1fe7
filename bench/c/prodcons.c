/*
 * prodcons — producer/consumer in the style of xmalloc-test. Args: pairs blocks_per_producer
 * [min max seed]. Each producer thread allocates blocks (and writes them) and passes them
 * in batches to its consumer thread, which frees them: every free is a remote free.
 * ops = blocks allocated and freed.
 */
#include "ring.h"

#define BATCH 64
#define MAX_IN_FLIGHT 64 /* batches queued per pair: bounds live memory */

typedef struct {
    long blocks;
    size_t min, max;
    uint64_t seed;
    ring_t ring;              /* carries batches (arrays of BATCH pointers) */
    _Atomic int done;
} pair_t;

static void *producer(void *arg) {
    pair_t *pair = arg;
    rng_t rng;
    rng_seed(&rng, pair->seed);
    for (long i = 0; i < pair->blocks; i += BATCH) {
        void **batch = malloc(BATCH * sizeof(void *));
        if (!batch) die("malloc");
        for (int b = 0; b < BATCH; b++) {
            size_t size = rng_range(&rng, pair->min, pair->max);
            char *p = malloc(size);
            if (!p) die("malloc");
            memset(p, b, size < 64 ? size : 64);
            batch[b] = p;
        }
        while (ring_count(&pair->ring) >= MAX_IN_FLIGHT || !ring_push(&pair->ring, batch)) sched_yield();
    }
    atomic_store(&pair->done, 1);
    return NULL;
}

static void free_batch(void **batch) {
    for (int b = 0; b < BATCH; b++) free(batch[b]);
    free(batch);
}

static void *consumer(void *arg) {
    pair_t *pair = arg;
    for (;;) {
        void **batch = ring_pop(&pair->ring);
        if (batch) { free_batch(batch); continue; }
        if (atomic_load(&pair->done)) {
            while ((batch = ring_pop(&pair->ring)) != NULL) free_batch(batch);
            return NULL;
        }
        sched_yield();
    }
}

int main(int argc, char **argv) {
    long pairs = arg_long(argc, argv, 1, 1);
    long blocks = arg_long(argc, argv, 2, 2000000);
    size_t min = (size_t)arg_long(argc, argv, 3, 16);
    size_t max = (size_t)arg_long(argc, argv, 4, 512);
    uint64_t seed = (uint64_t)arg_long(argc, argv, 5, 42);
    if (pairs <= 0 || blocks <= 0 || min == 0 || max < min) die("arguments");
    blocks = (blocks + BATCH - 1) / BATCH * BATCH;

    pair_t *pair_list = aligned_alloc(64, sizeof(pair_t) * (size_t)pairs);
    pthread_t *tids = calloc((size_t)pairs * 2, sizeof(pthread_t));
    if (!pair_list || !tids) die("alloc");
    memset(pair_list, 0, sizeof(pair_t) * (size_t)pairs);

    double start = now_sec();
    for (long i = 0; i < pairs; i++) {
        pair_list[i].blocks = blocks;
        pair_list[i].min = min;
        pair_list[i].max = max;
        pair_list[i].seed = seed + (uint64_t)i;
        if (pthread_create(&tids[2 * i], NULL, producer, &pair_list[i]) != 0) die("pthread_create");
        if (pthread_create(&tids[2 * i + 1], NULL, consumer, &pair_list[i]) != 0) die("pthread_create");
    }
    for (long i = 0; i < pairs * 2; i++) pthread_join(tids[i], NULL);
    double secs = now_sec() - start;

    free(pair_list);
    free(tids);
    char extra[64];
    snprintf(extra, sizeof extra, " pairs=%ld", pairs);
    report("prodcons", (double)(pairs * blocks), secs, extra);
    return 0;
}
