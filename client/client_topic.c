/*
 * client_topic.c - the durable-topic side of libringmq (PROTOCOL.md,
 * "Durable topics"): topic and consumer admin, publishing with an ack,
 * topic subscriptions (replay) and durable consumers, acks and naks.
 *
 * Nothing here needs a new frame kind:
 *
 *   admin         request/reply on $SYS.REQ.TOPIC.* / $SYS.REQ.CONSUMER.*,
 *                 payloads TopicConfig / AdminRequest, reply AdminReply
 *   publish ack   PUBLISH{reply = "<inbox><id>", header Rmq-Msg-Id}; the
 *                 broker publishes a PubAck to the reply after the commit
 *                 (sync: client_request(); async: client_ack.c)
 *   replay        SUBSCRIBE{topic, start, ...}; after a reconnect it is
 *                 re-sent with START_SEQ = last seq delivered + 1
 *                 (client.c, sub_topic_fields())
 *   consumer      SUBSCRIBE{pattern ">", topic, durable, limits}
 *   ack / nak     PUBLISH{subject = the message's reply, "" or "-NAK"}
 *
 * The payloads are protobuf messages, packed and unpacked here with
 * protobuf-c; broker error codes go through codec_err_from_wire().
 * Every function may be called from any thread; the blocking ones (admin,
 * rmq_publish_ack) return -EDEADLK from a callback, as rmq_request() does.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_int.h"

#define TOPIC_SUBJ_ADD "$SYS.REQ.TOPIC.ADD"
#define TOPIC_SUBJ_INFO "$SYS.REQ.TOPIC.INFO"
#define TOPIC_SUBJ_LIST "$SYS.REQ.TOPIC.LIST"
#define TOPIC_SUBJ_RM "$SYS.REQ.TOPIC.RM"
#define CONSUMER_SUBJ_LIST "$SYS.REQ.CONSUMER.LIST"
#define CONSUMER_SUBJ_RM "$SYS.REQ.CONSUMER.RM"
#define MSG_ID_HEADER "Rmq-Msg-Id"
#define EXPECT_ACK_HEADER "Rmq-Expect-Ack"
#define MSG_ID_MAX 128
#define NAK_PAYLOAD "-NAK"

/* ---- Helpers ---- */

/* A topic or consumer name: 1..RMQ_NAME_MAX of [A-Za-z0-9_-]. */
static bool name_ok(const char *s)
{
    size_t n = 0;

    if (s == NULL)
        return false;
    for (; s[n]; n++) {
        char ch = s[n];
        bool alnum =
            (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        if (!alnum && ch != '_' && ch != '-')
            return false;
        if (n >= RMQ_NAME_MAX)
            return false;
    }
    return n > 0;
}

static bool msg_id_ok(const char *id)
{
    size_t n;

    if (id == NULL)
        return true;
    n = strlen(id);
    return n >= 1 && n <= MSG_ID_MAX;
}

/* Copy a string from the wire into a fixed buffer, truncating. */
static void copy_str(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

/* Pack a protobuf message into a malloc'd buffer. -ENOMEM or 0. */
static int pack_msg(const ProtobufCMessage *msg, uint8_t **out, size_t *len)
{
    size_t n = protobuf_c_message_get_packed_size(msg);

    *out = malloc(n ? n : 1);
    if (*out == NULL)
        return -ENOMEM;
    *len = protobuf_c_message_pack(msg, *out);
    return 0;
}

/* ---- Admin calls ---- */

/*
 * One admin request/reply: send payload (borrowed) to subj, unpack the
 * AdminReply into *out (free it with ringmq__admin_reply__free_unpacked).
 * Returns 0, the broker's error (AdminReply.code through
 * codec_err_from_wire(); *out is then NULL), RMQ_EFRAME for a reply that
 * does not decode, or any error of rmq_request().
 */
static int admin_call(rmq_client *c, const char *subj, const uint8_t *payload, size_t len,
                      int timeout_ms, Ringmq__AdminReply **out)
{
    rmq_msg *reply;
    Ringmq__AdminReply *r;
    int rc;

    *out = NULL;
    rc = client_request(c, subj, NULL, 0, payload, len, timeout_ms, &reply);
    if (rc < 0)
        return rc;
    r = ringmq__admin_reply__unpack(NULL, rmq_msg_len(reply), rmq_msg_data(reply));
    rmq_msg_free(reply);
    if (r == NULL)
        return RMQ_EFRAME;
    if (r->has_code) {
        rc = codec_err_from_wire(r->code);
        ringmq__admin_reply__free_unpacked(r, NULL);
        return rc;
    }
    *out = r;
    return 0;
}

/* An admin call whose request is AdminRequest{topic, consumer?}. */
static int admin_named(rmq_client *c, const char *subj, const char *topic, const char *consumer,
                       int timeout_ms, Ringmq__AdminReply **out)
{
    Ringmq__AdminRequest req = RINGMQ__ADMIN_REQUEST__INIT;
    uint8_t *buf;
    size_t len;
    int rc;

    *out = NULL;
    if (c == NULL || !name_ok(topic) || (consumer && !name_ok(consumer)))
        return -EINVAL;
    req.topic = (char *)topic;
    req.consumer = (char *)consumer;
    rc = pack_msg(&req.base, &buf, &len);
    if (rc < 0)
        return rc;
    rc = admin_call(c, subj, buf, len, timeout_ms, out);
    free(buf);
    return rc;
}

/* Fill *out from a TopicInfo of the wire. Strings are truncated to fit;
 * subjects past RMQ_TOPIC_SUBJECTS_MAX are left out. */
static void topic_info_fill(const Ringmq__TopicInfo *ti, rmq_topic_info *out)
{
    const Ringmq__TopicConfig *cfg = ti->config;

    memset(out, 0, sizeof(*out));
    copy_str(out->name, sizeof(out->name), cfg->name);
    for (size_t i = 0; i < cfg->n_subjects && i < RMQ_TOPIC_SUBJECTS_MAX; i++)
        copy_str(out->subjects[out->nsubjects++], sizeof(out->subjects[0]), cfg->subjects[i]);
    out->max_msgs = cfg->max_msgs;
    out->max_bytes = cfg->max_bytes;
    out->max_age_ms = cfg->max_age_ms;
    out->dedup_window_ms = cfg->dedup_window_ms; /* the proto default when absent */
    out->msgs = ti->msgs;
    out->bytes = ti->bytes;
    out->first_seq = ti->first_seq;
    out->last_seq = ti->last_seq;
    out->first_time_ns = ti->first_time_ns;
    out->last_time_ns = ti->last_time_ns;
    out->consumers = ti->consumers;
    if (ti->node)
        copy_str(out->node, sizeof(out->node), ti->node);
    out->node_down = ti->has_node_down && ti->node_down;
}

/* The first topic of a reply into *info (may be NULL); RMQ_EFRAME if the
 * reply has none. Frees r. */
static int reply_first_topic(Ringmq__AdminReply *r, rmq_topic_info *info)
{
    int rc = r->n_topics > 0 ? 0 : RMQ_EFRAME;

    if (rc == 0 && info != NULL)
        topic_info_fill(r->topics[0], info);
    ringmq__admin_reply__free_unpacked(r, NULL);
    return rc;
}

static int topic_cfg_check(const rmq_topic_cfg *cfg)
{
    if (cfg == NULL || !name_ok(cfg->name) || cfg->nsubjects == 0 ||
        cfg->nsubjects > RMQ_TOPIC_SUBJECTS_MAX || cfg->subjects == NULL)
        return -EINVAL;
    for (size_t i = 0; i < cfg->nsubjects; i++) {
        const char *p = cfg->subjects[i];
        if (p == NULL)
            return -EINVAL;
        if (client_pattern_check(p, strlen(p)) < 0)
            return RMQ_ESUBJECT;
    }
    return 0;
}

/*
 * See ringmq.h. Checks the name (-EINVAL), the number of subjects (-EINVAL)
 * and their syntax (RMQ_ESUBJECT) before sending anything. cfg and its
 * strings are borrowed; *info is filled on success. Any thread but the I/O
 * thread.
 */
int rmq_topic_add(rmq_client *c, const rmq_topic_cfg *cfg, int timeout_ms, rmq_topic_info *info)
{
    Ringmq__TopicConfig tc = RINGMQ__TOPIC_CONFIG__INIT;
    Ringmq__AdminReply *r;
    uint8_t *buf;
    size_t len;
    int rc;

    if (c == NULL)
        return -EINVAL;
    rc = topic_cfg_check(cfg);
    if (rc < 0)
        return rc;
    tc.name = (char *)cfg->name;
    tc.n_subjects = cfg->nsubjects;
    tc.subjects = (char **)cfg->subjects;
    tc.has_max_msgs = cfg->max_msgs != 0;
    tc.max_msgs = cfg->max_msgs;
    tc.has_max_bytes = cfg->max_bytes != 0;
    tc.max_bytes = cfg->max_bytes;
    tc.has_max_age_ms = cfg->max_age_ms != 0;
    tc.max_age_ms = cfg->max_age_ms;
    tc.has_dedup_window_ms = cfg->dedup_window_ms != 0; /* absent: the broker's default */
    tc.dedup_window_ms = cfg->dedup_window_ms;
    rc = pack_msg(&tc.base, &buf, &len);
    if (rc < 0)
        return rc;
    rc = admin_call(c, TOPIC_SUBJ_ADD, buf, len, timeout_ms, &r);
    free(buf);
    return rc < 0 ? rc : reply_first_topic(r, info);
}

/* See ringmq.h. -EINVAL for a bad name or a NULL argument. Any thread but
 * the I/O thread. */
int rmq_topic_info_get(rmq_client *c, const char *name, int timeout_ms, rmq_topic_info *info)
{
    Ringmq__AdminReply *r;
    int rc;

    if (info == NULL)
        return -EINVAL;
    rc = admin_named(c, TOPIC_SUBJ_INFO, name, NULL, timeout_ms, &r);
    return rc < 0 ? rc : reply_first_topic(r, info);
}

/* See ringmq.h. On success *out (NULL when *n is 0) belongs to the caller
 * (free()). Any thread but the I/O thread. */
int rmq_topic_list(rmq_client *c, int timeout_ms, rmq_topic_info **out, size_t *n)
{
    Ringmq__AdminReply *r;
    rmq_topic_info *v = NULL;
    int rc;

    if (c == NULL || out == NULL || n == NULL)
        return -EINVAL;
    rc = admin_call(c, TOPIC_SUBJ_LIST, NULL, 0, timeout_ms, &r);
    if (rc < 0)
        return rc;
    if (r->n_topics > 0 && (v = calloc(r->n_topics, sizeof(*v))) == NULL) {
        ringmq__admin_reply__free_unpacked(r, NULL);
        return -ENOMEM;
    }
    for (size_t i = 0; i < r->n_topics; i++)
        topic_info_fill(r->topics[i], &v[i]);
    *out = v;
    *n = r->n_topics;
    ringmq__admin_reply__free_unpacked(r, NULL);
    return 0;
}

/* See ringmq.h. Any thread but the I/O thread. */
int rmq_topic_rm(rmq_client *c, const char *name, int timeout_ms)
{
    Ringmq__AdminReply *r;
    int rc = admin_named(c, TOPIC_SUBJ_RM, name, NULL, timeout_ms, &r);

    if (rc == 0)
        ringmq__admin_reply__free_unpacked(r, NULL);
    return rc;
}

static void consumer_info_fill(const Ringmq__ConsumerInfo *ci, rmq_consumer_info *out)
{
    memset(out, 0, sizeof(*out));
    copy_str(out->topic, sizeof(out->topic), ci->topic);
    copy_str(out->name, sizeof(out->name), ci->name);
    out->ack_floor = ci->ack_floor;
    out->max_inflight = ci->max_inflight;
    out->ack_wait_ms = ci->ack_wait_ms;
    out->max_deliver = ci->max_deliver;
    out->inflight = ci->inflight;
    out->members = ci->members;
    out->redelivered = ci->redelivered;
}

/* See ringmq.h. On success *out (NULL when *n is 0) belongs to the caller
 * (free()). Any thread but the I/O thread. */
int rmq_consumer_list(rmq_client *c, const char *topic, int timeout_ms, rmq_consumer_info **out,
                      size_t *n)
{
    Ringmq__AdminReply *r;
    rmq_consumer_info *v = NULL;
    int rc;

    if (out == NULL || n == NULL)
        return -EINVAL;
    rc = admin_named(c, CONSUMER_SUBJ_LIST, topic, NULL, timeout_ms, &r);
    if (rc < 0)
        return rc;
    if (r->n_consumers > 0 && (v = calloc(r->n_consumers, sizeof(*v))) == NULL) {
        ringmq__admin_reply__free_unpacked(r, NULL);
        return -ENOMEM;
    }
    for (size_t i = 0; i < r->n_consumers; i++)
        consumer_info_fill(r->consumers[i], &v[i]);
    *out = v;
    *n = r->n_consumers;
    ringmq__admin_reply__free_unpacked(r, NULL);
    return 0;
}

/* See ringmq.h. Any thread but the I/O thread. */
int rmq_consumer_rm(rmq_client *c, const char *topic, const char *durable, int timeout_ms)
{
    Ringmq__AdminReply *r;
    int rc;

    if (durable == NULL)
        return -EINVAL;
    rc = admin_named(c, CONSUMER_SUBJ_RM, topic, durable, timeout_ms, &r);
    if (rc == 0)
        ringmq__admin_reply__free_unpacked(r, NULL);
    return rc;
}

/* ---- Publishing with an ack ---- */

/*
 * Decode the PubAck in the payload of m (borrowed) into *ack. Returns 0,
 * the broker's error (PubAck.code through codec_err_from_wire()), or
 * RMQ_ENOTFOUND when the payload is not a PubAck of a stored message: on a
 * topic's subjects only the broker answers, and its PubAck always has a
 * topic and a seq (or a code), so any other answer came from an ordinary
 * responder on a subject no topic holds. Any thread.
 */
int client_puback_decode(const rmq_msg *m, rmq_pub_ack *ack)
{
    Ringmq__PubAck *pa = ringmq__pub_ack__unpack(NULL, rmq_msg_len(m), rmq_msg_data(m));
    int rc = 0;

    memset(ack, 0, sizeof(*ack));
    if (pa == NULL)
        return RMQ_ENOTFOUND;
    if (pa->has_code)
        rc = codec_err_from_wire(pa->code);
    else if (pa->topic == NULL || !pa->has_seq || pa->seq == 0)
        rc = RMQ_ENOTFOUND;
    if (rc == 0) {
        copy_str(ack->topic, sizeof(ack->topic), pa->topic);
        ack->seq = pa->seq;
        ack->duplicate = pa->has_duplicate && pa->duplicate;
    }
    ringmq__pub_ack__free_unpacked(pa, NULL);
    return rc;
}

/*
 * The headers of an acked publish into h[2]: Rmq-Expect-Ack (so a subject
 * no topic stores gets NO_TOPIC at once, not a timeout; the broker does not
 * store it), and Rmq-Msg-Id for msg_id (borrowed) unless it is NULL.
 */
static size_t msg_id_header(const char *msg_id, rmq_header *h)
{
    h[0].key = EXPECT_ACK_HEADER;
    h[0].value = "1";
    h[0].value_len = 1;
    if (msg_id == NULL)
        return 1;
    h[1].key = MSG_ID_HEADER;
    h[1].value = msg_id;
    h[1].value_len = strlen(msg_id);
    return 2;
}

/*
 * See ringmq.h. A request/reply through the inbox (client_request()): the
 * PubAck is the reply. data and msg_id are copied before the wait. Any
 * thread but the I/O thread.
 */
int rmq_publish_ack(rmq_client *c, const char *subj, const void *data, size_t len,
                    const char *msg_id, int timeout_ms, rmq_pub_ack *ack)
{
    rmq_header h[2];
    size_t nh = msg_id_header(msg_id, h);
    rmq_pub_ack tmp;
    rmq_msg *reply;
    int rc;

    if (!msg_id_ok(msg_id))
        return -EINVAL;
    rc = client_request(c, subj, h, nh, data, len, timeout_ms, &reply);
    if (rc < 0)
        return rc;
    rc = client_puback_decode(reply, ack ? ack : &tmp);
    rmq_msg_free(reply);
    return rc;
}

/*
 * Register ack (taken by the table on success) and append the publish p,
 * its reply subject made from a new id, under one hold of c->mu: the table
 * has the entry before the frame can reach the server. Returns 0 or an
 * error of rmq_publish() (ack is then recycled).
 */
static int ack_publish_locked(rmq_client *c, struct client_pub *p, struct client_ack *a)
{
    char rsubj[sizeof(c->inbox_prefix) + 24];
    int rc;

    a->id = ++c->req_seq;
    p->rlen = (size_t)snprintf(rsubj, sizeof(rsubj), "%s%" PRIu64, c->inbox_prefix, a->id);
    p->reply = rsubj;
    rc = client_pub_append_locked(c, p);
    p->reply = NULL;
    if (rc < 0) {
        client_ack_recycle_locked(c, a);
        return rc;
    }
    client_ack_insert_locked(c, a);
    return 0;
}

/*
 * See ringmq.h. Everything is copied before return; cb runs once on the I/O
 * thread (see client_ack.c). -EINVAL also for a NULL cb, a bad msg_id or a
 * timeout below -1. Any thread, callbacks included.
 */
int rmq_publish_ack_async(rmq_client *c, const char *subj, const void *data, size_t len,
                          const char *msg_id, int timeout_ms, rmq_ack_cb cb, void *arg)
{
    struct client_pub p;
    struct client_ack *a = NULL;
    rmq_header h[2];
    size_t nh = msg_id_header(msg_id, h);
    int rc;

    if (c == NULL || cb == NULL || timeout_ms < -1 || !msg_id_ok(msg_id))
        return -EINVAL;
    rc = client_pub_prepare(&p, subj, NULL, h, nh, data, len);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&c->mu);
    rc = client_inbox_ensure_locked(c);
    if (rc == 0 && (a = client_ack_alloc_locked(c)) == NULL)
        rc = -ENOMEM;
    if (rc == 0) {
        a->cb = cb;
        a->arg = arg;
        a->deadline_ns =
            timeout_ms < 0 ? INT64_MAX : client_now_ns() + (int64_t)timeout_ms * 1000000;
        rc = ack_publish_locked(c, &p, a);
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* ---- Topic subscriptions and consumers ---- */

/* See ringmq.h. o NULL means RMQ_START_NEW. Any thread, callbacks included. */
int rmq_subscribe_topic(rmq_client *c, const char *topic, const char *pattern,
                        const rmq_replay_opts *o, rmq_msg_cb cb, void *arg, rmq_sub **out)
{
    struct client_sub_spec sp = {.pattern = pattern, .topic = topic, .cb = cb, .arg = arg};

    if (!name_ok(topic))
        return -EINVAL;
    if (o != NULL) {
        if ((int)o->start < RMQ_START_NEW || (int)o->start > RMQ_START_LAST)
            return -EINVAL;
        sp.start = *o;
    }
    return client_sub_create(c, &sp, out);
}

/* See ringmq.h. o NULL: the broker's defaults. Any thread, callbacks
 * included. */
int rmq_consume(rmq_client *c, const char *topic, const char *durable, const rmq_consumer_opts *o,
                rmq_msg_cb cb, void *arg, rmq_sub **out)
{
    struct client_sub_spec sp = {
        .pattern = ">", .topic = topic, .durable = durable, .cb = cb, .arg = arg};

    if (!name_ok(topic) || !name_ok(durable))
        return -EINVAL;
    if (o != NULL)
        sp.cons = *o;
    return client_sub_create(c, &sp, out);
}

/* Publish payload to the reply subject of a consumer's message m. */
static int ack_send(rmq_client *c, const rmq_msg *m, const char *payload, size_t len)
{
    if (c == NULL || m == NULL || rmq_msg_reply(m) == NULL || rmq_msg_seq(m) == 0)
        return -EINVAL;
    return client_publish(c, rmq_msg_reply(m), NULL, NULL, 0, payload, len);
}

/* See ringmq.h. An empty PUBLISH to the message's reply subject; -EINVAL
 * if m has no reply or no seq; else as rmq_publish(). Any thread,
 * callbacks included. */
int rmq_ack(rmq_client *c, const rmq_msg *m)
{
    return ack_send(c, m, "", 0);
}

/* See ringmq.h. "-NAK" to the message's reply subject; errors as rmq_ack(). */
int rmq_nak(rmq_client *c, const rmq_msg *m)
{
    return ack_send(c, m, NAK_PAYLOAD, sizeof(NAK_PAYLOAD) - 1);
}
