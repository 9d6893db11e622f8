/*
 * shard.h - a shard: one thread, one io_uring, one provided-buffer ring, its
 * listener, its connections, its subscription index and its pools.
 *
 * Nothing in a struct shard is touched by another thread, except the
 * read-mostly struct server it points to and the stats counters, which the
 * owner updates with relaxed stores and anyone may read.
 *
 * io_uring user_data is a pointer with a 3-bit tag in its low bits:
 *
 *   63                                   3  2  0
 *   +-------------------------------------+----+
 *   | struct conn * / struct shard *      |tag |
 *   +-------------------------------------+----+
 *
 * A connection lives until every SQE that names it has completed
 * (c->inflight == 0); see conn.c for the close protocol.
 */
#ifndef RMQ_BROKER_SHARD_H
#define RMQ_BROKER_SHARD_H

#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "config.h"
#include "mpsc.h"
#include "msgbuf.h"
#include "strmap.h"
#include "subject.h"
#include "xshard.h"

struct trie;
struct sub;

/*
 * The plain subscriptions the last walk of sh->trie found for a subject
 * (dispatch_deliver): a publisher that sends one subject over and over
 * skips the walk while trie_gen() is unchanged. Not kept when a queue group
 * matched (its member rotates) or more than DMEMO_SUBS subscriptions did.
 */
#define DMEMO_SUBS 16
struct dmemo {
    bool valid;
    uint8_t n;
    uint16_t slen;
    uint64_t gen; /* trie_gen(sh->trie) when taken */
    struct sub *subs[DMEMO_SUBS];
    char subj[SUBJECT_MAX_LEN];
};
struct server;
struct sub;

enum ud_tag {
    UD_ACCEPT = 1,
    UD_RECV = 2,
    UD_SEND = 3,
    UD_IGNORE = 4,  /* cancel, close: nothing to do on completion */
    UD_WAKE = 5,    /* MSG_RING doorbell from a peer shard (xshard.c) */
    UD_SENDZC = 6,  /* a zero-copy sendmsg; the pointer is its struct iovblk */
    UD_CONNECT = 7, /* a route being dialled (route.c); the pointer is its peer */
};
#define UD_TAG_MASK 7ull

static inline uint64_t ud_make(void *p, enum ud_tag t)
{
    return (uint64_t)(uintptr_t)p | (uint64_t)t;
}

/* Per-shard counters. Written by the owner only (relaxed), read by anyone. */
struct shard_stats {
    _Atomic uint64_t conns_total, conns_now;
    _Atomic uint64_t msgs_in, bytes_in, msgs_out, bytes_out;
    _Atomic uint64_t slow_consumers, bad_frames, bad_subjects, too_big;
    _Atomic uint64_t enobufs, subs_now, sends, send_iovs;
    _Atomic uint64_t xdeliver, xdoorbells, stalls, zc_sends, zc_copied;
    _Atomic uint64_t route_in, route_out;
    _Atomic uint64_t px_now, px_pauses; /* proxied topic subscriptions (rproxy.h) */
};

static inline void stat_add(_Atomic uint64_t *s, uint64_t n)
{
    atomic_store_explicit(s, atomic_load_explicit(s, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static inline uint64_t stat_get(_Atomic uint64_t *s)
{
    return atomic_load_explicit(s, memory_order_relaxed);
}

/* One queued outgoing frame: prefix bytes, then (optionally) a shared body. */
struct outitem {
    struct msgbuf *body; /* reference owned by the queue; NULL for prefix only */
    uint32_t off;        /* bytes of prefix+body already sent */
    uint8_t plen;
    uint8_t prefix[27]; /* >= CODEC_MSG_PREFIX_MAX */
};

#define IOV_BATCH 256                /* iovecs per sendmsg */
#define SEND_BATCH_BYTES (256 << 10) /* bytes per sendmsg, at least one item */

/* The iovecs of one in-flight sendmsg, and a copy of the prefixes they
 * point at: queue items move when the queue grows, this block does not. */
struct iovblk {
    struct iovblk *next;
    struct conn *conn; /* zero-copy: the conn it was sent on */
    uint32_t nzc;      /* zero-copy: references held in zc[] until the NOTIF */
    struct msgbuf *zc[IOV_BATCH / 2];
    struct msghdr mh;
    struct iovec iov[IOV_BATCH];
    uint8_t pre[IOV_BATCH / 2][32];
};

enum conn_flags {
    CONN_F_READY = 1 << 0,    /* CONNECT accepted */
    CONN_F_RECV = 1 << 1,     /* multishot recv armed */
    CONN_F_SENDING = 1 << 2,  /* one sendmsg in flight */
    CONN_F_DIRTY = 1 << 3,    /* on the shard's flush list */
    CONN_F_DRAINING = 1 << 4, /* no more input; close once output is sent */
    CONN_F_CLOSING = 1 << 5,  /* cancelling; freed when inflight == 0 */
    CONN_F_SLOW = 1 << 6,     /* over max_pending; on the shard's slow list */
    CONN_F_REARM = 1 << 7,    /* recv must be re-armed (ENOBUFS or ended) */
    CONN_F_EOF = 1 << 8,      /* peer closed its side */
    CONN_F_RELEASED = 1 << 9, /* on the dead list; freed after this iteration */
    CONN_F_NOREAD = 1 << 10,  /* shutdown: recv cancelled, output goes on */
    CONN_F_BACKLOG = 1 << 11, /* pending over the shard\'s backlog mark */
    CONN_F_STALLED = 1 << 12, /* a publisher paused for back-pressure */
    CONN_F_NOZC = 1 << 13,    /* the kernel copied our zero-copy sends: plain sends only */
    CONN_F_ROUTE = 1 << 14,   /* a route to a peer node (route.c), not a client */
};

struct conn {
    struct shard *sh;
    int fd;
    uint32_t flags;
    uint32_t inflight; /* SQEs naming this conn that have not completed */
    uint64_t id;
    uint64_t deadline_ns;     /* handshake or drain deadline, 0 = none */
    uint64_t progress_ns;     /* output last moved, or pending was under the limit */
    uint64_t stall_until_ns;  /* a stalled publisher reads again after this */
    uint32_t zc_copied;       /* zero-copy sends the kernel reported as copied */
    struct conn *prev, *next; /* shard's list of all conns */
    char name[64];
    char peer[64];
    struct rpeer *route; /* CONN_F_ROUTE: its peer slot (route.c) */

    /* Ingress: the partial tail of a frame that spans recv buffers. */
    uint8_t *rbuf;
    uint32_t rlen, rcap;

    /* Egress: a ring of items; [head, tail). */
    struct outitem *q;
    uint32_t qcap, qhead, qtail;
    uint64_t pending;     /* bytes queued, sent or not yet acknowledged */
    struct iovblk *blk;   /* the in-flight sendmsg's iovecs */
    uint32_t sendn;       /* items from qhead that the in-flight sendmsg covers */
    struct msgbuf *qcopy; /* the last item's body, if conn_enqueue_copy() may append to it */
    uint32_t qcopy_next;  /* size of the next copy buffer (0: CONN_COPY_FIRST) */

    /* Subscriptions by sid: open addressing, NULL = empty, TOMB = deleted. */
    struct sub **subs;
    uint32_t subcap, nsubs, subused;
};

#define SUB_DONE UINT64_MAX /* sub.remaining: reached its auto-unsubscribe count */

struct replay;
struct dbind;
struct rproxy;

struct sub {
    struct conn *conn;
    struct replay *rp;  /* a topic subscription (replay.c), else NULL */
    struct dbind *bind; /* bound to a durable consumer (topic.c); not in the trie */
    struct rproxy *px;  /* served by another node (rproxy.c); not in the trie */
    uint64_t sid;
    uint64_t remaining;  /* 0 = unlimited; else deliveries left */
    uint64_t ghash;      /* strmap_hash of the key, for queue-group choices */
    uint64_t created_ns; /* CLOCK_MONOTONIC when the SUBSCRIBE was handled */
    uint16_t plen, qlen;
    char str[]; /* the key: pattern NUL queue NUL */
};

static inline size_t sub_klen(const struct sub *s)
{
    return (size_t)s->plen + 1 + s->qlen;
}

struct shard {
    struct server *srv;
    unsigned id;
    int cpu;
    pthread_t thread;
    struct io_uring ring;
    int listen_fd;
    bool accept_armed;
    enum { STOP_NO = 0, STOP_READ, STOP_FLUSHED, STOP_LAST_DRAIN, STOP_DRAIN } stopping;
    uint64_t stop_deadline_ns;
    uint64_t now_ns;

    /* Provided-buffer ring. */
    struct io_uring_buf_ring *br;
    uint8_t *bufs;
    unsigned nbufs, buf_size, br_mask;
    unsigned br_pending; /* buffers added since the last advance */

    struct trie *trie;
    struct dmemo dmemo; /* the last subject's match in trie (dispatch.c) */
    struct msgpool pool;
    struct iovblk *free_blks;
    struct conn *conns; /* list head */
    uint64_t nconns;
    uint64_t next_conn_id;

    /* Work deferred out of the CQE handlers and the trie walk. */
    struct conn **dirty;
    uint32_t ndirty, dirtycap;
    struct conn **slow;
    uint32_t nslow, slowcap;
    struct sub **unsub;
    uint32_t nunsub, unsubcap;
    struct conn **dead; /* freed at the end of the loop iteration */
    uint32_t ndead, deadcap;
    struct conn **stalled; /* publishers paused by back-pressure */
    uint32_t nstalled, stalledcap;

    /* Back-pressure: conns over backlog_hi bytes pending are counted in
     * pressure (read by every shard that routes here); a publish that
     * reaches a shard under pressure stalls its publisher briefly. */
    uint64_t backlog_hi;
    uint32_t nbacklog;
    _Atomic uint32_t pressure;
    bool pub_pressure; /* set while routing; consumed by the recv handler */

    /* Cross-shard state, see xshard.h. */
    int ring_fd;
    _Atomic int sleeping;
    struct xstage *stage;  /* [nshards] outgoing, per destination */
    struct xtarget *tgt;   /* [nshards] scratch for one publish */
    struct ptarget *ptgt;  /* [CONFIG_MAX_ROUTES] the same for peer nodes */
    struct trie *itrie;    /* every shard's interest; values: struct rint */
    struct strmap lint;    /* local subscriptions per key */
    struct strmap rints;   /* (shard, key) -> struct rint */
    struct strmap lgroups; /* cluster: group hash -> shards of this node with members */
    uint64_t nremote_int;  /* entries of itrie that belong to other shards */
    uint64_t bcast_seq;    /* interest broadcasts sent */
    struct xmemo memo;     /* routing of the last subject (xshard_route) */
    uint64_t *acked;       /* [nshards] highest seq each peer acknowledged */
    struct xpong *pongs;   /* FIFO of deferred pongs */
    uint32_t ponghead, npongs, pongcap;

    /* Durable topics, see dur.h. */
    struct mpsc dur_in;           /* from the storage thread */
    struct mpsc_chain dur_out;    /* to it, published by dur_flush */
    struct topic_table *topics;   /* one reference */
    struct trie *ttrie;           /* topic patterns; values: table index + 1 */
    struct rtopic_table *rtopics; /* cluster: topics other nodes own */
    struct trie *rttrie;          /* their patterns; values: index + 1 */
    uint64_t dur_inflight;        /* append bytes at the storage thread */
    bool in_route_publish;        /* handling a request another node forwarded */
    struct replay **replays;      /* topic subscriptions still reading the store */
    uint32_t nreplays, replaycap;

    /* Cluster: topic subscriptions served by the owner node (rproxy.h). */
    uint64_t px_next;          /* proxy ids made here */
    struct rproxy **px_paused; /* proxies whose owner was asked to pause */
    uint32_t npx_paused, px_pausedcap;
    struct strmap pxtab; /* shard 0: psid -> struct pxent */

    struct shard_stats stats;
    int exit_code;
};

struct server {
    struct config cfg;
    unsigned nshards;
    struct shard *shards;
    char server_id[32];
    uint32_t max_body;
    _Atomic bool stop;
    _Atomic uint64_t next_client_id;
    struct xring *xr;          /* [src * nshards + dst] */
    _Atomic unsigned quiesced; /* shards whose stop has flushed their stage */
    pthread_barrier_t barrier; /* all rings ready / all loops stopped */
    struct dur *dur;           /* the storage thread; NULL with --storage off */
    struct cluster *cluster;   /* routes (route.c, shard 0); NULL without --cluster-listen */
    struct store *store;       /* its store: shards read from it (replays) */
};

/* Monotonic clock in nanoseconds. */
uint64_t now_ns(void);

/*
 * Prepare shard id of srv (memory only; the ring is created on the shard's
 * own thread in shard_run). listen_fd is taken over.
 */
void shard_init(struct shard *sh, struct server *srv, unsigned id, int listen_fd);
/* Thread entry: set up the ring, run the loop until stopped. Returns NULL. */
void *shard_run(void *arg);

/* Get an SQE, submitting the queue first if it is full. Never NULL. */
struct io_uring_sqe *shard_sqe(struct shard *sh);
/* Give a provided buffer back to the ring (published at the next advance). */
void shard_buf_return(struct shard *sh, unsigned bid);
/* Arm (or re-arm) the multishot recv of c. */
void shard_arm_recv(struct shard *sh, struct conn *c);

/* Deferred-work lists; each entry is added at most once (flags guard it). */
void shard_push_dirty(struct shard *sh, struct conn *c);
void shard_push_slow(struct shard *sh, struct conn *c);
void shard_push_unsub(struct shard *sh, struct sub *s);
void shard_push_dead(struct shard *sh, struct conn *c);
void shard_push_stalled(struct shard *sh, struct conn *c);

#endif
