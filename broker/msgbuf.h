/*
 * msgbuf.h - immutable, reference-counted message bodies and the per-shard
 * pool they come from.
 *
 * A publish is encoded once into a msgbuf; every queued delivery, in-flight
 * send and cross-shard hand-off owns one reference. The body is written only
 * by the shard that allocated it, before the first reference is shared, and
 * read-only afterwards. (The one exception is a connection's copy buffer,
 * conn_enqueue_copy() in conn.h: never shared, its shard appends to it
 * behind the bytes already handed to a sendmsg.) msgbuf_ref() is a relaxed increment;
 * msgbuf_unref() is an acq_rel decrement, and the holder that drops the last reference gives the
 * buffer back to the pool of the shard that allocated it (owner).
 *
 * Bodies up to 256 KiB come from size classes (64 B .. 256 KiB, data bytes
 * after the 24-byte header) kept on per-shard free lists, so the
 * publish path does not call malloc in the steady state; bodies over the
 * largest class are malloc'd and freed directly.
 */
#ifndef RMQ_BROKER_MSGBUF_H
#define RMQ_BROKER_MSGBUF_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define MSGPOOL_CLASSES 11
#define MSGPOOL_KEEP_BYTES (8u << 20) /* free bytes kept per class */

struct msgbuf {
    _Atomic uint32_t refs;
    uint32_t len;   /* bytes used in data */
    uint16_t owner; /* shard id of the allocating pool */
    uint8_t cls;    /* size class, or MSGPOOL_CLASSES for a plain malloc */
    struct msgbuf *next;
    uint8_t data[];
};

struct msgpool {
    struct msgbuf *free[MSGPOOL_CLASSES];
    uint32_t nfree[MSGPOOL_CLASSES];
    uint16_t owner;
    uint64_t live; /* buffers handed out and not yet returned */
};

void msgpool_init(struct msgpool *p, uint16_t owner);
/* Free every cached buffer. Buffers still referenced are not touched. */
void msgpool_fini(struct msgpool *p);

/*
 * Take a buffer with room for len bytes, refs = 1, len set. Aborts on OOM
 * (broker glue policy, STYLE.md 2.3). Thread: the owner shard only.
 */
struct msgbuf *msgbuf_new(struct msgpool *p, uint32_t len);

static inline struct msgbuf *msgbuf_ref(struct msgbuf *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}

/* Bytes m->data has room for (its size class; len for a plain malloc). */
uint32_t msgbuf_room(const struct msgbuf *m);

/*
 * Give a buffer back to its pool. Thread: the owner shard only (a
 * non-owner that drops the last reference hands it back by message).
 */
void msgpool_put(struct msgpool *p, struct msgbuf *m);

/*
 * Drop one reference. Returns 1 if this was the last one (the caller then
 * returns the buffer to its owner's pool), else 0.
 */
static inline int msgbuf_unref_last(struct msgbuf *m)
{
    return atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1;
}

/* Drop one reference held by the owner shard; frees into p at zero. */
static inline void msgbuf_unref(struct msgpool *p, struct msgbuf *m)
{
    if (msgbuf_unref_last(m))
        msgpool_put(p, m);
}

#endif
