/*
 * hakmem.h — the C API of libhakmem.so.
 *
 * hakmem is also a drop-in malloc: with LD_PRELOAD=libhakmem.so the standard names
 * (malloc, free, calloc, realloc, reallocarray, posix_memalign, aligned_alloc, memalign,
 * valloc, pvalloc, malloc_usable_size, cfree, malloc_trim, mallinfo2) are served by it.
 * The hak_* functions below are the same allocator with explicit errors, for bun:ffi and
 * for C programs that link against it.
 *
 * Tiers (chosen by requested size under the current thresholds):
 *   tiny  : size <= tiny_max   (default 1024)     64 KiB pages, per-thread free lists
 *   mid   : size <= mid_max    (default 1 MiB)    multi-slice pages sized per class
 *   large : size >  mid_max                       one OS mapping per block, cached
 * free/realloc/usable_size never depend on the thresholds: a block's page says its tier.
 */
#ifndef HAKMEM_H
#define HAKMEM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Return codes of hak_free / hak_set_thresholds / hak_owns. */
#define HAK_OK              0
#define HAK_ERR_NOT_OWNED  (-1)  /* the pointer is not in memory hakmem mapped           */
#define HAK_ERR_INVALID    (-2)  /* hakmem memory, but not a live block start (interior,
                                    or detectably already freed); nothing was changed      */
#define HAK_ERR_ARG        (-3)  /* an argument is out of range                           */

/* Tiers, as returned by hak_route and used to index stats. */
#define HAK_TIER_TINY  0
#define HAK_TIER_MID   1
#define HAK_TIER_LARGE 2

/* Allocation. Failure returns NULL with errno = ENOMEM (EINVAL for a bad alignment). */
void  *hak_alloc(size_t size);
void  *hak_calloc(size_t count, size_t size);
void  *hak_realloc(void *ptr, size_t size);   /* ptr NULL = alloc; on failure ptr stays valid */
void  *hak_aligned_alloc(size_t alignment, size_t size); /* alignment: power of two */
int    hak_free(void *ptr);                   /* HAK_OK (also for NULL) or HAK_ERR_*        */
size_t hak_usable_size(const void *ptr);      /* 0 when ptr is not a live hakmem block      */
int    hak_owns(const void *ptr);             /* HAK_OK: a live block start; else HAK_ERR_* */

/* Routing. */
int    hak_route(size_t size);                /* HAK_TIER_* under the current thresholds    */
size_t hak_tiny_max(void);
size_t hak_mid_max(void);
size_t hak_tiny_max_limit(void);              /* largest value tiny_max may take            */
size_t hak_mid_max_limit(void);               /* largest value mid_max may take             */
int    hak_set_thresholds(size_t tiny_max, size_t mid_max); /* HAK_OK or HAK_ERR_ARG       */

/* Size classes: every size 0..hak_mid_max_limit() maps to one class. */
uint32_t hak_class_count(void);
size_t   hak_class_size(uint32_t cls);        /* block size of a class, 0 if out of range   */
int32_t  hak_class_of(size_t size);           /* class of a size, -1 above the mid limit    */

/* Statistics. Counters are summed over all threads (live and exited).
 * hak_stats_read fills out[0..n) with HAK_STAT_FIELDS counters per tier, tier-major
 * (out[tier * HAK_STAT_FIELDS + field]), followed by HAK_STAT_GLOBALS global counters;
 * it returns the number of values written. Names: hak_stat_name(i) for i in
 * [0, HAK_STAT_FIELDS + HAK_STAT_GLOBALS). */
#define HAK_STAT_FIELDS  12
#define HAK_STAT_GLOBALS 12
/* per-tier fields */
#define HAK_STAT_ALLOCS          0
#define HAK_STAT_FREES           1   /* all frees, local and remote                        */
#define HAK_STAT_REMOTE_FREES    2   /* frees by a thread other than the block's owner     */
#define HAK_STAT_LIVE_BLOCKS     3
#define HAK_STAT_LIVE_BYTES      4   /* usable bytes of live blocks                        */
#define HAK_STAT_MAPPED_BYTES    5   /* memory spans/mappings in use by this tier          */
#define HAK_STAT_RESIDENT_BYTES  6   /* estimate: mapped minus purged                      */
#define HAK_STAT_PURGES          7   /* ranges returned to the OS                          */
#define HAK_STAT_PURGED_BYTES    8
#define HAK_STAT_CACHE_HITS      9   /* large: mapping cache hits                          */
#define HAK_STAT_CACHE_MISSES   10   /* large: mapping cache misses                        */
#define HAK_STAT_PAGES          11   /* pages (tiny/mid) or mappings (large) in use        */
/* globals, after the 3 tiers */
#define HAK_STAT_SEGMENTS_MAPPED     0
#define HAK_STAT_SEGMENTS_ABANDONED  1
#define HAK_STAT_SEGMENTS_ADOPTED    2
#define HAK_STAT_THREADS_LIVE        3
#define HAK_STAT_THREADS_TOTAL       4
#define HAK_STAT_OS_MAPPED_BYTES     5  /* everything mapped from the OS right now         */
#define HAK_STAT_OS_RESIDENT_BYTES   6  /* estimate                                         */
#define HAK_STAT_LARGE_CACHED_BYTES  7
#define HAK_STAT_THREAD_CACHE_BYTES  8  /* freed blocks held in thread caches (estimate)   */
#define HAK_STAT_THREAD_CACHE_GROWS  9  /* thread-cache capacity doublings (adaptation)    */
#define HAK_STAT_THREAD_CACHE_SHRINKS 10 /* halvings of idle thread caches                 */
#define HAK_STAT_LARGE_CACHE_LIMIT   11 /* current byte limit of the large-mapping cache  */
size_t      hak_stats_read(uint64_t *out, size_t n);
const char *hak_stat_name(uint32_t index);
void        hak_stats_reset(void);            /* zeroes event counters (not live/mapped)    */
void        hak_stats_print(void);            /* the HAKMEM_STATS=1 summary, to stderr      */

/* Check mode (also HAKMEM_CHECK=1 / =warn): every block gets a canary and a trailer, freed
 * blocks a pattern; double frees, interior/foreign frees, overflows and writes to freed
 * blocks are reported on stderr (then abort, or continue in warn mode). */
#define HAK_CHECK_OFF   0
#define HAK_CHECK_ABORT 1
#define HAK_CHECK_WARN  2
int    hak_set_check_mode(int mode);          /* before the first allocation only, else HAK_ERR_INVALID */
int    hak_check_mode(void);

/* Memory return: purge empty memory now (all of it when force != 0). */
void   hak_collect(int force);

/* Identity. */
const char *hak_version(void);
const char *hak_build_id(void);               /* changes with every source change           */

#ifdef __cplusplus
}
#endif
#endif
