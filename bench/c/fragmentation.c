/*
 * fragmentation — sawtooth lifetimes. Args: waves objects_per_wave [min max seed].
 * Every wave allocates objects_per_wave blocks of min..max bytes and frees 7 of 8 of
 * them at once; the survivors accumulate for a period of 8 waves and are then freed
 * except one in 64 (a slowly growing long-lived residue), so the heap repeatedly grows
 * and shrinks around pinned blocks. Reports peak RSS and the RSS after everything but
 * the residue is freed (final_rss_kb). ops = blocks allocated.
 */
#include "common.h"

#define PERIOD 8

typedef struct { void **items; size_t count, cap; } vec_t;

static void vec_push(vec_t *v, void *p) {
    if (v->count == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 1024;
        v->items = realloc(v->items, v->cap * sizeof(void *));
        if (!v->items) die("realloc");
    }
    v->items[v->count++] = p;
}

static void run_wave(vec_t *survivors, void **wave, long n, size_t min, size_t max, rng_t *rng) {
    for (long i = 0; i < n; i++) {
        size_t size = rng_range(rng, min, max);
        char *p = malloc(size);
        if (!p) die("malloc");
        memset(p, (int)i, size < 256 ? size : 256);
        wave[i] = p;
    }
    for (long i = 0; i < n; i++) {
        if (i % 8 == 0) vec_push(survivors, wave[i]);
        else free(wave[i]);
    }
}

/* Frees the survivors except one in 64, which move to the residue. */
static void cut_sawtooth(vec_t *survivors, vec_t *residue) {
    for (size_t i = 0; i < survivors->count; i++) {
        if (i % 64 == 0) vec_push(residue, survivors->items[i]);
        else free(survivors->items[i]);
    }
    survivors->count = 0;
}

int main(int argc, char **argv) {
    long waves = arg_long(argc, argv, 1, 200);
    long per_wave = arg_long(argc, argv, 2, 10000);
    size_t min = (size_t)arg_long(argc, argv, 3, 16);
    size_t max = (size_t)arg_long(argc, argv, 4, 4096);
    uint64_t seed = (uint64_t)arg_long(argc, argv, 5, 42);
    if (waves <= 0 || per_wave <= 0 || min == 0 || max < min) die("arguments");

    void **wave = malloc((size_t)per_wave * sizeof(void *));
    if (!wave) die("malloc");
    vec_t survivors = {0}, residue = {0};
    rng_t rng;
    rng_seed(&rng, seed);

    double start = now_sec();
    for (long w = 0; w < waves; w++) {
        run_wave(&survivors, wave, per_wave, min, max, &rng);
        if ((w + 1) % PERIOD == 0) cut_sawtooth(&survivors, &residue);
    }
    cut_sawtooth(&survivors, &residue);
    double secs = now_sec() - start;
    long final_rss = rss_kib();

    for (size_t i = 0; i < residue.count; i++) free(residue.items[i]);
    free(residue.items);
    free(survivors.items);
    free(wave);
    char extra[96];
    snprintf(extra, sizeof extra, " final_rss_kb=%ld residue_blocks=%zu", final_rss, residue.count);
    report("fragmentation", (double)(waves * per_wave), secs, extra);
    return 0;
}
