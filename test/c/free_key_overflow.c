/*
 * free_key_overflow.c — a linear overflow of a live block into the free block after it
 * (issue 21, hardening): normal mode finds the free block's key word overwritten when its
 * thread cache gives it back to its page (flush) or takes it from its page (refill), and
 * stops, naming the block before it.
 * usage: free_key_overflow flush|refill|clean
 *   Allocates 64-byte blocks until two are adjacent (A, then B right after it), prints
 *   "A=<addr> B=<addr>", frees B, then
 *   flush    overflows A by 16 bytes (B's link and key), frees 600 more blocks: the cache
 *            overflows and gives B back to its page
 *   refill   frees 600 more blocks first (B goes back to its page), overflows A, then
 *            allocates 2000 blocks: the cache refills from B's page
 *   clean    the flush case without the overflow
 * Prints "NOT DETECTED" and exits 0 when the program gets to its end.
 */
#include "test_common.h"

#define COUNT 600
static void *blocks[COUNT];
static void *more[2000];
static volatile size_t overflow_bytes = 64 + 16; /* (volatile: no compile-time bound check) */

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const char *c = argv[1];
    unsigned char *a = NULL, *b = NULL;
    for (int i = 0; i < COUNT; i++) {
        blocks[i] = malloc(64);
        REQUIRE(blocks[i] != NULL);
        if (!b && i > 0 && (unsigned char *)blocks[i] == (unsigned char *)blocks[i - 1] + 64) {
            a = blocks[i - 1];
            b = blocks[i];
            blocks[i - 1] = blocks[i] = NULL;
        }
    }
    REQUIRE(a && b);
    printf("A=%p B=%p\n", (void *)a, (void *)b);
    fflush(stdout);
    free(b);
    if (!strcmp(c, "flush") || !strcmp(c, "clean")) {
        if (!strcmp(c, "flush")) memset(a, 0x41, overflow_bytes);
        for (int i = 0; i < COUNT; i++) free(blocks[i]);
    } else if (!strcmp(c, "refill")) {
        for (int i = 0; i < COUNT; i++) free(blocks[i]);
        memset(a, 0x41, overflow_bytes);
        for (int i = 0; i < 2000; i++) {
            more[i] = malloc(64);
            REQUIRE(more[i] != NULL);
        }
    } else {
        return 2;
    }
    printf("NOT DETECTED\n");
    return 0;
}
