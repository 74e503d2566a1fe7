/*
 * secrets.c — what a freed block shows of the process's other secrets (issue 21).
 * glibc makes the stack-protector canary and the pointer guard of the auxiliary vector's
 * AT_RANDOM bytes. hakmem writes its free key into every freed block, so its secrets must
 * not be made of AT_RANDOM (regression: block.zig mixed them out of it, invertibly).
 * This program defines getauxval itself (built with -rdynamic, so the library's call binds
 * here): it counts every request for AT_RANDOM made by anyone but main, and answers with
 * the real bytes. Then it frees blocks of several sizes and reads their words: none may
 * equal or contain an 8-byte window of AT_RANDOM (nor the key with its low bit set).
 * Prints "PASS secrets".
 */
#define _GNU_SOURCE
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "test_common.h"

static int at_random_requests;
static int from_main;

/* The real value, read from /proc/self/auxv (no libc getauxval: this is it). */
static unsigned long auxv_lookup(unsigned long type) {
    static unsigned long pairs[128];
    static int loaded;
    if (!loaded) {
        long fd = syscall(SYS_open, "/proc/self/auxv", 0);
        if (fd < 0) return 0;
        syscall(SYS_read, fd, pairs, sizeof pairs - 2 * sizeof(unsigned long));
        syscall(SYS_close, fd);
        loaded = 1;
    }
    for (int i = 0; i + 1 < 128 && pairs[i] != 0; i += 2)
        if (pairs[i] == type) return pairs[i + 1];
    return 0;
}

unsigned long getauxval(unsigned long type) {
    if (type == AT_RANDOM && !from_main) __atomic_add_fetch(&at_random_requests, 1, __ATOMIC_RELAXED);
    return auxv_lookup(type);
}

static int reveals(const unsigned char *word, const unsigned char *random) {
    uint64_t w;
    memcpy(&w, word, 8);
    for (int at = 0; at + 8 <= 16; at++) {
        uint64_t r;
        memcpy(&r, random + at, 8);
        if (w == r || w == (r | 1) || (w & ~1ull) == (r & ~1ull)) return 1;
    }
    return 0;
}

int main(void) {
    require_hakmem();
    from_main = 1;
    const unsigned char *random = (const unsigned char *)getauxval(AT_RANDOM);
    from_main = 0;
    REQUIRE(random != NULL);
    static const size_t sizes[] = {16, 64, 3000, 40000};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        volatile unsigned char *blocks[8];
        for (int i = 0; i < 8; i++) blocks[i] = malloc(sizes[s]);
        for (int i = 0; i < 8; i++) free((void *)blocks[i]);
        for (int i = 0; i < 8; i++) {
            unsigned char copy[32];
            for (int k = 0; k < 32; k++) copy[k] = blocks[i][k]; /* read after free: what a program could see */
            for (int k = 0; k + 8 <= 32; k += 8) CHECK(!reveals(copy + k, random));
        }
    }
    CHECK(at_random_requests == 0);
    if (at_random_requests) fprintf(stderr, "secrets: AT_RANDOM was asked for %d time(s)\n", at_random_requests);
    if (g_failures) return 1;
    printf("PASS secrets\n");
    return 0;
}
