/*
 * abandoned_return.c — memory left by an exited thread goes back to the OS.
 * A thread fills MIB MiB with tiny and mid blocks (every page touched), frees all but
 * one block in 256 (so its segments still hold live blocks and are abandoned, not
 * released, when it exits) and exits. The main thread then keeps a light allocation
 * activity (its slow paths run maintenance) for WAIT_MS, sampling RSS every 100 ms.
 * Prints "peak_kib=… after_kib=… after_pct=…" (RSS before the fill subtracted). An
 * exited thread's segments keep their empty pages resident for quick adoption; if nobody
 * adopts them they must still be purged along the decay time. With "idle" the main thread
 * does nothing (run it with HAKMEM_BACKGROUND=1: only the background thread can purge);
 * with "active" it allocates a little (and may adopt the segments itself).
 *
 * usage: abandoned_return MIB WAIT_MS idle|active
 */
#include "test_common.h"
#include <pthread.h>

static size_t total;
static void **kept;
static size_t kept_count;

static void *filler(void *arg) {
    (void)arg;
    static const size_t sizes[] = {700, 4000, 24 * 1024, 48 * 1024};
    size_t count_max = total / 700 + 16;
    void **blocks = calloc(count_max, sizeof(void *));
    if (!blocks) exit(2);
    size_t count = 0, filled = 0;
    for (size_t k = 0; filled < total && count < count_max; k++) {
        size_t size = sizes[k % 4];
        char *p = malloc(size);
        if (!p) exit(3);
        for (size_t off = 0; off < size; off += 4096) p[off] = 1;
        blocks[count++] = p;
        filled += size;
    }
    for (size_t i = 0; i < count; i++) {
        if (i % 256 == 0) kept[kept_count++] = blocks[i];
        else free(blocks[i]);
    }
    free(blocks);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    total = strtoull(argv[1], NULL, 10) << 20;
    long wait_ms = strtol(argv[2], NULL, 10);
    int active = argc > 3 && strcmp(argv[3], "active") == 0;
    kept = calloc(total / 700 / 256 + 16, sizeof(void *));
    if (!kept) return 2;
    long base_kib = rss_kib();
    pthread_t t;
    if (pthread_create(&t, NULL, filler, NULL)) return 2;
    pthread_join(t, NULL);
    long peak_kib = peak_rss_kib() - base_kib;
    long after_kib = 0;
    for (long waited = 0; waited < wait_ms; waited += 100) {
        if (active)
            for (int i = 0; i < 200; i++) free(malloc((size_t)(16 + (i * 997) % 60000)));
        sleep_ms(100);
        after_kib = rss_kib() - base_kib;
    }
    for (size_t i = 0; i < kept_count; i++) free(kept[i]);
    printf("peak_kib=%ld after_kib=%ld after_pct=%.1f\n", peak_kib, after_kib, 100.0 * (double)after_kib / (double)peak_kib);
    return 0;
}
