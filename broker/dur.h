/*
 * dur.h - durable topics in the broker: the storage thread and what the
 * shards exchange with it.
 *
 *   shard --(ops: APPEND, ADMIN, ACK, BIND, UNBIND)--> storage thread
 *   shard <--(the same ops back with results; TOPICS, CDELIVER)-- storage
 *
 * Each direction is an mpsc list (mpsc.h): a shard gathers its ops in a
 * chain during a loop iteration and publishes it once (dur_flush); the
 * storage thread publishes one chain per shard per batch. A side that
 * finds the other asleep rings it with one MSG_RING (the same doorbell
 * protocol as xshard.c). Only the storage thread writes to LMDB, so no
 * LMDB write transaction or fsync ever runs on a shard; shards only run
 * short read transactions (replay chunks).
 *
 * Ownership: an op belongs to whoever holds it. Ops that come back
 * (APPEND, ADMIN, BIND, UNBIND, TOPICS) are freed by the shard that
 * allocated them; ACK is freed by the storage thread; CDELIVER is
 * allocated by the storage thread and freed by the shard.
 *
 * Topic tables: the storage thread owns the topic definitions. Each change
 * (add, rm) makes a new immutable struct topic_table sent to every shard in
 * a TOPICS op; a shard swaps it in, builds its own subject trie from it and
 * sends the op back; the admin request that made the change is answered
 * once every shard has sent it back, so a publish made after the answer,
 * on any shard, is stored.
 */
#ifndef RMQ_BROKER_DUR_H
#define RMQ_BROKER_DUR_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mpsc.h"
#include "store.h"
#include "subject.h"

struct shard;
struct server;
struct sub;
struct conn;
struct codec_msg;

#define DUR_MSG_ID_HDR "Rmq-Msg-Id"
#define DUR_EXPECT_ACK_HDR "Rmq-Expect-Ack"
#define DUR_ACK_PREFIX "$SYS.ACK."
#define DUR_ADMIN_PREFIX "$SYS.REQ."
#define DUR_INFLIGHT_MAX (32u << 20) /* append bytes a shard may have at storage */

enum dop_type {
    DOP_APPEND = 1, /* store one message; back with seq or rc */
    DOP_ADMIN,      /* a $SYS.REQ.TOPIC / CONSUMER request; back with the reply */
    DOP_ACK,        /* a consumer ack / nak; not returned */
    DOP_BIND,       /* bind a subscription to a durable consumer; back with rc */
    DOP_UNBIND,     /* the binding is gone; back when the storage forgot it */
    DOP_TOPICS,     /* storage -> shard: a new topic table; back when applied */
    DOP_CDELIVER,   /* storage -> shard: one consumer delivery */
};

struct dop {
    struct mpsc_node node; /* first: a node is an op */
    uint8_t type;
    uint16_t shard; /* the shard that allocated it / it is for */
    int rc;
};

/* One topic of a table: what a shard needs to route and replay. */
struct topic_ent {
    uint32_t id;
    char name[STORE_NAME_MAX + 1];
    uint32_t npat;
    char pat[STORE_PATTERNS_MAX][STORE_PATTERN_MAX + 1];
};

struct topic_table {
    _Atomic uint32_t refs; /* one per shard holding it, plus the storage thread */
    uint32_t n;
    struct topic_ent t[];
};

/* The topics other nodes of the cluster own (route.c builds it on shard 0;
 * every shard holds a reference). owner indexes route.c's owner list. */
struct rtopic_table {
    _Atomic uint32_t refs;
    uint32_t n;
    struct {
        uint32_t owner;
        char node[64]; /* the owner's node name */
        struct topic_ent topic;
    } t[];
};

struct dop_append {
    struct dop h;
    uint32_t topic;                /* in: topic id */
    uint16_t tidx;                 /* in: index in the shard's table, for the name */
    uint8_t rlen;                  /* in: reply subject length (0: none) */
    bool duplicate;                /* out */
    uint64_t seq;                  /* out */
    uint64_t ts_ns;                /* in: CLOCK_REALTIME; out: as stored */
    uint32_t dedup_off, dedup_len; /* in: the Rmq-Msg-Id value inside data */
    uint32_t len;                  /* in: stored body length */
    char reply[SUBJECT_MAX_LEN + 1];
    char topic_name[STORE_NAME_MAX + 1];
    uint8_t data[]; /* Message fields 1, 3, 4: subject, headers, payload */
};

enum dadmin_kind {
    DA_TOPIC_ADD = 1,
    DA_TOPIC_INFO,
    DA_TOPIC_LIST,
    DA_TOPIC_RM,
    DA_CONS_LIST,
    DA_CONS_RM
};

struct dop_admin {
    struct dop h;
    uint8_t kind; /* enum dadmin_kind */
    char reply[SUBJECT_MAX_LEN + 1];
    uint8_t *out; /* out: packed AdminReply, malloc'd (freed by the shard) */
    size_t outlen;
    size_t len;
    uint8_t data[]; /* request payload */
};

struct dop_ack {
    struct dop h;
    bool nak;
    uint64_t seq;
    char topic[STORE_NAME_MAX + 1];
    char consumer[STORE_NAME_MAX + 1];
};

/* A subscription bound to a durable consumer (shard side). Freed by its
 * shard when its UNBIND comes back, or at once if the bind failed. */
struct dbind {
    struct sub *sub; /* NULL once the subscription is gone */
    bool failed;     /* the storage refused the bind (nothing to unbind) */
    uint32_t topic;  /* topic id */
    char name[STORE_NAME_MAX + 1];
};

struct dop_bind {
    struct dop h;
    struct dbind *b;
    uint32_t topic; /* id */
    char topic_name[STORE_NAME_MAX + 1];
    char name[STORE_NAME_MAX + 1];
    uint32_t max_inflight, max_deliver;
    uint64_t ack_wait_ms;
};

struct dop_topics {
    struct dop h;
    struct topic_table *tab; /* one reference, for the receiving shard */
    uint64_t gen;            /* which change this is (for the admin wait) */
};

struct dop_cdeliver {
    struct dop h;
    struct dbind *b;
    uint64_t seq, ts_ns;
    uint32_t deliveries;
    uint8_t rlen;
    char reply[SUBJECT_MAX_LEN + 1]; /* the ack subject */
    uint32_t len;
    uint8_t data[];
};

/* ---- Main thread ---- */

/*
 * Open the store (srv->cfg), load topics and consumers, and start the
 * storage thread. Returns 0, or a negative code with a message logged
 * (a damaged or unusable data dir: the broker must not start).
 */
int dur_start(struct server *srv);
/* Stop and join the storage thread (after the shards), free what is left. */
void dur_stop(struct server *srv);
/* The first topic table, one reference for a shard (before shards run). */
struct topic_table *dur_table_ref(struct server *srv);

/* ---- Shard side (topic.c) ---- */

/* A topic or consumer name: 1..STORE_NAME_MAX of [A-Za-z0-9_-] (any thread). */
bool dur_name_ok(const char *s);

void topic_shard_init(struct shard *sh);
void topic_shard_fini(struct shard *sh);
/* Drop one reference of a table (any thread). */
void topic_table_unref(struct topic_table *t);
/*
 * The index in sh's topic table of the topic that holds subject, or -1.
 * Cheap when there are no topics.
 */
int topic_of_subject(struct shard *sh, const char *subj, size_t slen);
/* The index of the topic called name, or -1. */
int topic_by_name(struct shard *sh, const char *name);
/* A publish to a topic's subject (validated): hand it to the storage. */
void topic_publish(struct shard *sh, struct conn *c, const struct codec_msg *m, int tidx);
/*
 * A publish with a reply and the Rmq-Expect-Ack header on a subject no topic
 * holds: answer with a PubAck NO_TOPIC (UNAVAILABLE without storage), return
 * true. false (nothing sent) for any other publish.
 */
bool topic_refuse_ack(struct shard *sh, const struct codec_msg *m);
/* Drop one reference of a remote topic table (any thread). */
void rtopic_table_unref(struct rtopic_table *t);
/* Swap in sh's new remote topic table (one reference, taken over). */
void topic_rtopics_apply(struct shard *sh, struct rtopic_table *t);
/* The index in sh->rtopics of the remote topic named name, or -1. */
int rtopic_by_name(struct shard *sh, const char *name);
/* The index in sh->rtopics of the remote topic holding subject, or -1. */
int rtopic_of_subject(struct shard *sh, const char *subj, size_t slen);
/* A publish on a remote topic's subject: forward it to its owner, or answer
 * UNAVAILABLE (with Rmq-Expect-Ack) while the owner's route is down. */
void topic_publish_remote(struct shard *sh, const struct codec_msg *m, int ridx);
/* Shard 0: a publish forwarded by another node for a topic we own. */
void topic_publish_from_route(struct shard *sh, const struct codec_msg *m);
/* A publish to $SYS.ACK.* or $SYS.REQ.TOPIC/CONSUMER.*; true if it was one. */
bool topic_sys_publish(struct shard *sh, const struct codec_msg *m);
/* Queue an op for the storage thread (sent by dur_flush). */
void dur_send(struct shard *sh, struct dop *op);
/* Publish the queued ops; ring the storage thread if it sleeps. */
void dur_flush(struct shard *sh);
/* Handle everything the storage thread sent back. */
void dur_drain(struct shard *sh);
/* Something from the storage thread is waiting (sleep check). */
bool dur_pending(struct shard *sh);

#endif
