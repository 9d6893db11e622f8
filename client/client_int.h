/*
 * client_int.h - private structures of libringmq, shared by client.c (public
 * API, subscriptions, messages), client_io.c (the I/O thread: sockets,
 * framing, dispatch, reconnect) and client_opts.c (options).
 *
 * Locking: one mutex per client (rmq_client.mu) guards everything that both
 * the I/O thread and API threads touch: the send buffer, the connection
 * state, the subscription table, every rmq_sub's mutable fields, pending
 * requests and the counters. Fields marked "I/O thread" are touched only by
 * the I/O thread (or by rmq_connect() before that thread exists, or by
 * rmq_close() after it was joined). No lock is ever held while a user
 * callback runs.
 *
 * Buffers: publishers append whole frames to sbuf under mu. The I/O thread
 * swaps sbuf with wbuf (under mu) once wbuf is fully written, then writes
 * wbuf without the lock. So sbuf always holds whole frames, and only wbuf
 * can hold a partly written one.
 *
 * Durable topics (client_topic.c, client_ack.c) add fields to rmq_sub (the
 * topic, the start position, the last seq delivered) and a table of
 * outstanding publish acks (struct client_acks), all under mu too.
 */
#ifndef RMQ_CLIENT_CLIENT_INT_H
#define RMQ_CLIENT_CLIENT_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "ringmq.h"

#define CLIENT_MAX_SERVERS 64
#define CLIENT_NAME_MAX 255
#define CLIENT_TOKEN_MAX 4096
#define CLIENT_INBOX_PREFIX "_INBOX."

struct client_server {
    char *host; /* without brackets */
    uint16_t port;
};

struct rmq_opts {
    struct client_server *servers;
    size_t nservers;
    char *name;
    char *token;
    int connect_timeout_ms;
    int reconnect_wait_ms;
    int reconnect_wait_max_ms;
    int max_reconnect; /* -1 forever */
    size_t reconnect_buf;
    size_t send_buf;
    size_t pending_msgs;
    size_t pending_bytes;
    rmq_event_cb ev_cb;
    void *ev_arg;
    rmq_error_cb err_cb;
    void *err_arg;
};

/* A received message: one allocation. Layout of buf:
 *   [copy of the Message submessage][subject NUL][reply NUL]
 * cm.raw and the spans point into that copy. */
struct rmq_msg {
    const char *subject;
    const char *reply; /* NULL when absent */
    const uint8_t *data;
    size_t len;
    struct codec_msg cm;
    bool owned;           /* false: borrowed by a callback, rmq_msg_free() ignores it */
    struct rmq_msg *next; /* pending queue of a sync subscription */
    uint8_t buf[];
};

enum sub_state {
    SUB_ACTIVE = 0,
    SUB_DONE,   /* auto-unsubscribe limit reached */
    SUB_FAILED, /* the server rejected it; err says why */
    SUB_CLOSED, /* unsubscribed, or the client closed */
};

struct rmq_sub {
    rmq_client *c;
    uint64_t sid;
    char *pattern;
    char *queue;
    rmq_msg_cb cb; /* NULL: synchronous */
    void *arg;
    /* Durable topics; topic NULL for a plain subscription. Set at creation. */
    char *topic;
    char *durable; /* bound to this consumer of topic; NULL: a replay */
    rmq_replay_opts start;
    rmq_consumer_opts cons;
    /* All below under c->mu. */
    int refs;  /* table 1 + user 1 + each dispatch or waiter */
    int in_cb; /* message callbacks started or about to start (I/O thread) */
    enum sub_state state;
    int err;
    bool in_table;
    bool user_freed; /* rmq_unsubscribe() was called */
    uint64_t max;    /* 0: no limit; else total deliveries allowed */
    uint64_t delivered;
    uint64_t last_seq;     /* topic replay: highest seq delivered, resumed after */
    uint64_t new_since_ns; /* START_NEW replay: wall clock when it was made */
    bool sent_once;        /* its SUBSCRIBE was built at least once */
    uint64_t dropped;
    bool overflowing; /* dropping since the last message that fit */
    bool blocking;    /* a sync topic sub over its pending limits: never dropped;
                         the I/O thread stops reading until it is half drained */
    struct rmq_msg *head, *tail;
    size_t qmsgs, qbytes;
    pthread_cond_t cv;     /* sync: message queued or state changed */
    struct rmq_sub *hnext; /* hash chain */
};

/* What client_sub_create() subscribes to. Strings are borrowed (copied). */
struct client_sub_spec {
    const char *pattern;
    const char *queue;   /* NULL: none */
    const char *topic;   /* NULL: a plain subscription */
    const char *durable; /* with topic: bind to this consumer; NULL: replay */
    rmq_replay_opts start;
    rmq_consumer_opts cons;
    rmq_msg_cb cb; /* NULL: synchronous */
    void *arg;
};

/* A publish checked by client_pub_prepare(); pointers are borrowed. */
struct client_pub {
    const char *subj, *reply; /* reply NULL: none */
    size_t slen, rlen;
    struct codec_hdr hdrs[RMQ_MAX_HEADERS];
    size_t nh;
    const void *data; /* never NULL */
    size_t len;
};

/*
 * An outstanding rmq_publish_ack_async(): waits for the PubAck published to
 * the inbox subject "<inbox_prefix><id>". Owned by the client's ack table
 * from insertion until it is taken out to run its callback, then recycled.
 */
struct client_ack {
    uint64_t id;
    int64_t deadline_ns; /* CLOCK_MONOTONIC; INT64_MAX: no timeout */
    rmq_ack_cb cb;
    void *arg;
    struct client_ack *hnext;       /* hash chain, or the free list */
    struct client_ack *prev, *next; /* deadline list (only with a timeout) */
};

/*
 * The outstanding acks of a client, under mu. A hash on id (ids are
 * sequential, so id & mask spreads them evenly) for O(1) lookup, and a list
 * sorted by deadline for the I/O thread's timeout checks: with one timeout
 * for every call, an insertion lands at the tail in O(1).
 */
struct client_acks {
    struct client_ack **buckets; /* nbuckets, a power of two */
    size_t nbuckets, n;
    struct client_ack *head, *tail; /* earliest deadline first */
    struct client_ack *free;        /* recycled entries, chained by hnext */
    size_t nfree;
};

/* A request waiting for its reply; lives on the caller's stack. */
struct client_req {
    uint64_t id;
    rmq_msg *reply;
    struct client_req *next;
};

enum client_state {
    CLIENT_CONNECTED = 0,
    CLIENT_RECONNECTING,
    CLIENT_CLOSED,
};

struct rmq_client {
    struct rmq_opts opts; /* private copy */

    pthread_mutex_t mu;
    pthread_cond_t cv;      /* state changes, PONGs, replies, busy == 0 */
    pthread_cond_t cv_room; /* the I/O thread took sbuf */

    /* Under mu. */
    enum client_state state;
    bool closing; /* rmq_close() was called */
    int close_err;
    uint64_t gen; /* incremented on each disconnect */
    int busy;     /* threads inside blocking calls */
    uint8_t *sbuf;
    size_t slen, scap;
    uint32_t max_payload;
    uint32_t max_frame;
    int nblocking;         /* subs with blocking set: the I/O thread does not read */
    uint64_t ping_seq;     /* last PING token sent by flush */
    uint64_t pong_seq;     /* last PONG token received */
    struct rmq_sub **subs; /* hash sid -> sub, chained */
    size_t nbuckets, nsubs;
    uint64_t next_sid;
    rmq_sub *inbox;
    char inbox_prefix[40]; /* "_INBOX.<16 hex>." */
    uint64_t req_seq;
    struct client_req *reqs;
    struct client_acks acks;
    rmq_stats stats;

    /* I/O thread. */
    pthread_t io_thread;
    bool io_started;
    int wake_fd; /* eventfd: new data, close */
    int fd;
    size_t cur_server;
    uint8_t *rbuf;
    size_t rlen, rcap;
    uint8_t *wbuf;
    size_t wlen, wpos, wcap;
    uint8_t *scratch; /* a callback's message is built here */
    size_t scratch_cap;
    uint32_t max_body; /* largest frame body accepted from the server */
    uint64_t rng;
};

/* ---- client_opts.c ---- */
void client_opts_defaults(struct rmq_opts *o);
int client_opts_copy(struct rmq_opts *dst, const struct rmq_opts *src);
void client_opts_fini(struct rmq_opts *o);

/* ---- client.c ---- */
int client_buf_reserve(uint8_t **buf, size_t *cap, size_t need);
int client_frame_append_locked(rmq_client *c, const Ringmq__Frame *f);
int client_sub_frames(rmq_sub *s, uint8_t **buf, size_t *len, size_t *cap);
rmq_msg *client_msg_build(const struct codec_msg *cm, void *mem);
size_t client_msg_size(const struct codec_msg *cm);
void client_deliver(rmq_client *c, const struct codec_msg *cm);
void client_sub_fail(rmq_client *c, uint64_t sid, int err, const char *text);
void client_sub_unref_locked(rmq_sub *s);
void client_wake(rmq_client *c);
void client_wake_all_locked(rmq_client *c);
int client_subject_check(const char *s, size_t len);
int client_pattern_check(const char *s, size_t len);
int client_sub_create(rmq_client *c, const struct client_sub_spec *sp, rmq_sub **out);
int client_pub_prepare(struct client_pub *p, const char *subj, const char *reply,
                       const rmq_header *h, size_t nh, const void *data, size_t len);
int client_pub_append_locked(rmq_client *c, const struct client_pub *p);
int client_publish(rmq_client *c, const char *subj, const char *reply, const rmq_header *h,
                   size_t nh, const void *data, size_t len);
int client_request(rmq_client *c, const char *subj, const rmq_header *h, size_t nh,
                   const void *data, size_t len, int timeout_ms, rmq_msg **reply);
int client_inbox_ensure_locked(rmq_client *c);
int64_t client_now_ns(void);

/* ---- client_ack.c ---- */
struct client_ack *client_ack_alloc_locked(rmq_client *c);
void client_ack_recycle_locked(rmq_client *c, struct client_ack *a);
void client_ack_insert_locked(rmq_client *c, struct client_ack *a);
bool client_ack_reply(rmq_client *c, uint64_t id, const rmq_msg *m);
int client_acks_timeout_locked(rmq_client *c);
void client_acks_expire(rmq_client *c);
void client_acks_fail_all(rmq_client *c, int err);
void client_acks_fini(struct client_acks *t);

/* ---- client_topic.c ---- */
int client_puback_decode(const rmq_msg *m, rmq_pub_ack *ack);

/* ---- client_io.c ---- */
int client_io_dial(rmq_client *c);
int client_io_start(rmq_client *c);
int client_io_drain_locked(rmq_client *c, size_t size);
bool client_in_io_thread(const rmq_client *c);
void client_io_report(rmq_client *c, rmq_sub *sub, int err, const char *text);

#endif
