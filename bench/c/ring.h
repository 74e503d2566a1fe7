/*
 * ring.h — a bounded single-producer single-consumer ring of pointers, used by the
 * workloads that hand blocks from one thread to another (mt_remote, prodcons).
 */
#ifndef BENCH_RING_H
#define BENCH_RING_H

#include "common.h"

#define RING_CAP 4096 /* power of two */

typedef struct {
    _Alignas(64) _Atomic size_t head; /* next slot the consumer reads  */
    _Alignas(64) _Atomic size_t tail; /* next slot the producer writes */
    _Alignas(64) void *slots[RING_CAP];
} ring_t;

static inline int ring_push(ring_t *r, void *p) {
    size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    size_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    if (tail - head == RING_CAP) return 0;
    r->slots[tail & (RING_CAP - 1)] = p;
    atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
    return 1;
}

static inline size_t ring_count(ring_t *r) {
    return atomic_load_explicit(&r->tail, memory_order_acquire) -
           atomic_load_explicit(&r->head, memory_order_acquire);
}

static inline void *ring_pop(ring_t *r) {
    size_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    size_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    if (head == tail) return NULL;
    void *p = r->slots[head & (RING_CAP - 1)];
    atomic_store_explicit(&r->head, head + 1, memory_order_release);
    return p;
}

#endif
