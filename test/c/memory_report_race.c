/*
 * memory_report_race.c — hak_memory_report while other threads map and unmap segments and
 * large blocks (the report reads segment headers and large headers of memory another
 * thread may unmap at any moment: it must never fault).
 *
 *   memory_report_race THREADS REPORTS
 */
#include "test_common.h"

#include <malloc.h>
#include <pthread.h>

static volatile int g_stop;

static void *churn(void *arg) {
    rng_t rng;
    rng_seed(&rng, (uint64_t)(uintptr_t)arg);
    void *slots[64] = {0};
    while (!g_stop) {
        int i = (int)rng_range(&rng, 0, 63);
        free(slots[i]);
        size_t kind = rng_range(&rng, 0, 9);
        size_t size = kind < 6 ? rng_range(&rng, 16, 4096) : kind < 9 ? rng_range(&rng, 64 << 10, 1 << 20) : rng_range(&rng, 2 << 20, 300 << 20);
        slots[i] = malloc(size);
        if (slots[i]) memset(slots[i], 1, size < 65536 ? size : 65536);
        if (rng_range(&rng, 0, 200) == 0) malloc_trim(0); /* unmaps cached segments and mappings */
    }
    for (int i = 0; i < 64; i++) free(slots[i]);
    return NULL;
}

int main(int argc, char **argv) {
    require_hakmem();
    const long threads = arg_long(argc, argv, 1, 3), reports = arg_long(argc, argv, 2, 500);
    size_t (*report)(uint64_t *, size_t) = (size_t (*)(uint64_t *, size_t))hak_symbol("hak_memory_report");
    REQUIRE(report != NULL);
    pthread_t t[16];
    for (long i = 0; i < threads && i < 16; i++) pthread_create(&t[i], NULL, churn, (void *)(uintptr_t)(i + 1));
    uint64_t v[64];
    for (long r = 0; r < reports; r++) CHECK(report(v, 64) > 0);
    g_stop = 1;
    for (long i = 0; i < threads && i < 16; i++) pthread_join(t[i], NULL);
    return finish("memory_report_race");
}
