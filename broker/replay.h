/*
 * replay.h - topic subscriptions: replay the stored messages of a durable
 * topic from a start position, then switch to live delivery with no gap
 * and no duplicate; and the consumer-binding hooks of topic.c.
 *
 * A topic subscription is in the shard's trie like any other, so live
 * messages reach it; it delivers a live message only if its seq is the next
 * one it expects. Until then (state WAIT, READ) it reads the store in
 * chunks, as the connection's output drains:
 *
 *   WAIT  until every shard has applied its interest (then a message
 *         committed after our first read is sure to be routed to us)
 *   READ  store_read() chunks from next; when a read finds nothing: LIVE
 *   LIVE  seq == next: deliver; seq < next: drop (duplicate);
 *         seq > next (a gap: a message came through another shard first,
 *         or was filtered): back to READ, which fills it in order
 *
 * Thread: the shard's own thread. Replays read the store with short read
 * transactions (store_read is "Thread: any"); they never write.
 */
#ifndef RMQ_BROKER_REPLAY_H
#define RMQ_BROKER_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringmq.pb-c.h"

struct shard;
struct conn;
struct sub;
struct replay;
struct dop_bind;

#define REPLAY_HIWAT (1u << 20) /* read more only while the conn has less queued */

/*
 * Check a SUBSCRIBE with a topic (no durable) and work out where it starts.
 * Returns 0 with *out to attach, or -1 after sending the ERROR.
 */
int replay_prepare(struct conn *c, const Ringmq__Subscribe *m, struct replay **out);
/* Give rp to s (already in the trie and in the interest broadcast). */
void replay_attach(struct shard *sh, struct sub *s, struct replay *rp);
/* s is going away: forget its replay. */
void replay_free(struct shard *sh, struct sub *s);
/* Pause (no reads, live messages skipped) or resume a topic subscription;
 * on resume it reads what it skipped from the store. */
void replay_pause(struct shard *sh, struct sub *s, bool pause);
/* The topic id of a topic subscription. */
uint32_t replay_topic(const struct sub *s);
/* Should the live message (seq, subject) go to s? Updates its state. */
bool replay_offer(struct shard *sh, struct sub *s, uint64_t seq, const char *subj, size_t slen);
/* Advance every replay that can make progress (one chunk each). */
void replay_run(struct shard *sh);
/* true if replay_run has work right now (the loop must not sleep). */
bool replay_busy(struct shard *sh);

/*
 * Consumer bindings (topic.c). prepare checks a SUBSCRIBE with a durable
 * and returns the BIND op to attach (-1 after sending the ERROR); attach
 * links it to s and sends it; unbind runs when s goes away.
 */
int topic_bind_prepare(struct conn *c, const Ringmq__Subscribe *m, struct dop_bind **out);
void topic_bind_attach(struct shard *sh, struct sub *s, struct dop_bind *op);
void topic_unbind(struct shard *sh, struct sub *s);

#endif
