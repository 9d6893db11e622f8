/*
 * conn.h - a client connection on a shard: handshake, frame dispatch,
 * subscriptions, the outgoing queue and the close protocol.
 *
 * Thread: every function runs on the connection's own shard thread.
 */
#ifndef RMQ_BROKER_CONN_H
#define RMQ_BROKER_CONN_H

#include "shard.h"
#include "ringmq.pb-c.h"

/* Would queuing more bytes make c a slow consumer? See conn.c. */
bool conn_is_slow(const struct conn *c, uint64_t more);

/* Create a connection for an accepted fd (taken over) and arm its recv. */
struct conn *conn_new(struct shard *sh, int fd);

/* Feed n received bytes (borrowed; copied only if a frame is left partial). */
void conn_on_data(struct conn *c, const uint8_t *p, size_t n);

/* The recv multishot finished with res (<= 0) or ended; see conn.c. */
void conn_on_recv_end(struct conn *c, int res);

/* The in-flight sendmsg completed with res. keep_blk: it was a zero-copy
 * send whose NOTIF is still to come; its iovblk stays alive until then. */
void conn_on_send(struct conn *c, int res, bool keep_blk);

/* liburing 2.3 lacks these (kernel 6.1 names); see IOURING.md section 9. */
#define RMQ_SEND_ZC_REPORT_USAGE (1U << 3)
#define RMQ_NOTIF_USAGE_ZC_COPIED (1U << 31)
/* After this many copied zero-copy sends a conn uses plain sends. (A
 * measurement build may raise it: -DCONN_ZC_COPIED_MAX=1000000000.) */
#ifndef CONN_ZC_COPIED_MAX
#define CONN_ZC_COPIED_MAX 4
#endif

/*
 * A zero-copy send is over for the kernel (its NOTIF, or a first CQE
 * without F_MORE): drop the body references the block held and free it.
 * notif_res is the NOTIF's res (usage report) when notif is true.
 */
void conn_zc_done(struct iovblk *b, int notif_res, bool notif);

/* The shard's pool of iovec blocks. */
struct iovblk *blk_get(struct shard *sh);
void blk_put(struct shard *sh, struct iovblk *b);

/* Submit one sendmsg with everything queued, if none is in flight. */
void conn_flush(struct conn *c);

/*
 * Queue a small frame by copying it: prefix (plen bytes) then data (dlen
 * bytes) are appended to a buffer of the connection's own at the tail of
 * its queue (a new one when there is none or it is full: CONN_COPY_FIRST
 * bytes after a referenced item, doubling up to CONN_COPY_BUF while they
 * fill). Consecutive small frames then go out as one iovec instead of two
 * per frame, with no reference taken on a shared body. For a route, which
 * carries every message for a node; plen + dlen must be <= CONN_COPY_MAX.
 * Same slow-consumer rules and return value as conn_enqueue(); a frame
 * queued by conn_enqueue() closes the buffer (no frame is ever appended
 * behind a later one).
 */
#define CONN_COPY_MAX 512
#define CONN_COPY_BUF 16360 /* a msgbuf size class: 16 KiB with its header */
#define CONN_COPY_FIRST 488 /* the first buffer after a referenced item (a class too) */
bool conn_enqueue_copy(struct conn *c, const uint8_t *prefix, size_t plen, const uint8_t *data,
                       size_t dlen, bool force);

/*
 * Queue a frame: prefix (plen bytes, copied) then body (one reference is
 * taken, may be NULL). When force is false and the connection's pending
 * bytes would pass max_pending, the frame is not queued, the connection is
 * marked slow if conn_is_slow() says so (handled by conn_slow_close after
 * the current publish) and false is returned; otherwise it is queued.
 */
bool conn_enqueue(struct conn *c, const uint8_t *prefix, size_t plen, struct msgbuf *body,
                  bool force);

/* Send an ERROR frame. fatal: then stop reading and close after flushing. */
void conn_send_error(struct conn *c, Ringmq__ErrorCode code, const char *text, uint64_t sid,
                     bool fatal);

/* Queue a PONG with token (answers a PING once interest is settled). */
void conn_send_pong(struct conn *c, uint64_t token);

/* Encode f (protobuf-c) and queue it on c, past the slow-consumer limit. */
void conn_send_frame(struct conn *c, const Ringmq__Frame *f);

/* Disconnect a slow consumer: drop its queue, send the error, drain. */
void conn_slow_close(struct conn *c);

/* Remove one subscription (trie, map) and free it. */
void conn_sub_remove(struct conn *c, struct sub *s);

/*
 * Back-pressure: pause reading from a publisher (its socket then fills and
 * TCP slows it down), because what it published reached a shard whose
 * subscribers are backlogged. The shard loop resumes it when no shard is
 * backlogged any more, or after CONN_STALL_NS at the latest, so a consumer
 * that never reads holds publishers back only in bounded steps until it is
 * cut off as slow. No-op if already stalled or closing.
 */
#define CONN_STALL_NS (50 * 1000000ull)
void conn_stall(struct conn *c);

/* Stop reading (shutdown); subscriptions and output go on. */
void conn_stop_reading(struct conn *c);

/* Stop reading, close once everything queued is sent (or the deadline). */
void conn_drain(struct conn *c, unsigned timeout_ms);

/* Close now: cancel I/O; the memory goes once inflight reaches zero. */
void conn_close(struct conn *c);

/* Called after each completion for a closing conn: free it when idle. */
void conn_maybe_release(struct conn *c);

/* Free the memory of a released conn (end of loop iteration). */
void conn_free(struct conn *c);

#endif
