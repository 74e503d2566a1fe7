/*
 * random_mixed — the seed benchmark. Args: cycles ws seed [min max].
 * Each cycle picks a random slot of `ws`: frees it when occupied, else allocates
 * min..max bytes (default 16..1040) and writes a byte. ops = cycles.
 */
#include "common.h"

int main(int argc, char **argv) {
    long cycles = arg_long(argc, argv, 1, 10000000);
    long ws = arg_long(argc, argv, 2, 400);
    long seed = arg_long(argc, argv, 3, 42);
    size_t min = (size_t)arg_long(argc, argv, 4, 16);
    size_t max = (size_t)arg_long(argc, argv, 5, 1040);
    if (cycles <= 0 || ws <= 0 || min == 0 || max < min) die("arguments");

    void **slots = calloc((size_t)ws, sizeof(void *));
    if (!slots) die("calloc");
    rng_t rng;
    rng_seed(&rng, (uint64_t)seed);

    double start = now_sec();
    for (long i = 0; i < cycles; i++) {
        size_t slot = (size_t)(rng_next(&rng) % (uint64_t)ws);
        if (slots[slot]) {
            free(slots[slot]);
            slots[slot] = NULL;
        } else {
            size_t size = rng_range(&rng, min, max);
            char *p = malloc(size);
            if (!p) die("malloc");
            p[0] = (char)i;
            slots[slot] = p;
        }
    }
    double secs = now_sec() - start;

    for (long i = 0; i < ws; i++) free(slots[i]);
    free(slots);
    report("random_mixed", (double)cycles, secs, "");
    return 0;
}
