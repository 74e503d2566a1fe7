/*
 * thread_generations — threads that exit while their blocks live on. Args:
 * generations threads blocks_per_thread max_size [seed].
 *
 * Each generation starts `threads` threads. A thread first frees the blocks that the
 * thread of the same index in the previous generation left behind (allocated by a
 * thread that has exited since), then allocates `blocks_per_thread` blocks of random
 * sizes in 16..max_size, writes them, frees a random half itself and leaves the other
 * half to the next generation; then it exits. The last generation's blocks are freed
 * by the main thread. ops = total allocations.
 */
#include "common.h"

typedef struct {
    long blocks;
    size_t max_size;
    uint64_t seed;
    void **inherited;   /* left by the previous generation (freed first) */
    long inherited_count;
    void **left;        /* left for the next generation */
    long left_count;
} worker_t;

static void *worker(void *arg) {
    worker_t *w = arg;
    for (long i = 0; i < w->inherited_count; i++) free(w->inherited[i]);
    rng_t rng;
    rng_seed(&rng, w->seed);
    void **mine = malloc((size_t)w->blocks * sizeof *mine);
    if (!mine) die("malloc");
    for (long i = 0; i < w->blocks; i++) {
        size_t size = rng_range(&rng, 16, w->max_size);
        char *p = malloc(size);
        if (!p) die("malloc");
        p[0] = (char)i;
        p[size - 1] = (char)i;
        mine[i] = p;
    }
    w->left_count = 0;
    for (long i = 0; i < w->blocks; i++) {
        if (rng_next(&rng) & 1) w->left[w->left_count++] = mine[i];
        else free(mine[i]);
    }
    free(mine);
    return NULL;
}

int main(int argc, char **argv) {
    long generations = arg_long(argc, argv, 1, 40);
    long threads = arg_long(argc, argv, 2, 2);
    long blocks = arg_long(argc, argv, 3, 20000);
    size_t max_size = (size_t)arg_long(argc, argv, 4, 2048);
    uint64_t seed = (uint64_t)arg_long(argc, argv, 5, 42);
    if (generations < 1 || threads < 1 || threads > 64 || blocks < 1 || max_size < 16) {
        fprintf(stderr, "usage: thread_generations generations threads(1..64) blocks_per_thread max_size [seed]\n");
        return 2;
    }
    worker_t w[64];
    void **buffers[2][64];
    for (int b = 0; b < 2; b++)
        for (long t = 0; t < threads; t++)
            if (!(buffers[b][t] = malloc((size_t)blocks * sizeof(void *)))) die("malloc");
    long left_counts[64] = {0};
    pthread_t tid[64];
    double t0 = now_sec();
    for (long g = 0; g < generations; g++) {
        for (long t = 0; t < threads; t++) {
            w[t] = (worker_t){ .blocks = blocks, .max_size = max_size, .seed = seed + (uint64_t)g * 7919 + (uint64_t)t * 104729,
                               .inherited = buffers[(g + 1) % 2][t], .inherited_count = g ? left_counts[t] : 0,
                               .left = buffers[g % 2][t] };
            if (pthread_create(&tid[t], NULL, worker, &w[t])) die("pthread_create");
        }
        for (long t = 0; t < threads; t++) {
            pthread_join(tid[t], NULL);
            left_counts[t] = w[t].left_count;
        }
    }
    for (long t = 0; t < threads; t++)
        for (long i = 0; i < left_counts[t]; i++) free(buffers[(generations + 1) % 2][t][i]);
    double secs = now_sec() - t0;
    for (int b = 0; b < 2; b++)
        for (long t = 0; t < threads; t++) free(buffers[b][t]);
    char extra[64];
    snprintf(extra, sizeof extra, " final_rss_kb=%ld", rss_kib());
    report("thread_generations", (double)(generations * threads * blocks), secs, extra);
    return 0;
}
