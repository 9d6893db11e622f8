/*
 * dispatch.h - what the broker does with each client frame: handshake,
 * publish routing, subscribe/unsubscribe, ping, and the $SYS requests.
 *
 * Thread: the connection's shard.
 */
#ifndef RMQ_BROKER_DISPATCH_H
#define RMQ_BROKER_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

#include "shard.h"

struct codec_msg;

/* Marks a deleted slot in a connection's sid map. */
#define DISPATCH_SUB_TOMB ((struct sub *)1)

/* The subject that answers with the broker's statistics as JSON. */
#define DISPATCH_SYS_STATS "$SYS.REQ.STATS"
/* The subject that answers with the cluster's routes as JSON (route.c). */
#define DISPATCH_SYS_CLUSTER "$SYS.REQ.CLUSTER"

/*
 * Handle one frame body (borrowed; valid only during the call). Errors in
 * the frame are answered with ERROR frames; see PROTOCOL.md for which ones
 * close the connection.
 */
void dispatch_frame(struct conn *c, const uint8_t *body, size_t len);

/* Which local subscribers a delivery is for. */
struct route_filter {
    bool plain;      /* plain subscribers */
    bool all_groups; /* every matching queue group (single shard) */
    uint8_t ng;      /* else only the groups whose hash is in g */
    const uint64_t *g;
    uint64_t ts; /* routing time of a cross-shard delivery: subscriptions
                    made after it do not get it (0: no such check) */
};

/*
 * Deliver to the matching local subscribers that f selects. Either m is a
 * parsed publish (the body is then encoded on the first match, so nothing
 * is allocated without subscribers) or body is a shared body (borrowed: the
 * caller keeps its reference).
 */
void dispatch_deliver(struct shard *sh, const struct codec_msg *m, struct msgbuf *body,
                      const struct route_filter *f);

/*
 * SUBSCRIBE and UNSUBSCRIBE submessages (borrowed), from a client or, for
 * topic subscriptions another node proxies to this one, from a route conn
 * (which takes only SUBSCRIBEs with a topic). Errors go back as ERROR{sid}.
 */
struct codec_span;
void dispatch_subscribe(struct conn *c, const struct codec_span *sp);
void dispatch_unsubscribe(struct conn *c, const struct codec_span *sp);
/* The subscription sid of c, or NULL. */
struct sub *dispatch_sub_find(struct conn *c, uint64_t sid);

/* Remove s from the shard's subject index (not from the conn's map). */
void dispatch_sub_unindex(struct shard *sh, struct sub *s);

/* Publish a message from the broker itself (a $SYS reply, a PubAck). */
void dispatch_publish_local(struct shard *sh, const char *subj, const char *data, size_t len);

/* Process the deferred auto-unsubscribes and slow consumers of sh. */
void dispatch_after_route(struct shard *sh);

#endif
