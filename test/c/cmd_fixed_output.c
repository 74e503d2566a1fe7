/*
 * cmd_fixed_output.c — a program whose output does not depend on the allocator: builds a
 * few thousand strings of varied sizes, sorts them, and prints a checksum and the count.
 * test/bench-smoke.test.ts runs it through `bench --cmd`: every allocator's run must match
 * glibc's stdout.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int by_text(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 20000;
    if (n <= 0) n = 20000;
    char **words = malloc((size_t)n * sizeof *words);
    if (!words) return 2;
    uint64_t x = 42;
    for (int i = 0; i < n; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        size_t len = 1 + (size_t)(x >> 58);
        words[i] = malloc(len + 1);
        if (!words[i]) return 2;
        for (size_t k = 0; k < len; k++) words[i][k] = (char)('a' + (x >> (k % 50)) % 26);
        words[i][len] = 0;
    }
    qsort(words, (size_t)n, sizeof *words, by_text);
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < n; i++) {
        for (const char *p = words[i]; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
        free(words[i]);
    }
    free(words);
    printf("%d words, checksum %016llx\n", n, (unsigned long long)h);
    return 0;
}
