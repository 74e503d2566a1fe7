/*
 * guarded_sample.c — guarded sampling (issue 21): with HAKMEM_GUARD_SAMPLE_MB=1 the program
 * allocates SIZE-byte blocks until one is a guarded sample (hak_sampled), then misuses it.
 * usage: guarded_sample CASE SIZE [any]   (any: without a sample, misuse a plain block)
 *   clean        write every byte of the sample, free it, print "reached end"
 *   overflow     a store at its usable size (the first byte past the block: the guard
 *                page faults). A sample has its bin's block size, as any block of it.
 *   use_after_free   free it, then a store at offset 8 (faults: the slot is protected)
 *   read_after_free  free it, then a load at offset 0 (faults)
 *   underflow    a store one byte before its start, then free (reported at free)
 *   double_free  free it twice (reported at the second free)
 *   after_big    first 4000 blocks of 64 KiB (too big for a sample) are allocated and
 *                freed, then 1000 SIZE-byte blocks are allocated (prints SAMPLED or
 *                NO SAMPLE for those: big blocks must not make small ones due)
 * Prints "SAMPLED after N blocks" when it has one; "NO SAMPLE" and exit 3 when none came.
 * Without hakmem (no hak_sampled: the bench runs it under other allocators) the 1000th
 * block stands in for the sample.
 */
#define _GNU_SOURCE
#include <malloc.h>

#include "test_common.h"

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    const char *c = argv[1];
    size_t n = strtoul(argv[2], NULL, 10);
    /* without hakmem (the bench's peers): the 1000th block stands in for a sample */
    int (*sampled)(const void *) = (int (*)(const void *))dlsym(RTLD_DEFAULT, "hak_sampled");
    enum { MAX = 1 << 20 };
    static void *kept[MAX];
    if (!strcmp(c, "after_big")) {
        enum { BIG = 4000 };
        static void *big[BIG];
        for (int i = 0; i < BIG; i++) REQUIRE((big[i] = malloc(64 << 10)) != NULL);
        for (int i = 0; i < BIG; i++) free(big[i]);
        int found = 0;
        for (int i = 0; i < 1000; i++) {
            REQUIRE((kept[i] = malloc(n)) != NULL);
            if (sampled && sampled(kept[i])) found = 1;
        }
        for (int i = 0; i < 1000; i++) free(kept[i]);
        printf(found ? "SAMPLED\n" : "NO SAMPLE\n");
        return 0;
    }
    volatile unsigned char *p = NULL;
    int count = 0;
    size_t total = 0;
    while (count < MAX && total < (64u << 20)) {
        void *b = malloc(n);
        REQUIRE(b != NULL);
        total += n;
        if (sampled ? sampled(b) : count == 1000) {
            p = b;
            break;
        }
        kept[count++] = b;
    }
    if (!p && argc > 3 && !strcmp(argv[3], "any") && count > 0) p = kept[--count]; /* no sample (check mode, off): a plain block */
    if (!p) {
        printf("NO SAMPLE\n");
        return 3;
    }
    printf("SAMPLED after %d blocks\n", count);
    fflush(stdout);
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)i;
    if (!strcmp(c, "clean")) {
        free((void *)p);
    } else if (!strcmp(c, "overflow")) {
        p[malloc_usable_size((void *)p)] = 1; /* the first byte past the block: the guard page */
        free((void *)p);
    } else if (!strcmp(c, "use_after_free")) {
        free((void *)p);
        p[8] = 1;
    } else if (!strcmp(c, "read_after_free")) {
        free((void *)p);
        printf("read %d\n", p[0]);
    } else if (!strcmp(c, "underflow")) {
        p[-1] = 1;
        free((void *)p);
    } else if (!strcmp(c, "double_free")) {
        free((void *)p);
        free((void *)p);
    } else {
        return 2;
    }
    for (int i = 0; i < count; i++) free(kept[i]);
    printf("reached end\n");
    return 0;
}
