/*
 * mpsc.h - an intrusive multi-producer, single-consumer list of nodes, for
 * hand-offs between shards and the storage thread.
 *
 * Producers push a whole chain with one compare-and-swap (release); the
 * consumer takes everything with one exchange (acquire) and gets it back in
 * push order. Each producer's nodes stay in the order it pushed them. No
 * locks, no capacity limit (the nodes are the caller's), no ABA problem
 * (the consumer only ever takes the whole list).
 *
 * A chain is built LIFO by the producer (mpsc_chain_add puts the newest
 * first), which is the order the stack needs; mpsc_take_all reverses once.
 */
#ifndef RMQ_BROKER_MPSC_H
#define RMQ_BROKER_MPSC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

struct mpsc_node {
    struct mpsc_node *next;
};

struct mpsc {
    _Alignas(64) _Atomic(struct mpsc_node *) top;
};

/* A producer's private chain, newest first. */
struct mpsc_chain {
    struct mpsc_node *head; /* newest */
    struct mpsc_node *tail; /* oldest */
    size_t n;
};

static inline void mpsc_chain_add(struct mpsc_chain *ch, struct mpsc_node *n)
{
    n->next = ch->head;
    ch->head = n;
    if (!ch->tail)
        ch->tail = n;
    ch->n++;
}

/* Publish a chain (emptied). Returns false if it was empty. */
static inline bool mpsc_push_chain(struct mpsc *q, struct mpsc_chain *ch)
{
    struct mpsc_node *old;
    if (!ch->head)
        return false;
    old = atomic_load_explicit(&q->top, memory_order_relaxed);
    do
        ch->tail->next = old;
    while (!atomic_compare_exchange_weak_explicit(&q->top, &old, ch->head, memory_order_release,
                                                  memory_order_relaxed));
    ch->head = ch->tail = NULL;
    ch->n = 0;
    return true;
}

/* Take every node, oldest first (NULL if none). Consumer only. */
static inline struct mpsc_node *mpsc_take_all(struct mpsc *q)
{
    struct mpsc_node *l = atomic_exchange_explicit(&q->top, NULL, memory_order_acquire), *r = NULL;
    while (l) {
        struct mpsc_node *nx = l->next;
        l->next = r;
        r = l;
        l = nx;
    }
    return r;
}

static inline bool mpsc_nonempty(struct mpsc *q)
{
    return atomic_load_explicit(&q->top, memory_order_acquire) != NULL;
}

#endif
