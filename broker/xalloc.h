/*
 * xalloc.h - allocation for broker glue code: abort on OOM (STYLE.md 2.3).
 * Reusable modules (proto/, storage/, trie.c) return -ENOMEM instead.
 */
#ifndef RMQ_BROKER_XALLOC_H
#define RMQ_BROKER_XALLOC_H

#include <stdio.h>
#include <stdlib.h>

static inline void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "ringmqd: out of memory allocating %zu bytes\n", n);
        abort();
    }
    return p;
}

static inline void *xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (!p) {
        fprintf(stderr, "ringmqd: out of memory allocating %zu x %zu bytes\n", n, sz);
        abort();
    }
    return p;
}

static inline void *xrealloc(void *old, size_t n)
{
    void *p = realloc(old, n ? n : 1);
    if (!p) {
        fprintf(stderr, "ringmqd: out of memory reallocating %zu bytes\n", n);
        abort();
    }
    return p;
}

#endif
