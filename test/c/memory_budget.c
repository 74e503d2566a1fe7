/*
 * memory_budget.c — hakmem under a hand-set budget (HAKMEM_MEMORY_LIMIT_MB).
 *
 *   memory_budget waves BUDGET_MIB TOTAL_MIB LIVE_MIB
 *     allocates TOTAL_MIB in waves of LIVE_MIB live (small and mid blocks, then large ones,
 *     every byte written), frees each wave, and checks that every malloc succeeded and that
 *     the peak RSS stayed within BUDGET_MIB above what the process held before the first wave.
 *   memory_budget exceed BUDGET_MIB
 *     allocates large blocks, then small ones, until malloc returns NULL: it must (with ENOMEM)
 *     before the blocks reach BUDGET_MIB, and after everything is freed malloc works again.
 */
#include "test_common.h"

#include <errno.h>

/* Even waves take small and mid blocks, odd waves large ones: what one wave leaves retained
 * is of no use to the next, so only purging keeps the process within the budget. */
static size_t block_size(rng_t *rng, size_t wave, size_t i) {
    switch (wave % 2 ? 3 : i % 3) {
    case 0: return rng_range(rng, 16, 1024);                 /* tiny */
    case 1: return rng_range(rng, 1024, 32 << 10);           /* mid */
    case 2: return rng_range(rng, 64 << 10, 256 << 10);      /* mid, a page of its own */
    default: return rng_range(rng, 1 << 20, 8 << 20);        /* large */
    }
}

static int waves(long budget_mib, long total_mib, long live_mib) {
    enum { max_blocks = 1 << 20 };
    static void *blocks[max_blocks];
    const long base_kib = rss_kib();
    rng_t rng;
    rng_seed(&rng, 42);
    size_t total = 0, wave = 0;
    const size_t total_bytes = (size_t)total_mib << 20, live_bytes = (size_t)live_mib << 20;
    while (total < total_bytes) {
        size_t n = 0, live = 0;
        while (live < live_bytes && n < max_blocks) {
            size_t size = block_size(&rng, wave, n);
            char *p = malloc(size);
            if (!p) {
                fprintf(stderr, "wave %zu: malloc(%zu) returned NULL with %zu MiB live\n", wave, size, live >> 20);
                CHECK(p != NULL);
                break;
            }
            memset(p, (int)n, size);
            blocks[n++] = p;
            live += size;
        }
        total += live;
        long rss = rss_kib();
        printf("wave %zu: %zu blocks, %zu MiB live, rss %ld MiB\n", wave, n, live >> 20, rss >> 10);
        for (size_t i = 0; i < n; i++) free(blocks[i]);
        wave++;
    }
    const long peak_kib = peak_rss_kib();
    printf("total %zu MiB in %zu waves; peak rss %ld MiB, %ld MiB above the start\n", total >> 20, wave,
           peak_kib >> 10, (peak_kib - base_kib) >> 10);
    CHECK(peak_kib - base_kib <= budget_mib << 10);
    return finish("memory_budget waves");
}

/* Fills the budget with blocks of `first` bytes, then of a quarter of that, ... down to
 * `last`, until malloc returns NULL (with ENOMEM); frees them all. Returns the bytes held. */
static size_t fill(const char *round, size_t first, size_t last, long budget_mib) {
    enum { max_blocks = 1 << 21 };
    static void *blocks[max_blocks];
    size_t n = 0, bytes = 0;
    int got_null = 0;
    for (size_t size = first; size >= last; size /= 4) {
        while (n < max_blocks) {
            errno = 0;
            char *p = malloc(size);
            if (!p) {
                CHECK(errno == ENOMEM);
                got_null = 1;
                break;
            }
            memset(p, 1, size);
            blocks[n++] = p;
            bytes += size;
        }
    }
    for (size_t i = 0; i < n; i++) free(blocks[i]);
    printf("%s: NULL after %zu MiB in %zu blocks\n", round, bytes >> 20, n); /* stdio may malloc: after the frees */
    CHECK(got_null);
    CHECK(bytes <= (size_t)budget_mib << 20);
    CHECK(bytes >= ((size_t)budget_mib << 20) / 2); /* the budget is used, not refused early */
    return bytes;
}

/* Large blocks first, then small ones: the second round gets the budget only if what the
 * first left retained is purged when the budget runs out. */
static int exceed(long budget_mib) {
    fill("large blocks, 3 MiB down to 48 KiB", 3 << 20, 48 << 10, budget_mib);
    fill("small blocks of 1000 bytes", 1000, 1000, budget_mib);
    void *again = malloc(5 << 20), *small = malloc(100);
    CHECK(again != NULL && small != NULL);
    free(again);
    free(small);
    return finish("memory_budget exceed");
}

int main(int argc, char **argv) {
    require_hakmem();
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 5 && strcmp(argv[1], "waves") == 0) return waves(atol(argv[2]), atol(argv[3]), atol(argv[4]));
    if (argc >= 3 && strcmp(argv[1], "exceed") == 0) return exceed(atol(argv[2]));
    fprintf(stderr, "usage: memory_budget waves BUDGET_MIB TOTAL_MIB LIVE_MIB | exceed BUDGET_MIB\n");
    return 2;
}
