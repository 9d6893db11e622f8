/*
 * rproxy.h - topic subscriptions and consumer bindings on a node that does
 * not own the topic (cluster): the subscription is proxied to the owner.
 *
 *   client --SUBSCRIBE{sid, topic}--> node B (shard k)       node A (owner)
 *     shard k: a sub with a proxy (not in the trie), id psid
 *     --XE_PX_OPEN--> B shard 0 --SUBSCRIBE{sid: psid}--> A: a topic
 *                                 subscription of A's route conn
 *     A --MESSAGE{sid: psid} / ERROR{sid: psid}--> B shard 0
 *     --XE_PX_MSG / XE_PX_ERR--> shard k --MESSAGE{sid} / ERROR{sid}--> client
 *
 * The owner runs the replay, the live switch and the consumer exactly as
 * for a local client; B only relays. Flow: when the client's connection
 * holds more than REPLAY_HIWAT bytes, shard k asks the owner to pause
 * (ROUTE_FLOW{psid, pause}) and to resume once it is under half of it; a
 * paused replay reads nothing and skips live messages, which it later reads
 * from the store in order. Acks of consumer deliveries are publishes on
 * $SYS.ACK.*, forwarded to the owner by topic.c.
 *
 * Ends: the client unsubscribes or goes (UNSUBSCRIBE{psid} to the owner);
 * the owner ends it (its ERROR is passed on and the sub removed); the route
 * to the owner goes down (ERROR UNAVAILABLE to the client, sub removed: the
 * client may subscribe again from where it was, on any node).
 *
 * Ownership: the proxy (struct rproxy) belongs to shard k; it is freed only
 * after shard 0 confirms (XE_PX_FREE) that it dropped its table entry, so
 * an XE_PX_MSG that names it never finds freed memory (rings are FIFO).
 *
 * Thread: rproxy_prepare/attach/detach/run and the XE_PX_MSG/ERR/FREE
 * entries on the client's shard; the route side (rproxy_route_*) and the
 * XE_PX_OPEN/CLOSE/FLOW entries on shard 0.
 */
#ifndef RMQ_BROKER_RPROXY_H
#define RMQ_BROKER_RPROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringmq.pb-c.h"

struct shard;
struct conn;
struct sub;
struct xent;
struct rproxy;
struct codec_span;

/*
 * A SUBSCRIBE with a topic on a client conn: if another node owns the topic
 * (and this node has no topic of that name), set *out to a new proxy and
 * return 0; if not, return 0 with *out NULL (handled locally). Returns -1
 * after sending the ERROR (owner unreachable).
 */
int rproxy_prepare(struct conn *c, const Ringmq__Subscribe *m, struct rproxy **out);
/* Give px to s (in the sid map, not in the trie) and send the SUBSCRIBE m. */
void rproxy_attach(struct shard *sh, struct sub *s, struct rproxy *px, const Ringmq__Subscribe *m);
/* s is going away: end its remote subscription. */
void rproxy_detach(struct shard *sh, struct sub *s);
/* Resume paused proxies whose conn has drained (every loop iteration). */
void rproxy_run(struct shard *sh);

/* An XE_PX_* entry from another shard (or from this one). */
void rproxy_entry(struct shard *sh, const struct xent *e);
/* The same entry was never delivered (shutdown, xshard_fini): free it. */
void rproxy_entry_drop(const struct xent *e);

/* Shard 0: MESSAGE, ERROR from the route in slot (owner replies). */
void rproxy_route_msg(struct shard *sh, unsigned slot, const struct codec_span *sp);
void rproxy_route_err(struct shard *sh, unsigned slot, const struct codec_span *sp);
/* Shard 0: the route in slot went down: end every proxy through it. */
void rproxy_route_down(struct shard *sh, unsigned slot);
/* Shard 0: free the table (after the shards stopped). */
void rproxy_fini(struct shard *sh);

/*
 * Owner side, shard 0: a ROUTE_FLOW from a peer on route conn c (pause or
 * resume the replay of one of its topic subscriptions). The SUBSCRIBE and
 * UNSUBSCRIBE frames of a route go to dispatch_subscribe/unsubscribe.
 */
void rproxy_serve_flow(struct conn *c, const struct codec_span *sp);

#endif
