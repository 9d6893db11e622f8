/*
 * dur_admin.c - $SYS.REQ.TOPIC.* and $SYS.REQ.CONSUMER.* on the storage
 * thread, and the topic tables sent to the shards.
 *
 * A change (topic add or rm) is committed, then a new table goes to every
 * shard; the request is answered when the last shard has applied it (see
 * dur.h). Reads (info, list) are answered at once.
 *
 * Thread: the storage thread (dur_table_build also on the main thread at
 * start, before the storage thread exists).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dur_int.h"
#include "log.h"
#include "ringmq.pb-c.h"
#include "shard.h"
#include "xalloc.h"

struct cfg_list {
    uint32_t n, cap;
    uint32_t *ids;
    struct store_topic_cfg *cfgs;
};

static int collect_topic(void *arg, uint32_t id, const struct store_topic_cfg *cfg)
{
    struct cfg_list *l = arg;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->ids = xrealloc(l->ids, l->cap * sizeof(*l->ids));
        l->cfgs = xrealloc(l->cfgs, l->cap * sizeof(*l->cfgs));
    }
    l->ids[l->n] = id;
    l->cfgs[l->n++] = *cfg;
    return 0;
}

static void cfg_list_free(struct cfg_list *l)
{
    free(l->ids);
    free(l->cfgs);
}

/* See dur_int.h. */
struct topic_table *dur_table_build(struct dur *d)
{
    struct cfg_list l = {0};
    struct topic_table *t;
    ssize_t rc = store_topic_list(d->st, collect_topic, &l);
    if (rc < 0)
        log_error("storage: cannot list topics: %s", rmq_err_str((int)rc));
    t = xcalloc(1, sizeof(*t) + l.n * sizeof(t->t[0]));
    atomic_init(&t->refs, 1);
    t->n = l.n;
    for (uint32_t i = 0; i < l.n; i++) {
        t->t[i].id = l.ids[i];
        memcpy(t->t[i].name, l.cfgs[i].name, sizeof(t->t[i].name));
        t->t[i].npat = l.cfgs[i].npatterns;
        memcpy(t->t[i].pat, l.cfgs[i].patterns, sizeof(t->t[i].pat));
    }
    cfg_list_free(&l);
    return t;
}

/* See dur.h. */
void topic_table_unref(struct topic_table *t)
{
    if (t && atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1)
        free(t);
}

static Ringmq__ErrorCode wire_code(int rc)
{
    switch (rc) {
    case RMQ_ENOTFOUND:
        return RINGMQ__ERROR_CODE__ERR_NO_TOPIC;
    case -EEXIST:
        return RINGMQ__ERROR_CODE__ERR_EXISTS;
    case -EINVAL:
    case -EBUSY:
        return RINGMQ__ERROR_CODE__ERR_INVALID;
    case RMQ_ESTOREFULL:
        return RINGMQ__ERROR_CODE__ERR_STORE_FULL;
    default:
        return RINGMQ__ERROR_CODE__ERR_STORAGE;
    }
}

/* Pack r into op->out and send op back. */
static void finish(struct dur *d, struct dop_admin *op, Ringmq__AdminReply *r)
{
    op->outlen = ringmq__admin_reply__get_packed_size(r);
    op->out = xmalloc(op->outlen ? op->outlen : 1);
    ringmq__admin_reply__pack(r, op->out);
    dur_reply(d, &op->h);
}

static void fail(struct dur *d, struct dop_admin *op, int rc, const char *text)
{
    Ringmq__AdminReply r = RINGMQ__ADMIN_REPLY__INIT;
    r.has_code = true;
    r.code = wire_code(rc);
    r.error = (char *)(text ? text : rmq_err_str(rc));
    finish(d, op, &r);
}

/* A TopicInfo for (id, cfg); strings borrow cfg, subjects[] is the caller's. */
static void info_fill(struct dur *d, uint32_t id, struct store_topic_cfg *cfg,
                      Ringmq__TopicInfo *ti, Ringmq__TopicConfig *tc, char **subjects)
{
    struct store_topic_info in = {0};
    store_topic_info(d->st, id, &in);
    ringmq__topic_config__init(tc);
    ringmq__topic_info__init(ti);
    tc->name = cfg->name;
    for (uint32_t i = 0; i < cfg->npatterns; i++)
        subjects[i] = cfg->patterns[i];
    tc->n_subjects = cfg->npatterns;
    tc->subjects = subjects;
    tc->has_max_msgs = tc->has_max_bytes = tc->has_max_age_ms = tc->has_dedup_window_ms = true;
    tc->max_msgs = cfg->max_msgs;
    tc->max_bytes = cfg->max_bytes;
    tc->max_age_ms = cfg->max_age_ns / 1000000ull;
    tc->dedup_window_ms = cfg->dedup_window_ns / 1000000ull;
    ti->config = tc;
    ti->has_msgs = ti->has_bytes = ti->has_first_seq = ti->has_last_seq = true;
    ti->has_first_time_ns = ti->has_last_time_ns = ti->has_consumers = true;
    ti->msgs = in.msgs;
    ti->bytes = in.bytes;
    ti->first_seq = in.first_seq;
    ti->last_seq = in.last_seq;
    ti->first_time_ns = in.first_ts_ns;
    ti->last_time_ns = in.last_ts_ns;
    ti->consumers = dur_consumer_count(d, id);
}

static void reply_topic(struct dur *d, struct dop_admin *op, const char *name)
{
    Ringmq__AdminReply r = RINGMQ__ADMIN_REPLY__INIT;
    Ringmq__TopicInfo ti, *tip = &ti;
    Ringmq__TopicConfig tc;
    struct store_topic_cfg cfg;
    char *subjects[STORE_PATTERNS_MAX];
    uint32_t id;
    int rc = store_topic_get(d->st, name, &id, &cfg);
    if (rc) {
        fail(d, op, rc, rc == RMQ_ENOTFOUND ? "no such topic" : NULL);
        return;
    }
    info_fill(d, id, &cfg, &ti, &tc, subjects);
    r.n_topics = 1;
    r.topics = &tip;
    finish(d, op, &r);
}

static void reply_list(struct dur *d, struct dop_admin *op)
{
    Ringmq__AdminReply r = RINGMQ__ADMIN_REPLY__INIT;
    struct cfg_list l = {0};
    ssize_t rc = store_topic_list(d->st, collect_topic, &l);
    Ringmq__TopicInfo *ti, **tip;
    Ringmq__TopicConfig *tc;
    char **subjects;
    if (rc < 0) {
        cfg_list_free(&l);
        fail(d, op, (int)rc, NULL);
        return;
    }
    ti = xcalloc(l.n + 1, sizeof(*ti));
    tip = xcalloc(l.n + 1, sizeof(*tip));
    tc = xcalloc(l.n + 1, sizeof(*tc));
    subjects = xcalloc((l.n + 1) * STORE_PATTERNS_MAX, sizeof(*subjects));
    for (uint32_t i = 0; i < l.n; i++) {
        info_fill(d, l.ids[i], &l.cfgs[i], &ti[i], &tc[i], subjects + i * STORE_PATTERNS_MAX);
        tip[i] = &ti[i];
    }
    r.n_topics = l.n;
    r.topics = tip;
    finish(d, op, &r);
    free(ti);
    free(tip);
    free(tc);
    free(subjects);
    cfg_list_free(&l);
}

/* Check a TopicConfig and turn it into a store_topic_cfg; text says why not. */
static int cfg_from_wire(struct dur *d, const Ringmq__TopicConfig *m, struct store_topic_cfg *c,
                         char *text, size_t tlen)
{
    memset(c, 0, sizeof(*c));
    if (!dur_name_ok(m->name)) {
        snprintf(text, tlen, "topic names are 1-%d of [A-Za-z0-9_-]", STORE_NAME_MAX);
        return -EINVAL;
    }
    if (m->n_subjects < 1 || m->n_subjects > STORE_PATTERNS_MAX) {
        snprintf(text, tlen, "a topic needs 1-%d subjects", STORE_PATTERNS_MAX);
        return -EINVAL;
    }
    strcpy(c->name, m->name);
    c->npatterns = (uint32_t)m->n_subjects;
    for (size_t i = 0; i < m->n_subjects; i++) {
        const char *p = m->subjects[i];
        size_t pl = strlen(p);
        if (subject_check_pattern(p, pl) || p[0] == '$') {
            snprintf(text, tlen, "invalid subject pattern '%.60s'", p);
            return -EINVAL;
        }
        for (size_t k = 0; k < i; k++)
            if (subject_patterns_overlap(p, pl, c->patterns[k], strlen(c->patterns[k]))) {
                snprintf(text, tlen, "subjects '%.60s' and '%.60s' overlap", p, c->patterns[k]);
                return -EINVAL;
            }
        memcpy(c->patterns[i], p, pl + 1);
        for (uint32_t t = 0; t < d->tab->n; t++)
            for (uint32_t k = 0; k < d->tab->t[t].npat; k++)
                if (subject_patterns_overlap(p, pl, d->tab->t[t].pat[k],
                                             strlen(d->tab->t[t].pat[k]))) {
                    snprintf(text, tlen, "subject '%.60s' overlaps '%.60s' of topic %s", p,
                             d->tab->t[t].pat[k], d->tab->t[t].name);
                    return -EEXIST;
                }
    }
    c->max_msgs = m->has_max_msgs ? m->max_msgs : 0;
    c->max_bytes = m->has_max_bytes ? m->max_bytes : 0;
    c->max_age_ns = m->has_max_age_ms ? m->max_age_ms * 1000000ull : 0;
    c->dedup_window_ns = (m->has_dedup_window_ms ? m->dedup_window_ms : 120000) * 1000000ull;
    return 0;
}

/* Send a new table to every shard; answer op when all have applied it. */
static void broadcast(struct dur *d, struct dop_admin *op)
{
    struct server *srv = d->srv;
    struct admin_wait *w;
    topic_table_unref(d->tab);
    d->tab = dur_table_build(d);
    d->gen++;
    for (unsigned i = 0; i < srv->nshards; i++) {
        struct dop_topics *t = xcalloc(1, sizeof(*t));
        t->h.type = DOP_TOPICS;
        t->h.shard = (uint16_t)i;
        t->gen = d->gen;
        t->tab = d->tab;
        atomic_fetch_add_explicit(&d->tab->refs, 1, memory_order_relaxed);
        dur_reply(d, &t->h);
    }
    if (d->nwaits == d->waitcap) {
        d->waitcap = d->waitcap ? d->waitcap * 2 : 8;
        d->waits = xrealloc(d->waits, d->waitcap * sizeof(*d->waits));
    }
    w = &d->waits[d->nwaits++];
    w->gen = d->gen;
    w->remaining = srv->nshards;
    w->op = op;
}

/* The name of the topic in an ADD request (the reply needs it). */
static void complete(struct dur *d, struct dop_admin *op)
{
    Ringmq__AdminReply r = RINGMQ__ADMIN_REPLY__INIT;
    if (op->kind == DA_TOPIC_ADD) {
        Ringmq__TopicConfig *m = ringmq__topic_config__unpack(NULL, op->len, op->data);
        if (m) {
            reply_topic(d, op, m->name);
            ringmq__topic_config__free_unpacked(m, NULL);
            return;
        }
    }
    finish(d, op, &r);
}

/* See dur_int.h. */
void dur_topics_back(struct dur *d, struct dop_topics *op)
{
    for (uint32_t i = 0; i < d->nwaits; i++) {
        if (d->waits[i].gen != op->gen)
            continue;
        if (--d->waits[i].remaining == 0) {
            struct dop_admin *a = d->waits[i].op;
            d->waits[i] = d->waits[--d->nwaits];
            complete(d, a);
        }
        break;
    }
    free(op);
}

static void topic_add(struct dur *d, struct dop_admin *op)
{
    Ringmq__TopicConfig *m = ringmq__topic_config__unpack(NULL, op->len, op->data);
    struct store_topic_cfg cfg;
    char text[256];
    uint32_t id;
    int rc;
    if (!m) {
        fail(d, op, -EINVAL, "malformed TopicConfig");
        return;
    }
    rc = cfg_from_wire(d, m, &cfg, text, sizeof(text));
    ringmq__topic_config__free_unpacked(m, NULL);
    if (rc) {
        fail(d, op, rc, text);
        return;
    }
    rc = store_topic_add(d->st, &cfg, &id);
    if (rc) {
        snprintf(text, sizeof(text), "%s",
                 rc == -EEXIST ? "a topic of that name exists" : rmq_err_str(rc));
        fail(d, op, rc, text);
        return;
    }
    log_info("storage: topic %s added (id %u, %u subject(s))", cfg.name, id, cfg.npatterns);
    broadcast(d, op);
}

static void topic_rm(struct dur *d, const char *name, struct dop_admin *op)
{
    uint32_t id;
    int rc = store_topic_get(d->st, name, &id, NULL);
    if (rc == 0)
        rc = store_topic_rm(d->st, id);
    if (rc) {
        fail(d, op, rc, rc == RMQ_ENOTFOUND ? "no such topic" : NULL);
        return;
    }
    dur_consumers_drop_topic(d, id);
    log_info("storage: topic %s removed", name);
    broadcast(d, op);
}

static void cons_info(struct consumer *c, Ringmq__ConsumerInfo *ci)
{
    ringmq__consumer_info__init(ci);
    ci->topic = c->topic_name;
    ci->name = c->cfg.name;
    ci->has_ack_floor = ci->has_max_inflight = ci->has_ack_wait_ms = ci->has_max_deliver = true;
    ci->has_inflight = ci->has_members = ci->has_redelivered = true;
    ci->ack_floor = c->cfg.ack_floor;
    ci->max_inflight = c->cfg.max_inflight;
    ci->ack_wait_ms = c->cfg.ack_wait_ns / 1000000ull;
    ci->max_deliver = c->cfg.max_deliver;
    ci->inflight = c->unacked;
    ci->members = c->nmem;
    ci->redelivered = c->redelivered;
}

static void cons_list(struct dur *d, const char *topic, struct dop_admin *op)
{
    Ringmq__AdminReply r = RINGMQ__ADMIN_REPLY__INIT;
    Ringmq__ConsumerInfo *ci, **cip;
    uint32_t id, n = 0;
    int rc = store_topic_get(d->st, topic, &id, NULL);
    if (rc) {
        fail(d, op, rc, rc == RMQ_ENOTFOUND ? "no such topic" : NULL);
        return;
    }
    n = dur_consumer_count(d, id);
    ci = xcalloc(n + 1, sizeof(*ci));
    cip = xcalloc(n + 1, sizeof(*cip));
    n = 0;
    for (struct consumer *c = d->consumers; c; c = c->next)
        if (c->cfg.topic == id) {
            cons_info(c, &ci[n]);
            cip[n] = &ci[n];
            n++;
        }
    r.n_consumers = n;
    r.consumers = cip;
    finish(d, op, &r);
    free(ci);
    free(cip);
}

static void cons_rm(struct dur *d, const char *topic, const char *name, struct dop_admin *op)
{
    Ringmq__AdminReply r = RINGMQ__ADMIN_REPLY__INIT;
    struct consumer *c;
    char text[128];
    uint32_t id;
    int rc = store_topic_get(d->st, topic, &id, NULL);
    if (rc || !name || !(c = dur_consumer_find(d, id, name))) {
        fail(d, op, rc ? rc : RMQ_ENOTFOUND, rc && rc != RMQ_ENOTFOUND ? NULL : "no such consumer");
        return;
    }
    if (c->nmem) {
        snprintf(text, sizeof(text), "consumer %s has %u bound subscription(s)", name, c->nmem);
        fail(d, op, -EBUSY, text);
        return;
    }
    rc = store_consumer_del(d->st, id, name);
    if (rc && rc != RMQ_ENOTFOUND) {
        fail(d, op, rc, NULL);
        return;
    }
    dur_consumer_remove(d, c);
    finish(d, op, &r);
}

/* See dur_int.h. */
void dur_admin(struct dur *d, struct dop_admin *op)
{
    Ringmq__AdminRequest *q = NULL;
    if (op->kind == DA_TOPIC_ADD) {
        topic_add(d, op);
        return;
    }
    if (op->kind == DA_TOPIC_LIST) {
        reply_list(d, op);
        return;
    }
    q = ringmq__admin_request__unpack(NULL, op->len, op->data);
    if (!q || !q->topic) {
        fail(d, op, -EINVAL, "malformed AdminRequest (topic missing)");
        if (q)
            ringmq__admin_request__free_unpacked(q, NULL);
        return;
    }
    switch ((enum dadmin_kind)op->kind) {
    case DA_TOPIC_INFO:
        reply_topic(d, op, q->topic);
        break;
    case DA_TOPIC_RM:
        topic_rm(d, q->topic, op);
        break;
    case DA_CONS_LIST:
        cons_list(d, q->topic, op);
        break;
    case DA_CONS_RM:
        cons_rm(d, q->topic, q->consumer, op);
        break;
    default:
        fail(d, op, -EINVAL, "unknown admin request");
        break;
    }
    ringmq__admin_request__free_unpacked(q, NULL);
}
