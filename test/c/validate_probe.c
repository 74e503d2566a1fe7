/*
 * validate_probe.c — do the checked library's validators run? Frees 1024 blocks of 64 B
 * (the oldest go back to their page, keyed as free), optionally overwrites the key word of
 * the first one (a use after free hakmem's fast paths do not look at), churns other sizes
 * (slow paths: refills and flushes), then calls hak_validate() if the preloaded library has
 * it. Prints "validate=<rc>" and "PASS validate_probe".
 *
 *   validate_probe clean     nothing broken: every library runs to the end, validate=0
 *   validate_probe corrupt   the checked library aborts at a slow path ("hakmem: validate:
 *                            ..."); the ReleaseFast one runs on and hak_validate() says -2
 */
#include "test_common.h"

#define BLOCKS 1024

int main(int argc, char **argv) {
    require_hakmem();
    int corrupt = argc > 1 && strcmp(argv[1], "corrupt") == 0;
    static void *blocks[BLOCKS];
    for (int i = 0; i < BLOCKS; i++) REQUIRE((blocks[i] = malloc(64)) != NULL);
    for (int i = 0; i < BLOCKS; i++) free(blocks[i]);
    if (corrupt) ((volatile uint64_t *)blocks[0])[1] = 0; /* the free block's key word */
    static void *churn[256];
    for (int round = 0; round < 40; round++) {
        size_t size = 128 + (size_t)round * 200; /* never 64 B: block 0 stays on its page */
        for (int i = 0; i < 256; i++) REQUIRE((churn[i] = malloc(size)) != NULL);
        for (int i = 0; i < 256; i++) free(churn[i]);
    }
    int (*validate)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "hak_validate");
    printf("validate=%d\n", validate ? validate() : 0);
    fflush(stdout);
    return finish("validate_probe");
}
