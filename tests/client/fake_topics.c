/*
 * fake_topics.c - see fake_topics.h. Fixed-size tables, linear searches:
 * a handful of topics and consumers per test.
 *
 * Requests and replies are protobuf-c messages of ringmq.proto, so the
 * client's packing and unpacking are checked against protoc-c's code, not
 * against a second hand-written codec.
 */
#include "fake_topics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "subject.h"

#define FT_TOPICS 8
#define FT_CONSUMERS 16
#define FT_SUBJECTS 16
#define FT_IDS 64 /* msg ids remembered per topic (a ring) */
#define FT_NAME 72

struct ftopic {
    char name[FT_NAME];
    char subjects[FT_SUBJECTS][260];
    size_t nsubjects;
    uint64_t max_msgs, max_bytes, max_age_ms, dedup_window_ms;
    uint64_t msgs, bytes, last_seq, first_time_ns, last_time_ns;
    char ids[FT_IDS][132];
    uint64_t id_seq[FT_IDS];
    size_t nids;
};

struct fconsumer {
    bool used;
    char topic[FT_NAME], name[FT_NAME];
    uint32_t max_inflight, max_deliver;
    uint64_t ack_wait_ms, ack_floor;
};

struct fake_topics {
    struct ftopic topics[FT_TOPICS]; /* creation order */
    size_t ntopics;
    struct fconsumer consumers[FT_CONSUMERS];
    uint64_t acks, naks;
    int fail_code;
};

static uint64_t realtime_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static bool name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-'))
            return false;
    return true;
}

static struct ftopic *topic_find(struct fake_topics *ft, const char *name)
{
    for (size_t i = 0; name && i < ft->ntopics; i++)
        if (strcmp(ft->topics[i].name, name) == 0)
            return &ft->topics[i];
    return NULL;
}

static struct fconsumer *consumer_find(struct fake_topics *ft, const char *topic, const char *name)
{
    for (size_t i = 0; i < FT_CONSUMERS; i++) {
        struct fconsumer *k = &ft->consumers[i];
        if (k->used && strcmp(k->topic, topic) == 0 && strcmp(k->name, name) == 0)
            return k;
    }
    return NULL;
}

static uint32_t consumer_count(const struct fake_topics *ft, const char *topic)
{
    uint32_t n = 0;

    for (size_t i = 0; i < FT_CONSUMERS; i++)
        n += ft->consumers[i].used && strcmp(ft->consumers[i].topic, topic) == 0;
    return n;
}

/* See fake_topics.h. */
struct fake_topics *fake_topics_new(void)
{
    return calloc(1, sizeof(struct fake_topics));
}

/* See fake_topics.h. */
void fake_topics_free(struct fake_topics *ft)
{
    free(ft);
}

/* See fake_topics.h. */
bool fake_topics_exists(const struct fake_topics *ft, const char *name)
{
    return topic_find((struct fake_topics *)ft, name) != NULL;
}

/* ---- Admin replies ---- */

static void pack_reply(const Ringmq__AdminReply *r, uint8_t **out, size_t *olen)
{
    *olen = ringmq__admin_reply__get_packed_size(r);
    *out = malloc(*olen + 1);
    ringmq__admin_reply__pack(r, *out);
}

static void reply_error(int code, const char *text, uint8_t **out, size_t *olen)
{
    Ringmq__AdminReply r = RINGMQ__ADMIN_REPLY__INIT;

    r.has_code = true;
    r.code = (Ringmq__ErrorCode)code;
    r.error = (char *)text;
    pack_reply(&r, out, olen);
}

/* The TopicInfo of t; cfg and subj are the caller's storage for it. */
static void topic_to_wire(const struct fake_topics *ft, const struct ftopic *t,
                          Ringmq__TopicInfo *ti, Ringmq__TopicConfig *cfg, char **subj)
{
    ringmq__topic_info__init(ti);
    ringmq__topic_config__init(cfg);
    cfg->name = (char *)t->name;
    for (size_t i = 0; i < t->nsubjects; i++)
        subj[i] = (char *)t->subjects[i];
    cfg->subjects = subj;
    cfg->n_subjects = t->nsubjects;
    cfg->has_max_msgs = cfg->has_max_bytes = cfg->has_max_age_ms = true;
    cfg->max_msgs = t->max_msgs;
    cfg->max_bytes = t->max_bytes;
    cfg->max_age_ms = t->max_age_ms;
    cfg->has_dedup_window_ms = true;
    cfg->dedup_window_ms = t->dedup_window_ms;
    ti->config = cfg;
    ti->has_msgs = ti->has_bytes = ti->has_first_seq = ti->has_last_seq = true;
    ti->msgs = t->msgs;
    ti->bytes = t->bytes;
    ti->first_seq = t->msgs ? t->last_seq - t->msgs + 1 : t->last_seq + 1;
    ti->last_seq = t->last_seq;
    ti->has_first_time_ns = ti->has_last_time_ns = true;
    ti->first_time_ns = t->first_time_ns;
    ti->last_time_ns = t->last_time_ns;
    ti->has_consumers = true;
    ti->consumers = consumer_count(ft, t->name);
}

/* A reply with the topics t[0..n). */
static void reply_topics(const struct fake_topics *ft, const struct ftopic *const *t, size_t n,
                         uint8_t **out, size_t *olen)
{
    Ringmq__AdminReply r = RINGMQ__ADMIN_REPLY__INIT;
    Ringmq__TopicInfo ti[FT_TOPICS], *tp[FT_TOPICS];
    Ringmq__TopicConfig cfg[FT_TOPICS];
    char *subj[FT_TOPICS][FT_SUBJECTS];

    for (size_t i = 0; i < n; i++) {
        topic_to_wire(ft, t[i], &ti[i], &cfg[i], subj[i]);
        tp[i] = &ti[i];
    }
    r.n_topics = n;
    r.topics = tp;
    pack_reply(&r, out, olen);
}

static void admin_add(struct fake_topics *ft, const struct codec_msg *m, uint8_t **out,
                      size_t *olen)
{
    Ringmq__TopicConfig *tc = ringmq__topic_config__unpack(NULL, m->payload.len, m->payload.p);
    struct ftopic *t;

    if (tc == NULL || !name_ok(tc->name) || tc->n_subjects == 0 || tc->n_subjects > FT_SUBJECTS) {
        reply_error(RINGMQ__ERROR_CODE__ERR_INVALID, "bad topic config", out, olen);
        goto out;
    }
    for (size_t i = 0; i < tc->n_subjects; i++) {
        const char *p = tc->subjects[i];
        if (subject_check_pattern(p, strlen(p)) != 0) {
            reply_error(RINGMQ__ERROR_CODE__ERR_INVALID, "bad subject", out, olen);
            goto out;
        }
        for (size_t j = 0; j < ft->ntopics; j++)
            for (size_t k = 0; k < ft->topics[j].nsubjects; k++)
                if (subject_patterns_overlap(p, strlen(p), ft->topics[j].subjects[k],
                                             strlen(ft->topics[j].subjects[k]))) {
                    reply_error(RINGMQ__ERROR_CODE__ERR_EXISTS, "subjects overlap", out, olen);
                    goto out;
                }
    }
    if (topic_find(ft, tc->name) || ft->ntopics == FT_TOPICS) {
        reply_error(RINGMQ__ERROR_CODE__ERR_EXISTS, "topic exists", out, olen);
        goto out;
    }
    t = &ft->topics[ft->ntopics++];
    memset(t, 0, sizeof(*t));
    snprintf(t->name, sizeof(t->name), "%s", tc->name);
    for (size_t i = 0; i < tc->n_subjects; i++)
        snprintf(t->subjects[i], sizeof(t->subjects[i]), "%s", tc->subjects[i]);
    t->nsubjects = tc->n_subjects;
    t->max_msgs = tc->max_msgs;
    t->max_bytes = tc->max_bytes;
    t->max_age_ms = tc->max_age_ms;
    t->dedup_window_ms = tc->dedup_window_ms; /* 120000 when absent (proto default) */
    reply_topics(ft, (const struct ftopic *const[]){t}, 1, out, olen);
out:
    if (tc)
        ringmq__topic_config__free_unpacked(tc, NULL);
}

static void topic_remove(struct fake_topics *ft, struct ftopic *t)
{
    size_t i = (size_t)(t - ft->topics);

    for (size_t k = 0; k < FT_CONSUMERS; k++)
        if (ft->consumers[k].used && strcmp(ft->consumers[k].topic, t->name) == 0)
            ft->consumers[k].used = false;
    memmove(&ft->topics[i], &ft->topics[i + 1], (ft->ntopics - i - 1) * sizeof(*t));
    ft->ntopics--;
}

static void reply_consumers(struct fake_topics *ft, const char *topic, fake_members_fn fn,
                            void *arg, uint8_t **out, size_t *olen)
{
    Ringmq__AdminReply r = RINGMQ__ADMIN_REPLY__INIT;
    Ringmq__ConsumerInfo ci[FT_CONSUMERS], *cp[FT_CONSUMERS];
    size_t n = 0;

    for (size_t i = 0; i < FT_CONSUMERS; i++) {
        struct fconsumer *k = &ft->consumers[i];
        if (!k->used || strcmp(k->topic, topic) != 0)
            continue;
        ringmq__consumer_info__init(&ci[n]);
        ci[n].topic = k->topic;
        ci[n].name = k->name;
        ci[n].has_ack_floor = ci[n].has_max_inflight = ci[n].has_ack_wait_ms = true;
        ci[n].ack_floor = k->ack_floor;
        ci[n].max_inflight = k->max_inflight;
        ci[n].ack_wait_ms = k->ack_wait_ms;
        ci[n].has_max_deliver = ci[n].has_members = true;
        ci[n].max_deliver = k->max_deliver;
        ci[n].members = (uint32_t)fn(arg, k->topic, k->name);
        cp[n] = &ci[n];
        n++;
    }
    r.n_consumers = n;
    r.consumers = cp;
    pack_reply(&r, out, olen);
}

/* INFO, RM and the consumer calls: all take an AdminRequest. */
static void admin_named(struct fake_topics *ft, const char *op, const struct codec_msg *m,
                        fake_members_fn fn, void *arg, uint8_t **out, size_t *olen)
{
    Ringmq__AdminRequest *rq = ringmq__admin_request__unpack(NULL, m->payload.len, m->payload.p);
    struct ftopic *t = rq ? topic_find(ft, rq->topic) : NULL;
    struct fconsumer *k;

    if (rq == NULL) {
        reply_error(RINGMQ__ERROR_CODE__ERR_INVALID, "bad request", out, olen);
        return;
    }
    if (t == NULL) {
        reply_error(RINGMQ__ERROR_CODE__ERR_NO_TOPIC, "no such topic", out, olen);
    } else if (strcmp(op, "TOPIC.INFO") == 0) {
        reply_topics(ft, (const struct ftopic *const[]){t}, 1, out, olen);
    } else if (strcmp(op, "TOPIC.RM") == 0) {
        topic_remove(ft, t);
        reply_topics(ft, NULL, 0, out, olen);
    } else if (strcmp(op, "CONSUMER.LIST") == 0) {
        reply_consumers(ft, t->name, fn, arg, out, olen);
    } else if (strcmp(op, "CONSUMER.RM") == 0 &&
               (k = consumer_find(ft, t->name, rq->consumer ? rq->consumer : "")) != NULL) {
        k->used = false;
        reply_topics(ft, NULL, 0, out, olen);
    } else if (strcmp(op, "CONSUMER.RM") == 0) {
        reply_error(RINGMQ__ERROR_CODE__ERR_NO_TOPIC, "no such consumer", out, olen);
    } else {
        reply_error(RINGMQ__ERROR_CODE__ERR_INVALID, "unknown request", out, olen);
    }
    ringmq__admin_request__free_unpacked(rq, NULL);
}

/* See fake_topics.h. */
bool fake_topics_admin(struct fake_topics *ft, const struct codec_msg *m, fake_members_fn fn,
                       void *arg, uint8_t **out, size_t *olen)
{
    static const char pre[] = "$SYS.REQ.";
    char op[64];

    if (m->subject.len <= sizeof(pre) - 1 || m->subject.len - (sizeof(pre) - 1) >= sizeof(op) ||
        memcmp(m->subject.p, pre, sizeof(pre) - 1) != 0)
        return false;
    snprintf(op, sizeof(op), "%.*s", (int)(m->subject.len - (sizeof(pre) - 1)),
             (const char *)m->subject.p + sizeof(pre) - 1);
    if (strncmp(op, "TOPIC.", 6) != 0 && strncmp(op, "CONSUMER.", 9) != 0)
        return false;
    if (strcmp(op, "TOPIC.ADD") == 0) {
        admin_add(ft, m, out, olen);
    } else if (strcmp(op, "TOPIC.LIST") == 0) {
        const struct ftopic *all[FT_TOPICS];
        for (size_t i = 0; i < ft->ntopics; i++)
            all[i] = &ft->topics[i];
        reply_topics(ft, all, ft->ntopics, out, olen);
    } else {
        admin_named(ft, op, m, fn, arg, out, olen);
    }
    return true;
}

/* ---- Publishing ---- */

static struct ftopic *topic_of_subject(struct fake_topics *ft, const struct codec_msg *m)
{
    for (size_t i = 0; i < ft->ntopics; i++)
        for (size_t k = 0; k < ft->topics[i].nsubjects; k++) {
            const char *p = ft->topics[i].subjects[k];
            if (subject_match(p, strlen(p), (const char *)m->subject.p, m->subject.len))
                return &ft->topics[i];
        }
    return NULL;
}

/* The Rmq-Msg-Id of m into id (NUL-terminated); false if it has none. */
static bool msg_id(const struct codec_msg *m, char *id, size_t cap)
{
    struct codec_hdr h;
    size_t pos = 0;

    while (codec_hdr_next(m, &pos, &h)) {
        if (h.klen == 10 && memcmp(h.key, "Rmq-Msg-Id", 10) == 0 && h.vlen < cap) {
            memcpy(id, h.val, h.vlen);
            id[h.vlen] = '\0';
            return true;
        }
    }
    return false;
}

static uint64_t id_seen(const struct ftopic *t, const char *id)
{
    size_t n = t->nids < FT_IDS ? t->nids : FT_IDS;

    for (size_t i = 0; i < n; i++)
        if (strcmp(t->ids[i], id) == 0)
            return t->id_seq[i];
    return 0;
}

static void pack_ack(const Ringmq__PubAck *pa, uint8_t **ack, size_t *alen)
{
    *alen = ringmq__pub_ack__get_packed_size(pa);
    *ack = malloc(*alen + 1);
    ringmq__pub_ack__pack(pa, *ack);
}

/* See fake_topics.h. */
bool fake_topics_store(struct fake_topics *ft, const struct codec_msg *m, struct fake_stored *st,
                       uint8_t **ack, size_t *alen)
{
    Ringmq__PubAck pa = RINGMQ__PUB_ACK__INIT;
    struct ftopic *t = topic_of_subject(ft, m);
    char id[132];
    bool has_id;

    *ack = NULL;
    if (t == NULL)
        return false;
    memset(st, 0, sizeof(*st));
    st->topic = t->name;
    has_id = msg_id(m, id, sizeof(id));
    if (ft->fail_code) {
        pa.has_code = true;
        pa.code = (Ringmq__ErrorCode)ft->fail_code;
        pa.error = "failing on purpose";
    } else if (has_id && (pa.seq = id_seen(t, id)) != 0) {
        pa.topic = t->name;
        pa.has_seq = pa.has_duplicate = pa.duplicate = true;
    } else {
        st->seq = ++t->last_seq;
        st->time_ns = realtime_ns();
        if (t->msgs++ == 0)
            t->first_time_ns = st->time_ns;
        t->bytes += m->payload.len;
        t->last_time_ns = st->time_ns;
        if (has_id) {
            size_t slot = t->nids++ % FT_IDS;
            snprintf(t->ids[slot], sizeof(t->ids[slot]), "%s", id);
            t->id_seq[slot] = st->seq;
        }
        pa.topic = t->name;
        pa.has_seq = true;
        pa.seq = st->seq;
    }
    if (m->reply.len)
        pack_ack(&pa, ack, alen);
    return true;
}

/* See fake_topics.h. */
void fake_topics_bind(struct fake_topics *ft, const char *topic, const char *durable,
                      uint32_t max_inflight, uint64_t ack_wait_ms, uint32_t max_deliver)
{
    if (consumer_find(ft, topic, durable))
        return;
    for (size_t i = 0; i < FT_CONSUMERS; i++) {
        struct fconsumer *k = &ft->consumers[i];
        if (k->used)
            continue;
        memset(k, 0, sizeof(*k));
        k->used = true;
        snprintf(k->topic, sizeof(k->topic), "%s", topic);
        snprintf(k->name, sizeof(k->name), "%s", durable);
        k->max_inflight = max_inflight ? max_inflight : 1000;
        k->ack_wait_ms = ack_wait_ms ? ack_wait_ms : 30000;
        k->max_deliver = max_deliver;
        return;
    }
}

/* See fake_topics.h. */
void fake_topics_ack(struct fake_topics *ft, const struct codec_msg *m)
{
    char subj[300], *topic, *durable, *seq;
    struct fconsumer *k;
    size_t pl = sizeof(FAKE_ACK_PREFIX) - 1;

    if (m->subject.len >= sizeof(subj) || m->subject.len <= pl ||
        memcmp(m->subject.p, FAKE_ACK_PREFIX, pl) != 0)
        return;
    snprintf(subj, sizeof(subj), "%.*s", (int)m->subject.len, (const char *)m->subject.p);
    topic = subj + pl;
    durable = strchr(topic, '.');
    seq = durable ? strchr(durable + 1, '.') : NULL;
    if (seq == NULL)
        return;
    *durable++ = '\0';
    *seq++ = '\0';
    k = consumer_find(ft, topic, durable);
    if (k == NULL)
        return;
    if (m->payload.len == 0) {
        uint64_t s = strtoull(seq, NULL, 10);
        ft->acks++;
        if (s > k->ack_floor)
            k->ack_floor = s;
    } else if (m->payload.len == 4 && memcmp(m->payload.p, "-NAK", 4) == 0) {
        ft->naks++;
    }
}

/* See fake_topics.h. */
uint64_t fake_topics_acks(const struct fake_topics *ft)
{
    return ft->acks;
}

/* See fake_topics.h. */
uint64_t fake_topics_naks(const struct fake_topics *ft)
{
    return ft->naks;
}

/* See fake_topics.h. */
void fake_topics_fail_acks(struct fake_topics *ft, int code)
{
    ft->fail_code = code;
}
