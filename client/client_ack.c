/*
 * client_ack.c - the table of outstanding rmq_publish_ack_async() calls of
 * a client: one entry per publish whose PubAck has not come back yet.
 *
 *   API thread (rmq_publish_ack_async)        I/O thread
 *   ----------------------------------        ----------
 *   lock; id = ++req_seq; take an entry;      inbox MESSAGE "<inbox><id>":
 *   append PUBLISH{reply = "<inbox><id>"};      lock; take entry id; unlock
 *   insert entry (hash + deadline list);        decode PubAck, run cb
 *   unlock                                    each loop turn: head deadline
 *                                               passed? cb(-ETIMEDOUT)
 *                                             at close: cb(RMQ_ECLOSED) for all
 *
 * Every entry gets exactly one callback: whoever takes it out of the table
 * under c->mu (the reply, the timeout or the close) runs it, on the I/O
 * thread, with no lock held. The frame and the entry go in under the same
 * hold of mu, so a reply can never arrive before its entry, and nothing is
 * inserted once the client is closing (client_pub_append_locked() refuses).
 *
 * Costs: lookup and removal O(1) (chained hash on id & mask, ids are
 * sequential); insertion into the deadline list O(1) when the calls share a
 * timeout (it lands at the tail), and walks back past later deadlines
 * otherwise. Entries are recycled through a free list (up to
 * ACK_FREE_MAX), so a steady window of outstanding acks allocates nothing
 * per call.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client_int.h"

/* First hash size; the table doubles when it holds more entries than buckets. */
#define ACK_BUCKETS_MIN 64
/* Recycled entries kept for reuse (~3.5 MiB); beyond, they are freed, so a
 * burst does not pin its peak until rmq_close(). */
#define ACK_FREE_MAX 65536

static size_t ack_bucket(const struct client_acks *t, uint64_t id)
{
    return (size_t)id & (t->nbuckets - 1);
}

/* Double the bucket array. On -ENOMEM the table keeps working, only with
 * longer chains, so the failure is not reported. */
static void acks_grow_locked(struct client_acks *t)
{
    size_t nb = t->nbuckets ? t->nbuckets * 2 : ACK_BUCKETS_MIN;
    struct client_ack **b = calloc(nb, sizeof(*b));

    if (b == NULL)
        return;
    for (size_t i = 0; i < t->nbuckets; i++) {
        struct client_ack *a = t->buckets[i], *next;
        for (; a; a = next) {
            next = a->hnext;
            a->hnext = b[(size_t)a->id & (nb - 1)];
            b[(size_t)a->id & (nb - 1)] = a;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = nb;
}

/* Insert a into the deadline list, which stays sorted (earliest first). */
static void deadline_insert(struct client_acks *t, struct client_ack *a)
{
    struct client_ack *after = t->tail;

    while (after && after->deadline_ns > a->deadline_ns)
        after = after->prev;
    a->prev = after;
    a->next = after ? after->next : t->head;
    if (a->next)
        a->next->prev = a;
    else
        t->tail = a;
    if (after)
        after->next = a;
    else
        t->head = a;
}

static void deadline_remove(struct client_acks *t, struct client_ack *a)
{
    if (a->deadline_ns == INT64_MAX)
        return; /* never in the list */
    if (a->prev)
        a->prev->next = a->next;
    else
        t->head = a->next;
    if (a->next)
        a->next->prev = a->prev;
    else
        t->tail = a->prev;
    a->prev = a->next = NULL;
}

/*
 * An entry for a new call, from the free list or the heap; the caller fills
 * id, deadline_ns, cb and arg, then inserts it or recycles it. Also makes
 * sure the table has buckets, so that the insertion cannot fail. Caller
 * holds c->mu. NULL when out of memory.
 */
struct client_ack *client_ack_alloc_locked(rmq_client *c)
{
    struct client_ack *a = c->acks.free;

    if (c->acks.nbuckets == 0) {
        acks_grow_locked(&c->acks);
        if (c->acks.nbuckets == 0)
            return NULL;
    }
    if (a == NULL)
        return calloc(1, sizeof(*a));
    c->acks.free = a->hnext;
    c->acks.nfree--;
    memset(a, 0, sizeof(*a));
    return a;
}

/* Give an entry that is not in the table back to the free list (or to the
 * heap when the list is full). Caller holds c->mu. */
void client_ack_recycle_locked(rmq_client *c, struct client_ack *a)
{
    if (c->acks.nfree >= ACK_FREE_MAX) {
        free(a);
        return;
    }
    a->hnext = c->acks.free;
    c->acks.free = a;
    c->acks.nfree++;
}

/* Put a (from client_ack_alloc_locked(), with id, deadline_ns and cb set)
 * in the table. Never fails. Caller holds c->mu. */
void client_ack_insert_locked(rmq_client *c, struct client_ack *a)
{
    struct client_acks *t = &c->acks;
    size_t b;

    if (t->n >= t->nbuckets)
        acks_grow_locked(t);
    b = ack_bucket(t, a->id);
    a->hnext = t->buckets[b];
    t->buckets[b] = a;
    t->n++;
    a->prev = a->next = NULL;
    if (a->deadline_ns != INT64_MAX)
        deadline_insert(t, a);
}

/* Take entry id out of the table; NULL if it is not there. Caller holds mu. */
static struct client_ack *ack_take_locked(rmq_client *c, uint64_t id)
{
    struct client_acks *t = &c->acks;
    struct client_ack **pp;

    if (t->n == 0)
        return NULL;
    for (pp = &t->buckets[ack_bucket(t, id)]; *pp; pp = &(*pp)->hnext) {
        struct client_ack *a = *pp;
        if (a->id == id) {
            *pp = a->hnext;
            a->hnext = NULL;
            t->n--;
            deadline_remove(t, a);
            return a;
        }
    }
    return NULL;
}

/* Run the callbacks of a detached chain (linked by hnext) with err, then
 * recycle the entries. I/O thread, no lock held on entry. */
static void acks_run_chain(rmq_client *c, struct client_ack *chain, int err)
{
    struct client_ack *a, *next;

    for (a = chain; a; a = a->hnext)
        a->cb(c, err, NULL, a->arg);
    pthread_mutex_lock(&c->mu);
    for (a = chain; a; a = next) {
        next = a->hnext;
        client_ack_recycle_locked(c, a);
    }
    pthread_mutex_unlock(&c->mu);
}

/*
 * The inbox got the reply "<inbox><id>" (m, borrowed): if id is an
 * outstanding ack, decode the PubAck, run its callback and return true;
 * false if id is not one of ours (a request's reply, or a late ack whose
 * callback already ran). I/O thread (the inbox callback), no lock held.
 */
bool client_ack_reply(rmq_client *c, uint64_t id, const rmq_msg *m)
{
    struct client_ack *a;
    rmq_pub_ack ack;
    int err;

    pthread_mutex_lock(&c->mu);
    a = ack_take_locked(c, id);
    pthread_mutex_unlock(&c->mu);
    if (a == NULL)
        return false;
    err = client_puback_decode(m, &ack);
    a->cb(c, err, err == 0 ? &ack : NULL, a->arg);
    pthread_mutex_lock(&c->mu);
    client_ack_recycle_locked(c, a);
    pthread_mutex_unlock(&c->mu);
    return true;
}

/*
 * How long the I/O thread may sleep before the earliest ack deadline, in ms
 * for poll(): -1 (no deadline), 0 (one is due: call client_acks_expire()),
 * or the wait rounded up. Caller holds c->mu.
 */
int client_acks_timeout_locked(rmq_client *c)
{
    int64_t left;

    if (c->acks.head == NULL)
        return -1;
    left = c->acks.head->deadline_ns - client_now_ns();
    if (left <= 0)
        return 0;
    left = (left + 999999) / 1000000;
    return left > 60000 ? 60000 : (int)left;
}

/* Give -ETIMEDOUT to every ack whose deadline has passed. I/O thread, no
 * lock held. */
void client_acks_expire(rmq_client *c)
{
    struct client_ack *chain = NULL, **tailp = &chain, *a;
    int64_t now = client_now_ns();

    pthread_mutex_lock(&c->mu);
    while ((a = c->acks.head) != NULL && a->deadline_ns <= now) {
        ack_take_locked(c, a->id); /* == a: outstanding ids are unique */
        *tailp = a;                /* keep deadline order for the callbacks */
        tailp = &a->hnext;
    }
    pthread_mutex_unlock(&c->mu);
    if (chain)
        acks_run_chain(c, chain, -ETIMEDOUT);
}

/* Give err (RMQ_ECLOSED) to every outstanding ack, in no particular order.
 * I/O thread, at close (nothing can be inserted any more), no lock held. */
void client_acks_fail_all(rmq_client *c, int err)
{
    struct client_acks *t = &c->acks;
    struct client_ack *chain = NULL, *a, *next;

    pthread_mutex_lock(&c->mu);
    for (size_t b = 0; b < t->nbuckets; b++) {
        for (a = t->buckets[b]; a; a = next) {
            next = a->hnext;
            a->hnext = chain;
            a->prev = a->next = NULL;
            chain = a;
        }
        t->buckets[b] = NULL;
    }
    t->n = 0;
    t->head = t->tail = NULL;
    pthread_mutex_unlock(&c->mu);
    if (chain)
        acks_run_chain(c, chain, err);
}

/* Free the table and every entry in it or on the free list (client_free,
 * after the I/O thread is gone). */
void client_acks_fini(struct client_acks *t)
{
    struct client_ack *a, *next;

    for (size_t b = 0; b < t->nbuckets; b++) {
        for (a = t->buckets[b]; a; a = next) {
            next = a->hnext;
            free(a);
        }
    }
    for (a = t->free; a; a = next) {
        next = a->hnext;
        free(a);
    }
    free(t->buckets);
    memset(t, 0, sizeof(*t));
}
