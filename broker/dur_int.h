/*
 * dur_int.h - the storage thread's own state, shared by dur_thread.c (loop,
 * group commit, timers), dur_admin.c (topic and consumer admin) and
 * dur_consumer.c (durable consumers). Everything here is touched by the
 * storage thread only, except the stats (relaxed atomics, read by anyone)
 * and the inbox (mpsc).
 */
#ifndef RMQ_BROKER_DUR_INT_H
#define RMQ_BROKER_DUR_INT_H

#include <liburing.h>
#include <pthread.h>

#include "dur.h"

struct dur_stats {
    _Atomic uint64_t stored, duplicates, store_errors, batches;
    _Atomic uint64_t cons_delivered, cons_redelivered, cons_acks, cons_dropped;
};

/* A message delivered by a consumer and not yet acked, in seq order. */
struct cinfl {
    uint64_t seq;
    uint64_t deadline_ns; /* redeliver at (0: now) */
    uint32_t deliveries;
    bool acked;
    struct dbind *member; /* where it went (NULL: nobody yet) */
};

struct cmember {
    struct dbind *b; /* never dereferenced here: the shard owns it */
    uint16_t shard;
};

struct consumer {
    struct consumer *next;
    struct store_consumer cfg; /* name, topic, ack_floor, limits */
    char topic_name[STORE_NAME_MAX + 1];
    uint64_t next_seq; /* next seq never delivered */
    struct cinfl *fl;  /* ring of in-flight entries, [fhead, fhead + fn) */
    uint32_t fhead, fn, fcap, unacked;
    struct cmember *mem;
    uint32_t nmem, memcap, rr;
    bool floor_dirty;
    uint64_t redelivered;
};

/* An admin request waiting for every shard to apply a topic table. */
struct admin_wait {
    uint64_t gen;
    unsigned remaining;
    struct dop_admin *op;
};

struct dur {
    struct server *srv;
    struct store *st;
    pthread_t thread;
    struct io_uring ring;
    _Atomic int sleeping;
    _Atomic bool stop;
    struct mpsc in;
    struct mpsc_chain *out; /* [nshards] */
    bool *out_dirty;
    struct topic_table *tab; /* current; one reference held here */
    uint64_t gen;            /* topic table changes made */
    struct admin_wait *waits;
    uint32_t nwaits, waitcap;
    struct consumer *consumers;
    struct store_append *apps; /* group-commit scratch */
    struct dop_append **appops;
    uint32_t napps, appcap;
    uint64_t now_ns, last_sync_ns, last_retention_ns, last_cons_ns;
    bool unsynced;      /* committed since the last flush began */
    bool sync_inflight; /* an IORING_OP_FSYNC is running */
    int sync_fd;        /* <data-dir>/data.mdb, for --fsync interval (else -1) */
    struct dur_stats stats;
};

uint64_t dur_realtime_ns(void);
/* Queue an op for its shard (op->shard); published at the end of the batch. */
void dur_reply(struct dur *d, struct dop *op);

/* dur_admin.c */
void dur_admin(struct dur *d, struct dop_admin *op);
void dur_topics_back(struct dur *d, struct dop_topics *op);
struct topic_table *dur_table_build(struct dur *d);

/* dur_consumer.c */
int dur_consumers_load(struct dur *d);
void dur_consumers_free(struct dur *d);
void dur_bind(struct dur *d, struct dop_bind *op);
void dur_unbind(struct dur *d, struct dop_bind *op);
void dur_ack(struct dur *d, struct dop_ack *op);
/* New messages in topic (0: any): deliver what the limits allow. */
void dur_consumers_pump(struct dur *d, uint32_t topic);
/* Redeliver what timed out; persist moved ack floors. */
void dur_consumers_tick(struct dur *d);
void dur_consumers_persist(struct dur *d);
/* Forget the consumers of a removed topic. */
void dur_consumers_drop_topic(struct dur *d, uint32_t topic);
uint32_t dur_consumer_count(struct dur *d, uint32_t topic);
struct consumer *dur_consumer_find(struct dur *d, uint32_t topic, const char *name);
void dur_consumer_remove(struct dur *d, struct consumer *c);

#endif
