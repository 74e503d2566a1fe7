/*
 * large_blocks — big allocations. Args: cycles [slots min_mib max_mib seed].
 * Each cycle replaces a random one of `slots` live blocks with a new block of
 * min_mib..max_mib MiB (any byte count in between) and writes one byte per 4 KiB page
 * of it, as a program using the memory would. ops = blocks allocated.
 */
#include "common.h"

int main(int argc, char **argv) {
    long cycles = arg_long(argc, argv, 1, 400);
    long slots = arg_long(argc, argv, 2, 4);
    size_t min = (size_t)arg_long(argc, argv, 3, 1) << 20;
    size_t max = (size_t)arg_long(argc, argv, 4, 32) << 20;
    uint64_t seed = (uint64_t)arg_long(argc, argv, 5, 42);
    if (cycles <= 0 || slots <= 0 || min == 0 || max < min) die("arguments");

    char **live = calloc((size_t)slots, sizeof(char *));
    if (!live) die("calloc");
    rng_t rng;
    rng_seed(&rng, seed);

    double start = now_sec();
    for (long i = 0; i < cycles; i++) {
        size_t slot = (size_t)(rng_next(&rng) % (uint64_t)slots);
        free(live[slot]);
        size_t size = rng_range(&rng, min, max);
        char *p = malloc(size);
        if (!p) die("malloc");
        for (size_t off = 0; off < size; off += 4096) p[off] = (char)i;
        p[size - 1] = (char)i;
        live[slot] = p;
    }
    double secs = now_sec() - start;

    for (long s = 0; s < slots; s++) free(live[s]);
    free(live);
    report("large_blocks", (double)cycles, secs, "");
    return 0;
}
