/*
 * idle_return.c — a program that fills MIB MiB (tiny, mid and large blocks, every page
 * touched), frees it all, and then never calls the allocator again: it sleeps, sampling
 * its RSS every 100 ms for WAIT_MS. Prints "peak_kib=… idle_kib=… idle_pct=…" (idle: the
 * last sample, with the RSS before the fill subtracted from both). With
 * HAKMEM_BACKGROUND=1 hakmem's background thread returns the freed memory; without it,
 * memory goes back only from malloc/free's slow paths, which an idle program never takes.
 *
 * usage: idle_return MIB WAIT_MS
 */
#include "test_common.h"

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    size_t total = strtoull(argv[1], NULL, 10) << 20;
    long wait_ms = strtol(argv[2], NULL, 10);
    static const size_t sizes[] = {512, 4000, 48 * 1024, 8 << 20};
    size_t count_max = total / 512 + 16;
    void **blocks = calloc(count_max, sizeof(void *));
    if (!blocks) return 2;
    long base_kib = rss_kib();
    size_t count = 0, filled = 0;
    for (size_t k = 0; filled < total && count < count_max; k++) {
        size_t size = sizes[k % 4];
        char *p = malloc(size);
        if (!p) return 3;
        for (size_t off = 0; off < size; off += 4096) p[off] = 1;
        blocks[count++] = p;
        filled += size;
    }
    long peak_kib = rss_kib() - base_kib;
    for (size_t i = 0; i < count; i++) free(blocks[i]);
    long idle_kib = 0;
    for (long waited = 0; waited < wait_ms; waited += 100) {
        sleep_ms(100);
        idle_kib = rss_kib() - base_kib;
    }
    printf("peak_kib=%ld idle_kib=%ld idle_pct=%.1f\n", peak_kib, idle_kib, 100.0 * (double)idle_kib / (double)peak_kib);
    return 0;
}
