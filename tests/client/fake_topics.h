/*
 * fake_topics.h - the durable-topic part of the fake server (fake_server.c):
 * a registry of topics and consumers kept in memory, the answers to
 * $SYS.REQ.TOPIC.* and $SYS.REQ.CONSUMER.*, seq numbers and PubAcks for
 * publishes on a topic's subjects (with Rmq-Msg-Id deduplication), and the
 * acks of consumers ("$ACK.<topic>.<durable>.<seq>").
 *
 * Not a store: nothing is kept but counters, so there is no replay; topic
 * subscriptions get live messages only. No I/O and no lock: the fake calls
 * everything here under its own mutex and routes what comes back.
 */
#ifndef RMQ_TESTS_CLIENT_FAKE_TOPICS_H
#define RMQ_TESTS_CLIENT_FAKE_TOPICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"

#define FAKE_ACK_PREFIX "$ACK."

struct fake_topics;

/* Where a publish went: its topic, and the seq and time it was stored at
 * (seq 0: not stored, e.g. a duplicate or a failure: deliver nothing). */
struct fake_stored {
    const char *topic; /* borrowed from the registry */
    uint64_t seq, time_ns;
};

/* Live subscriptions bound to consumer (topic, durable); called by
 * fake_topics_admin() under the fake's mutex. */
typedef int (*fake_members_fn)(void *arg, const char *topic, const char *durable);

struct fake_topics *fake_topics_new(void);
void fake_topics_free(struct fake_topics *ft);

/* true if name is a topic. */
bool fake_topics_exists(const struct fake_topics *ft, const char *name);

/*
 * Answer the admin request m (subject $SYS.REQ.TOPIC.* / CONSUMER.*).
 * Returns false if the subject is not an admin subject; else true with a
 * malloc'd AdminReply payload in *out (*olen bytes).
 */
bool fake_topics_admin(struct fake_topics *ft, const struct codec_msg *m, fake_members_fn fn,
                       void *arg, uint8_t **out, size_t *olen);

/*
 * Store the publish m if a topic holds its subject. Returns false if none
 * does. Else fills *st and, when m has a reply, sets *ack to a malloc'd
 * PubAck payload (*alen bytes); *ack is NULL otherwise.
 */
bool fake_topics_store(struct fake_topics *ft, const struct codec_msg *m, struct fake_stored *st,
                       uint8_t **ack, size_t *alen);

/* A SUBSCRIBE with topic and durable: create the consumer if missing. */
void fake_topics_bind(struct fake_topics *ft, const char *topic, const char *durable,
                      uint32_t max_inflight, uint64_t ack_wait_ms, uint32_t max_deliver);

/* A publish on FAKE_ACK_PREFIX "<topic>.<durable>.<seq>": an ack (empty
 * payload) raises the ack floor, "-NAK" is counted. */
void fake_topics_ack(struct fake_topics *ft, const struct codec_msg *m);

/* Acks and naks received, over all consumers. */
uint64_t fake_topics_acks(const struct fake_topics *ft);
uint64_t fake_topics_naks(const struct fake_topics *ft);

/* From now on, every PubAck carries code (0: none) and nothing is stored. */
void fake_topics_fail_acks(struct fake_topics *ft, int code);

#endif
