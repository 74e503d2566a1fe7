/*
 * pairs — malloc+free of one size, over and over, with one block of that size kept live
 * (so the page stays in use, as in a program). Args: cycles size. ops = pairs.
 * The bench's instructions section counts it under callgrind at fixed sizes.
 */
#include "common.h"

int main(int argc, char **argv) {
    long cycles = arg_long(argc, argv, 1, 1000000);
    size_t size = (size_t)arg_long(argc, argv, 2, 64);
    if (cycles <= 0 || size == 0) die("arguments");
    char *keep = malloc(size);
    if (!keep) die("malloc");
    keep[0] = 1;
    double start = now_sec();
    for (long i = 0; i < cycles; i++) {
        volatile char *p = malloc(size);
        if (!p) die("malloc");
        p[0] = (char)i;
        free((void *)p);
    }
    double secs = now_sec() - start;
    free(keep);
    report("pairs", (double)cycles, secs, "");
    return 0;
}
