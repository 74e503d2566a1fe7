/*
 * realloc_growth — buffers grown by realloc. Args: rounds [buffers max_size seed].
 * Each round grows `buffers` buffers side by side (round-robin, so they cannot all grow
 * in place) by 16..256 bytes per realloc, writing the new tail, until each reaches
 * max_size; then frees them. ops = realloc calls.
 */
#include "common.h"

int main(int argc, char **argv) {
    long rounds = arg_long(argc, argv, 1, 200);
    long buffers = arg_long(argc, argv, 2, 16);
    size_t max_size = (size_t)arg_long(argc, argv, 3, 65536);
    uint64_t seed = (uint64_t)arg_long(argc, argv, 4, 42);
    if (rounds <= 0 || buffers <= 0 || max_size < 256) die("arguments");

    char **bufs = calloc((size_t)buffers, sizeof(char *));
    size_t *sizes = calloc((size_t)buffers, sizeof(size_t));
    if (!bufs || !sizes) die("calloc");
    rng_t rng;
    rng_seed(&rng, seed);
    double reallocs = 0;

    double start = now_sec();
    for (long r = 0; r < rounds; r++) {
        long growing = buffers;
        while (growing > 0) {
            growing = 0;
            for (long b = 0; b < buffers; b++) {
                if (sizes[b] >= max_size) continue;
                size_t next = sizes[b] + rng_range(&rng, 16, 256);
                char *p = realloc(bufs[b], next);
                if (!p) die("realloc");
                memset(p + sizes[b], (int)b, next - sizes[b]);
                bufs[b] = p;
                sizes[b] = next;
                reallocs++;
                growing++;
            }
        }
        for (long b = 0; b < buffers; b++) {
            free(bufs[b]);
            bufs[b] = NULL;
            sizes[b] = 0;
        }
    }
    double secs = now_sec() - start;

    free(bufs);
    free(sizes);
    report("realloc_growth", reallocs, secs, "");
    return 0;
}
