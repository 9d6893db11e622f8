/*
 * xshard.h - everything that crosses between shards: per-pair SPSC rings of
 * entries, the MSG_RING doorbell, cross-shard delivery of shared bodies,
 * returning bodies to their owner, and subscription interest.
 *
 *   shard A                                        shard B
 *   stage[B] --flush--> ring A->B (SPSC, 64-byte aligned head/tail) --drain--> handle
 *                |  if B is asleep: one MSG_RING (UD_WAKE) into B's io_uring
 *
 * The rings carry the data and give the happens-before edges (release on
 * push, acquire on pop), so ThreadSanitizer sees every hand-off; MSG_RING
 * carries no pointer, it only wakes a shard that is blocked in
 * io_uring_enter. A producer rings at most once per consumer sleep.
 *
 * Entries per pair stay in FIFO order; that is what keeps per-publisher
 * order across shards and lets an interest ACK mean "everything I sent
 * before is applied".
 *
 * Thread: each function runs on the shard it is given (sh), except
 * xshard_server_init/fini (main thread, no shard running).
 */
#ifndef RMQ_BROKER_XSHARD_H
#define RMQ_BROKER_XSHARD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "subject.h"

struct shard;
struct server;
struct msgbuf;
struct codec_msg;

#define XRING_CAP 4096   /* entries per (src, dst) ring, power of two */
#define XENT_GROUPS 3    /* queue-group choices carried by one entry */
#define XROUTE_GROUPS 64 /* queue groups one publish may pick per shard */

enum xent_type {
    XE_DELIVER = 1, /* ptr: msgbuf (one ref); plain + groups say to whom */
    XE_FREE = 2,    /* ptr: msgbuf whose last ref the sender dropped */
    XE_INT_ADD = 3, /* ptr: malloc'd "pattern\0queue" key; seq */
    XE_INT_DEL = 4, /* same */
    XE_INT_ACK = 5, /* seq: the sender applied interest up to seq */
    XE_ROUTE = 6,   /* to shard 0: forward ptr (msgbuf, one ref) to route slot (in seq);
                       plain 2: as a publish for the peer to store */
    XE_RTOPICS = 7, /* from shard 0: ptr: struct rtopic_table (one ref) */
    /* Proxied topic subscriptions (rproxy.h): */
    XE_PX_OPEN = 8,  /* to shard 0: ptr: struct px_open */
    XE_PX_CLOSE = 9, /* to shard 0: ptr: the proxy; seq: its id */
    XE_PX_FLOW = 10, /* to shard 0: seq: proxy id; plain: 1 pause, 0 resume */
    XE_PX_MSG = 11,  /* from shard 0: ptr: msgbuf (one ref); seq: the proxy */
    XE_PX_ERR = 12,  /* from shard 0: ptr: struct px_err */
    XE_PX_FREE = 13, /* from shard 0: ptr: the proxy, to free */
};

/* Interest origins: shards are 0..nshards-1; a peer node (route.c) is
 * XORIGIN_PEER + its slot. */
#define XORIGIN_PEER XSHARD_MAX

struct xent {
    uint8_t type;
    uint8_t plain;   /* deliver: to plain subscribers too */
    uint8_t ngroups; /* deliver: valid entries of g */
    uint16_t klen;   /* interest: key length */
    uint16_t origin; /* interest: whose it is (a shard, or XORIGIN_PEER + peer) */
    uint64_t seq;    /* interest: broadcast seq; deliver: routing time (ns) */
    void *ptr;
    uint64_t g[XENT_GROUPS]; /* group hashes chosen for the receiver */
};

struct xring {
    _Alignas(64) _Atomic uint32_t head; /* consumer */
    _Alignas(64) _Atomic uint32_t tail; /* producer */
    _Alignas(64) struct xent ents[XRING_CAP];
};

/* Outgoing entries of one shard for one destination, not yet in the ring:
 * v[head, n) are waiting. Flushing advances head (no copying), so a stage
 * that backs up costs O(1) per flush, not O(backlog). */
struct xstage {
    struct xent *v;
    uint32_t head, n, cap;
};

/* What one publish wants from one shard; scratch, per shard. */
struct xtarget {
    bool touched, plain;
    uint8_t ng;
    uint64_t g[XROUTE_GROUPS];
};

/* What one publish wants from one peer node (cluster); scratch, per shard. */
struct ptarget {
    bool plain;
    uint8_t ng;
    uint64_t g[XROUTE_GROUPS];
};

/*
 * The routing of the last subject published on this shard, when it took
 * no queue group: which shards' and which peers' plain subscribers want
 * it. A publisher that sends one subject over and over (the common case)
 * skips the itrie walk. Valid while gen == itrie_gen; every change to the
 * itrie (interest of a shard or a peer) bumps itrie_gen. Per shard, no
 * allocation.
 */
struct xmemo {
    uint64_t itrie_gen; /* bumped by every itrie insert and remove */
    uint64_t gen;       /* itrie_gen when the entry below was taken; 0: none */
    uint16_t slen;
    uint8_t nt, npt;
    uint16_t t[XSHARD_MAX];        /* shards (plain) */
    uint8_t pt[CONFIG_MAX_ROUTES]; /* peer route slots (plain) */
    char subj[SUBJECT_MAX_LEN];
};

/* A pong waiting for interest acks (flush semantics across shards). */
struct xpong {
    struct conn *conn;
    uint64_t token;
    uint64_t seq;
};

/* Allocate the N x N rings (main thread, before shards start). */
void xshard_server_init(struct server *srv);
void xshard_server_fini(struct server *srv);

/* Per-shard state set-up and teardown (on the shard thread). */
void xshard_init(struct shard *sh);
/* Drop everything still queued to or from sh (after all shards stopped). */
void xshard_fini(struct shard *sh);

/* Handle up to budget entries from every inbound ring. Returns the count. */
unsigned xshard_drain(struct shard *sh, unsigned budget);
/*
 * Shard 0, cluster: a peer node's interest in key changed. Applied here and
 * broadcast to the other shards as interest of origin (XORIGIN_PEER + slot).
 */
void xshard_peer_interest(struct shard *sh, uint16_t origin, const char *key, size_t klen,
                          bool add);
/* Shard 0, cluster: give every shard (itself included) table t (one
 * reference, taken over). */
struct rtopic_table;
void xshard_rtopics(struct shard *sh, struct rtopic_table *t);
/* Hand a publish for a remote topic's owner to shard 0 (or send it). */
void xshard_route_publish(struct shard *sh, unsigned slot, struct msgbuf *body);
/* Shard 0, cluster: a message from a route, for this node's subscribers
 * only: plain ones if plain, and one member of each group in g (low 32
 * bits of the group hash). */
void xshard_route_in(struct shard *sh, const struct codec_msg *m, bool plain, const uint32_t *g,
                     unsigned ng);
/* The seq of the last interest broadcast, and whether every peer has
 * applied everything up to seq (a topic replay waits for that). */
uint64_t xshard_interest_seq(struct shard *sh);
bool xshard_interest_synced(struct shard *sh, uint64_t seq);
/* Queue entry e for shard dst (!= sh->id); sent at the next flush. */
void xshard_send(struct shard *sh, unsigned dst, const struct xent *e);
/* Move staged entries into the rings; ring the doorbell of sleeping peers. */
void xshard_flush(struct shard *sh);
/* true if some inbound ring has entries (checked after setting sleeping). */
bool xshard_pending(struct shard *sh);

/*
 * Route a parsed, validated publish to every interested shard (including
 * sh itself). In single-shard mode this is a local route only.
 */
void xshard_route(struct shard *sh, const struct codec_msg *m);

/*
 * A local subscription with key was added (add) or removed: update interest
 * everywhere. exported: also this node's interest for its peers (cluster);
 * false for topic subscriptions, which only the node's own shards route to.
 */
void xshard_sub_interest(struct shard *sh, const char *key, size_t klen, bool add, bool exported);

/*
 * Answer a PING: now if every peer has acknowledged the interest this shard
 * broadcast so far, else once they have.
 */
void xshard_pong(struct shard *sh, struct conn *c, uint64_t token);
/* Forget deferred pongs of a conn that is going away. */
void xshard_conn_gone(struct shard *sh, struct conn *c);

/* Drop one reference; at zero the body goes back to its owner's pool. */
void xshard_unref(struct shard *sh, struct msgbuf *m);

#endif
