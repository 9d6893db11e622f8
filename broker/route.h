/*
 * route.h - cluster routes: the TCP links between nodes of one cluster.
 *
 * All routes live on shard 0 (one thread owns every peer slot); other
 * shards reach them through xshard (XE_ROUTE entries for forwarding, peer
 * interest broadcast as interest of origin XORIGIN_PEER + slot). A route is
 * a struct conn with CONN_F_ROUTE whose frames go to route_frame() instead
 * of the client dispatcher; it reuses the connection's reassembly, output
 * queue and sends.
 *
 *   node A                                   node B
 *   ROUTE_CONNECT{cluster, node, secret, listen, peers}  <->  the same
 *   ROUTE_INTEREST{add/del (pattern, queue)}  ->  applied as B's view of A
 *   ROUTE_MSG{fields 1-4 of Publish, plain, groups}  ->  delivered on B only
 *
 * The mesh: each node dials its --routes and every address it learns from
 * a peer's RouteConnect (listen + peers); two routes to the same node are
 * resolved by keeping the one dialled by the node with the smaller name.
 * A failed route is dialled again with backoff (100 ms doubling to 2 s);
 * when it comes back both sides send their whole interest again.
 *
 * Thread: shard 0, except route_server_init/fini (main thread, before and
 * after the shards) and route_cluster_json (any thread).
 */
#ifndef RMQ_BROKER_ROUTE_H
#define RMQ_BROKER_ROUTE_H

#include <liburing.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringmq.pb-c.h"

struct shard;
struct server;
struct conn;
struct msgbuf;
struct rpeer;

/*
 * Main thread: when --cluster-listen is set, bind the route listener and
 * set srv->cluster. Returns 0, or -1 with err filled (the broker exits 2).
 */
int route_server_init(struct server *srv, char *err, size_t errlen);
void route_server_fini(struct server *srv);

/* Shard 0: arm the route accept and schedule the dials. */
void route_start(struct shard *sh);
/* Shard 0: stop accepting routes (shutdown). */
void route_stop(struct shard *sh);
/* Shard 0, every tick: dial what is due, refresh the JSON snapshot. */
void route_tick(struct shard *sh);
/* true while the route accept is armed (shutdown waits for it). */
bool route_accept_armed(struct shard *sh);

/* CQE handlers (shard.c). */
void route_on_accept(struct shard *sh, struct io_uring_cqe *cqe);
void route_on_connect(struct shard *sh, struct rpeer *p, struct io_uring_cqe *cqe);

/* A frame body (borrowed) on a route connection. */
void route_frame(struct conn *c, const uint8_t *body, size_t len);
/* A route connection is being freed. */
void route_conn_gone(struct shard *sh, struct conn *c);

/* Forward body (borrowed) to the peer in slot: plain and up to 3 groups;
 * or, with publish, as a publish for the peer to store (a topic it owns). */
void route_forward(struct shard *sh, unsigned slot, struct msgbuf *body, bool plain,
                   const uint64_t *g, unsigned ng, bool publish);
/* Shard 0: send a whole frame (copied) or a Frame to the peer in slot.
 * false if that route is not up. */
bool route_send_raw(struct shard *sh, unsigned slot, const uint8_t *frame, size_t len);
bool route_send_frame(struct shard *sh, unsigned slot, const Ringmq__Frame *f);
/* Shard 0: is the route in slot up and to node? */
bool route_slot_is(struct shard *sh, unsigned slot, const char *node);
/* Shard 0: this node's topic table changed; tell the peers. */
void route_topics_changed(struct shard *sh);
/* Any shard: the route slot of topic owner number owner, if it is up. */
bool route_owner_slot(struct server *srv, uint32_t owner, unsigned *slot);
/* A shard of this node gained (add) or lost key "pattern\0queue". */
void route_node_interest(struct shard *sh, const char *key, size_t klen, bool add);

/* JSON of the cluster state into out (NUL-terminated); returns its length. */
size_t route_cluster_json(struct server *srv, char *out, size_t cap);

#endif
