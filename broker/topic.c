/*
 * topic.c - the shard side of durable topics: the shard's topic table and
 * subject trie, publishing to a topic (append, then ack and live delivery
 * after the commit), $SYS acks and admin requests, consumer bindings, and
 * the op exchange with the storage thread (see dur.h).
 *
 * Thread: the shard's own thread.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "conn.h"
#include "dispatch.h"
#include "dur.h"
#include "dur_int.h"
#include "log.h"
#include "replay.h"
#include "route.h"
#include "subject.h"
#include "shard.h"
#include "trie.h"
#include "xalloc.h"
#include "xshard.h"

static void table_apply(struct shard *sh, struct topic_table *tab)
{
    struct topic_table *old = sh->topics;
    trie_free(sh->ttrie);
    sh->ttrie = trie_new();
    if (!sh->ttrie)
        abort();
    sh->topics = tab;
    for (uint32_t i = 0; tab && i < tab->n; i++)
        for (uint32_t k = 0; k < tab->t[i].npat; k++)
            if (trie_insert(sh->ttrie, tab->t[i].pat[k], strlen(tab->t[i].pat[k]), NULL, 0,
                            (void *)(uintptr_t)(i + 1)) < 0)
                abort(); /* validated by the storage thread; only OOM gets here */
    topic_table_unref(old);
}

/* See dur.h. */
void topic_shard_init(struct shard *sh)
{
    table_apply(sh, sh->srv->dur ? dur_table_ref(sh->srv) : NULL);
}

static enum trie_visit_rc first_visit(void *p, void *arg)
{
    *(int *)arg = (int)(uintptr_t)p - 1;
    return TRIE_TAKEN;
}

/* See dur.h. */
void rtopic_table_unref(struct rtopic_table *t)
{
    if (t && atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1)
        free(t);
}

/* See dur.h. */
void topic_rtopics_apply(struct shard *sh, struct rtopic_table *t)
{
    struct rtopic_table *old = sh->rtopics;
    trie_free(sh->rttrie);
    sh->rttrie = trie_new();
    if (!sh->rttrie)
        abort();
    sh->rtopics = t;
    for (uint32_t i = 0; i < t->n; i++)
        for (uint32_t k = 0; k < t->t[i].topic.npat; k++)
            if (trie_insert(sh->rttrie, t->t[i].topic.pat[k], strlen(t->t[i].topic.pat[k]), NULL, 0,
                            (void *)(uintptr_t)(i + 1)) < 0)
                abort(); /* checked by route.c; only OOM gets here */
    rtopic_table_unref(old);
}

/* See dur.h. */
int rtopic_of_subject(struct shard *sh, const char *subj, size_t slen)
{
    int idx = -1;
    if (!sh->rtopics || !sh->rtopics->n)
        return -1;
    trie_match(sh->rttrie, subj, slen, first_visit, &idx);
    return idx;
}

/* See dur.h. */
void topic_shard_fini(struct shard *sh)
{
    rtopic_table_unref(sh->rtopics);
    sh->rtopics = NULL;
    trie_free(sh->rttrie);
    sh->rttrie = NULL;
    topic_table_unref(sh->topics);
    sh->topics = NULL;
    trie_free(sh->ttrie);
    sh->ttrie = NULL;
    free(sh->replays);
    sh->replays = NULL;
    sh->nreplays = 0;
    if (sh->srv->dur)
        mpsc_push_chain(&sh->srv->dur->in, &sh->dur_out); /* handled or freed by dur_stop */
}

/* See dur.h. */
int topic_of_subject(struct shard *sh, const char *subj, size_t slen)
{
    int idx = -1;
    if (!sh->topics || !sh->topics->n)
        return -1;
    trie_match(sh->ttrie, subj, slen, first_visit, &idx);
    return idx;
}

/* See dur.h. */
int topic_by_name(struct shard *sh, const char *name)
{
    for (uint32_t i = 0; sh->topics && i < sh->topics->n; i++)
        if (strcmp(sh->topics->t[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* ---- The exchange with the storage thread ---- */

/* See dur.h. */
void dur_send(struct shard *sh, struct dop *op)
{
    op->shard = (uint16_t)sh->id;
    mpsc_chain_add(&sh->dur_out, &op->node);
}

/* See dur.h. */
void dur_flush(struct shard *sh)
{
    struct dur *d = sh->srv->dur;
    if (!d || !mpsc_push_chain(&d->in, &sh->dur_out))
        return;
    /* Pairs with the fence in the storage thread's sleep_wait. */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&d->sleeping, memory_order_relaxed) &&
        atomic_exchange(&d->sleeping, 0)) {
        struct io_uring_sqe *sqe = shard_sqe(sh);
        io_uring_prep_msg_ring(sqe, d->ring.ring_fd, 0, 0, 0);
        sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
        io_uring_sqe_set_data64(sqe, UD_IGNORE);
    }
}

/* See dur.h. */
bool dur_pending(struct shard *sh)
{
    return mpsc_nonempty(&sh->dur_in);
}

/* ---- Publishing to a topic ---- */

static void pub_ack(struct shard *sh, const char *reply, const char *topic, uint64_t seq, bool dup,
                    int rc, const char *text)
{
    Ringmq__PubAck a = RINGMQ__PUB_ACK__INIT;
    uint8_t buf[512];
    size_t n;
    if (rc) {
        a.has_code = true;
        a.code = rc == RMQ_ESTOREFULL  ? RINGMQ__ERROR_CODE__ERR_STORE_FULL
                 : rc == -EMSGSIZE     ? RINGMQ__ERROR_CODE__ERR_PAYLOAD_TOO_BIG
                 : rc == -EINVAL       ? RINGMQ__ERROR_CODE__ERR_INVALID
                 : rc == RMQ_ENOTFOUND ? RINGMQ__ERROR_CODE__ERR_NO_TOPIC
                 : rc == RMQ_EUNAVAIL  ? RINGMQ__ERROR_CODE__ERR_UNAVAILABLE
                                       : RINGMQ__ERROR_CODE__ERR_STORAGE;
        a.error = (char *)(text ? text : rmq_err_str(rc));
    } else {
        a.topic = (char *)topic;
        a.has_seq = true;
        a.seq = seq;
        a.has_duplicate = dup;
        a.duplicate = dup;
    }
    n = ringmq__pub_ack__get_packed_size(&a);
    if (n > sizeof(buf))
        return;
    ringmq__pub_ack__pack(&a, buf);
    dispatch_publish_local(sh, reply, (const char *)buf, n);
}

/* See dur.h. */
void topic_publish(struct shard *sh, struct conn *c, const struct codec_msg *m, int tidx)
{
    struct codec_msg sm = *m;
    struct dop_append *op;
    struct codec_hdr h;
    const void *did = NULL;
    size_t pos = 0, blen, dlen = 0;
    char reply[SUBJECT_MAX_LEN + 1];

    (void)c;
    memcpy(reply, m->reply.p, m->reply.len);
    reply[m->reply.len] = '\0';
    while (codec_hdr_next(m, &pos, &h))
        if (h.klen == strlen(DUR_MSG_ID_HDR) && memcmp(h.key, DUR_MSG_ID_HDR, h.klen) == 0) {
            did = h.val;
            dlen = h.vlen;
        }
    if (did && (dlen == 0 || dlen > STORE_DEDUP_ID_MAX)) {
        if (m->reply.len)
            pub_ack(sh, reply, NULL, 0, false, -EINVAL, "Rmq-Msg-Id must be 1-128 bytes");
        return;
    }
    sm.reply.len = 0;
    sm.seq = sm.time_ns = 0;
    sm.deliveries = 0;
    blen = codec_body_size_drop(&sm, DUR_EXPECT_ACK_HDR);
    op = xmalloc(sizeof(*op) + blen + dlen);
    op->h.type = DOP_APPEND;
    op->h.rc = 0;
    op->topic = sh->topics->t[tidx].id;
    op->tidx = (uint16_t)tidx;
    memcpy(op->topic_name, sh->topics->t[tidx].name, sizeof(op->topic_name));
    op->rlen = (uint8_t)m->reply.len;
    memcpy(op->reply, reply, m->reply.len + 1);
    op->len = (uint32_t)blen;
    op->ts_ns = dur_realtime_ns();
    op->dedup_off = (uint32_t)blen;
    op->dedup_len = (uint32_t)dlen;
    op->seq = 0;
    op->duplicate = false;
    codec_body_write_drop(&sm, op->data, DUR_EXPECT_ACK_HDR);
    if (dlen)
        memcpy(op->data + blen, did, dlen);
    dur_send(sh, &op->h);
    sh->dur_inflight += blen;
    if (sh->dur_inflight > DUR_INFLIGHT_MAX)
        sh->pub_pressure = true;
}

/* See dur.h. */
bool topic_refuse_ack(struct shard *sh, const struct codec_msg *m)
{
    char reply[SUBJECT_MAX_LEN + 1], text[128];
    struct codec_hdr h;
    size_t pos = 0;
    bool want = false;
    if (!m->reply.len || !m->nhdrs)
        return false;
    while (!want && codec_hdr_next(m, &pos, &h))
        want =
            h.klen == strlen(DUR_EXPECT_ACK_HDR) && memcmp(h.key, DUR_EXPECT_ACK_HDR, h.klen) == 0;
    if (!want)
        return false;
    memcpy(reply, m->reply.p, m->reply.len);
    reply[m->reply.len] = '\0';
    snprintf(text, sizeof(text), "no topic stores subject '%.*s'",
             (int)(m->subject.len > 80 ? 80 : m->subject.len), (const char *)m->subject.p);
    pub_ack(sh, reply, NULL, 0, false, sh->srv->dur ? RMQ_ENOTFOUND : RMQ_EUNAVAIL, text);
    return true;
}

static bool wants_ack(const struct codec_msg *m)
{
    struct codec_hdr h;
    size_t pos = 0;
    if (!m->reply.len)
        return false;
    while (codec_hdr_next(m, &pos, &h))
        if (h.klen == strlen(DUR_EXPECT_ACK_HDR) && memcmp(h.key, DUR_EXPECT_ACK_HDR, h.klen) == 0)
            return true;
    return false;
}

/* Send m (borrowed) to the node on route slot as a publish it handles. */
static void to_owner(struct shard *sh, const struct codec_msg *m, unsigned slot)
{
    struct msgbuf *body = msgbuf_new(&sh->pool, (uint32_t)codec_body_size(m));
    codec_body_write(m, body->data);
    xshard_route_publish(sh, slot, body);
    xshard_unref(sh, body);
}

/* See dur.h. */
void topic_publish_remote(struct shard *sh, const struct codec_msg *m, int ridx)
{
    unsigned slot;
    if (!route_owner_slot(sh->srv, sh->rtopics->t[ridx].owner, &slot)) {
        if (wants_ack(m)) {
            char reply[SUBJECT_MAX_LEN + 1], text[160];
            memcpy(reply, m->reply.p, m->reply.len);
            reply[m->reply.len] = '\0';
            snprintf(text, sizeof(text), "topic %s: the node that stores it is unreachable",
                     sh->rtopics->t[ridx].topic.name);
            pub_ack(sh, reply, NULL, 0, false, RMQ_EUNAVAIL, text);
        }
        return;
    }
    to_owner(sh, m, slot);
}

/* See dur.h. */
void topic_publish_from_route(struct shard *sh, const struct codec_msg *m)
{
    int tidx;
    if (m->subject.len && m->subject.p[0] == '$') {
        sh->in_route_publish = true;
        topic_sys_publish(sh, m); /* an admin request for a topic we own */
        sh->in_route_publish = false;
        return;
    }
    tidx = topic_of_subject(sh, (const char *)m->subject.p, m->subject.len);
    if (tidx >= 0)
        topic_publish(sh, NULL, m, tidx);
    else
        topic_refuse_ack(sh, m); /* a topic removed meanwhile */
}

static void append_done(struct shard *sh, struct dop_append *op)
{
    sh->dur_inflight -= op->len;
    if (op->h.rc == 0 && !op->duplicate) {
        struct codec_msg m;
        if (codec_msg_parse(op->data, op->len, &m) == 0) {
            m.seq = op->seq;
            m.time_ns = op->ts_ns;
            xshard_route(sh, &m);
        }
    }
    if (op->rlen)
        pub_ack(sh, op->reply, op->topic_name, op->seq, op->duplicate, op->h.rc, NULL);
    else if (op->h.rc)
        log_debug("[s%u] a message for topic %s was not stored: %s", sh->id, op->topic_name,
                  rmq_err_str(op->h.rc));
    free(op);
}

/* ---- $SYS subjects ---- */

static void admin_reply_code(struct shard *sh, const char *reply, Ringmq__ErrorCode code,
                             const char *text)
{
    Ringmq__AdminReply r = RINGMQ__ADMIN_REPLY__INIT;
    uint8_t buf[512];
    size_t n;
    r.has_code = true;
    r.code = code;
    r.error = (char *)text;
    n = ringmq__admin_reply__get_packed_size(&r);
    ringmq__admin_reply__pack(&r, buf);
    dispatch_publish_local(sh, reply, (const char *)buf, n);
}

static void admin_unavailable(struct shard *sh, const char *reply, const char *text)
{
    admin_reply_code(sh, reply, RINGMQ__ERROR_CODE__ERR_UNAVAILABLE,
                     text ? text : "this broker runs without storage (--storage off)");
}

static const struct {
    const char *subj;
    enum dadmin_kind kind;
} admin_subjects[] = {
    {"$SYS.REQ.TOPIC.ADD", DA_TOPIC_ADD},     {"$SYS.REQ.TOPIC.INFO", DA_TOPIC_INFO},
    {"$SYS.REQ.TOPIC.LIST", DA_TOPIC_LIST},   {"$SYS.REQ.TOPIC.RM", DA_TOPIC_RM},
    {"$SYS.REQ.CONSUMER.LIST", DA_CONS_LIST}, {"$SYS.REQ.CONSUMER.RM", DA_CONS_RM},
};

/* See dur.h. */
int rtopic_by_name(struct shard *sh, const char *name)
{
    for (uint32_t i = 0; sh->rtopics && i < sh->rtopics->n; i++)
        if (strcmp(sh->rtopics->t[i].topic.name, name) == 0)
            return (int)i;
    return -1;
}

/*
 * Cluster: an admin request about one topic that another node owns goes to
 * that node (its answer routes back to reply), or gets UNAVAILABLE while
 * the owner is down. true if it was such a request.
 */
static bool admin_remote(struct shard *sh, const struct codec_msg *m, enum dadmin_kind kind,
                         const char *reply)
{
    Ringmq__AdminRequest *q;
    unsigned slot;
    int r = -1;
    /* A request that came over a route is answered here, never sent on:
     * two nodes with stale views of each other must not bounce it. */
    if (!sh->rtopics || !sh->rtopics->n || kind == DA_TOPIC_ADD || kind == DA_TOPIC_LIST ||
        sh->in_route_publish)
        return false;
    q = ringmq__admin_request__unpack(NULL, m->payload.len, m->payload.p);
    if (q && q->topic && topic_by_name(sh, q->topic) < 0)
        r = rtopic_by_name(sh, q->topic);
    if (q)
        ringmq__admin_request__free_unpacked(q, NULL);
    if (r < 0)
        return false;
    if (route_owner_slot(sh->srv, sh->rtopics->t[r].owner, &slot)) {
        to_owner(sh, m, slot);
    } else {
        admin_unavailable(sh, reply, "the node that stores this topic is unreachable");
    }
    return true;
}

/*
 * Cluster: a TOPIC.ADD whose name or subjects another node's topic already
 * has is refused here (EXISTS), as the storage thread refuses a clash with
 * this node's own topics. Two adds racing on two nodes are not caught (see
 * docs/CLUSTER.md). true if it was refused.
 */
static bool add_clash(struct shard *sh, const struct codec_msg *m, const char *reply)
{
    Ringmq__TopicConfig *tc;
    char text[384] = "";
    if (!sh->rtopics || !sh->rtopics->n || sh->in_route_publish)
        return false;
    tc = ringmq__topic_config__unpack(NULL, m->payload.len, m->payload.p);
    if (!tc)
        return false; /* the storage thread answers the malformed request */
    for (uint32_t i = 0; i < sh->rtopics->n && !text[0]; i++) {
        const struct topic_ent *t = &sh->rtopics->t[i].topic;
        if (strcmp(t->name, tc->name) == 0) {
            snprintf(text, sizeof(text), "topic %s exists on node %s", t->name,
                     sh->rtopics->t[i].node);
            break;
        }
        for (size_t k = 0; k < tc->n_subjects && !text[0]; k++)
            for (uint32_t j = 0; j < t->npat && !text[0]; j++) {
                const char *p = tc->subjects[k];
                if (subject_check_pattern(p, strlen(p)) == 0 &&
                    subject_patterns_overlap(p, strlen(p), t->pat[j], strlen(t->pat[j])))
                    snprintf(text, sizeof(text),
                             "subject '%.60s' overlaps '%.60s' of topic %s on node %s", p,
                             t->pat[j], t->name, sh->rtopics->t[i].node);
            }
    }
    ringmq__topic_config__free_unpacked(tc, NULL);
    if (!text[0])
        return false;
    admin_reply_code(sh, reply, RINGMQ__ERROR_CODE__ERR_EXISTS, text);
    return true;
}

/*
 * Cluster: the answer to a TOPIC.LIST, this node's topics (AdminReply local,
 * NULL without storage) followed by those other nodes own, with their node.
 */
static void list_reply(struct shard *sh, const char *reply, const uint8_t *local, size_t llen)
{
    Ringmq__AdminReply *r = local ? ringmq__admin_reply__unpack(NULL, llen, local) : NULL;
    Ringmq__AdminReply out = RINGMQ__ADMIN_REPLY__INIT;
    const struct rtopic_table *rt = sh->rtopics;
    size_t nl = r ? r->n_topics : 0, n = nl + rt->n, len;
    Ringmq__TopicInfo **tv = xcalloc(n + 1, sizeof(*tv));
    Ringmq__TopicInfo *ti = xcalloc(rt->n + 1, sizeof(*ti));
    Ringmq__TopicConfig *tc = xcalloc(rt->n + 1, sizeof(*tc));
    char **subj = xcalloc((size_t)(rt->n + 1) * STORE_PATTERNS_MAX, sizeof(*subj));
    uint8_t *buf;
    unsigned slot;
    if (local && (!r || r->has_code)) { /* an error, or garbage: pass it on */
        if (r)
            ringmq__admin_reply__free_unpacked(r, NULL);
        dispatch_publish_local(sh, reply, (const char *)local, llen);
        goto out;
    }
    for (size_t i = 0; i < nl; i++)
        tv[i] = r->topics[i];
    for (uint32_t i = 0; i < rt->n; i++) {
        ringmq__topic_info__init(&ti[i]);
        ringmq__topic_config__init(&tc[i]);
        tc[i].name = (char *)rt->t[i].topic.name;
        tc[i].n_subjects = rt->t[i].topic.npat;
        tc[i].subjects = subj + (size_t)i * STORE_PATTERNS_MAX;
        for (uint32_t k = 0; k < rt->t[i].topic.npat; k++)
            tc[i].subjects[k] = (char *)rt->t[i].topic.pat[k];
        ti[i].config = &tc[i];
        ti[i].node = (char *)rt->t[i].node;
        ti[i].has_node_down = true;
        ti[i].node_down = !route_owner_slot(sh->srv, rt->t[i].owner, &slot);
        tv[nl + i] = &ti[i];
    }
    out.n_topics = n;
    out.topics = tv;
    len = ringmq__admin_reply__get_packed_size(&out);
    buf = xmalloc(len + 1);
    ringmq__admin_reply__pack(&out, buf);
    dispatch_publish_local(sh, reply, (const char *)buf, len);
    free(buf);
    if (r)
        ringmq__admin_reply__free_unpacked(r, NULL);
out:
    free(tv);
    free(ti);
    free(tc);
    free(subj);
}

static bool sys_admin(struct shard *sh, const struct codec_msg *m)
{
    char reply[SUBJECT_MAX_LEN + 1];
    struct dop_admin *op;
    for (size_t i = 0; i < sizeof(admin_subjects) / sizeof(admin_subjects[0]); i++) {
        const char *s = admin_subjects[i].subj;
        if (m->subject.len != strlen(s) || memcmp(m->subject.p, s, m->subject.len) != 0)
            continue;
        if (!m->reply.len)
            return true; /* nobody to answer */
        memcpy(reply, m->reply.p, m->reply.len);
        reply[m->reply.len] = '\0';
        if (admin_remote(sh, m, admin_subjects[i].kind, reply) ||
            (admin_subjects[i].kind == DA_TOPIC_ADD && add_clash(sh, m, reply)))
            return true;
        if (!sh->srv->dur) {
            if (admin_subjects[i].kind == DA_TOPIC_LIST && sh->rtopics && sh->rtopics->n)
                list_reply(sh, reply, NULL, 0); /* other nodes' topics */
            else
                admin_unavailable(sh, reply, NULL);
            return true;
        }
        op = xmalloc(sizeof(*op) + m->payload.len);
        memset(op, 0, sizeof(*op));
        op->h.type = DOP_ADMIN;
        op->kind = (uint8_t)admin_subjects[i].kind;
        memcpy(op->reply, reply, m->reply.len + 1);
        op->len = m->payload.len;
        memcpy(op->data, m->payload.p, m->payload.len);
        dur_send(sh, &op->h);
        return true;
    }
    return false;
}

/* Cluster: an ack for a consumer of a topic another node owns goes to the
 * owner (dropped while it is down: the delivery comes again after
 * ack_wait). true if it was one. */
static bool ack_remote(struct shard *sh, const struct codec_msg *m, const char *topic)
{
    unsigned slot;
    int r;
    if (sh->in_route_publish || topic_by_name(sh, topic) >= 0 ||
        (r = rtopic_by_name(sh, topic)) < 0)
        return false;
    if (route_owner_slot(sh->srv, sh->rtopics->t[r].owner, &slot)) {
        to_owner(sh, m, slot);
    }
    return true;
}

/* "$SYS.ACK.<topic>.<consumer>.<seq>" */
static bool sys_ack(struct shard *sh, const struct codec_msg *m)
{
    const size_t pl = strlen(DUR_ACK_PREFIX);
    char buf[SUBJECT_MAX_LEN + 1], *tok[3], *save = NULL, *end;
    struct dop_ack *op;
    unsigned long long seq;
    if (m->subject.len <= pl || memcmp(m->subject.p, DUR_ACK_PREFIX, pl) != 0)
        return false;
    memcpy(buf, m->subject.p + pl, m->subject.len - pl);
    buf[m->subject.len - pl] = '\0';
    tok[0] = strtok_r(buf, ".", &save);
    tok[1] = strtok_r(NULL, ".", &save);
    tok[2] = strtok_r(NULL, ".", &save);
    if (!tok[2] || strtok_r(NULL, ".", &save) || strlen(tok[0]) > STORE_NAME_MAX ||
        strlen(tok[1]) > STORE_NAME_MAX)
        return true; /* not an ack subject we made: ignored */
    seq = strtoull(tok[2], &end, 10);
    if (*end || !seq || ack_remote(sh, m, tok[0]) || !sh->srv->dur)
        return true;
    op = xcalloc(1, sizeof(*op));
    op->h.type = DOP_ACK;
    op->seq = seq;
    op->nak = m->payload.len == 4 && memcmp(m->payload.p, "-NAK", 4) == 0;
    strcpy(op->topic, tok[0]);
    strcpy(op->consumer, tok[1]);
    dur_send(sh, &op->h);
    return true;
}

/* See dur.h. */
bool topic_sys_publish(struct shard *sh, const struct codec_msg *m)
{
    return sys_ack(sh, m) || sys_admin(sh, m);
}

/* ---- Consumer bindings ---- */

/* See dur.h. */
bool dur_name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 1 || n > STORE_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-'))
            return false;
    return true;
}

/* See replay.h. */
int topic_bind_prepare(struct conn *c, const Ringmq__Subscribe *m, struct dop_bind **out)
{
    struct shard *sh = c->sh;
    struct dop_bind *op;
    const char *why = NULL;
    Ringmq__ErrorCode code = RINGMQ__ERROR_CODE__ERR_INVALID;
    int tidx = -1;
    if (!sh->srv->dur) {
        code = RINGMQ__ERROR_CODE__ERR_UNAVAILABLE;
        why = "this broker runs without storage (--storage off)";
    } else if (!m->topic) {
        why = "a durable consumer needs its topic";
    } else if (!dur_name_ok(m->durable)) {
        why = "consumer names are 1-64 of [A-Za-z0-9_-]";
    } else if ((m->queue && m->queue[0]) || strcmp(m->pattern, ">") != 0) {
        why = "a consumer binding takes pattern \">\" and no queue group";
    } else if ((tidx = topic_by_name(sh, m->topic)) < 0) {
        code = RINGMQ__ERROR_CODE__ERR_NO_TOPIC;
        why = "no such topic";
    }
    if (why) {
        conn_send_error(c, code, why, m->sid, false);
        return -1;
    }
    op = xcalloc(1, sizeof(*op));
    op->h.type = DOP_BIND;
    op->topic = sh->topics->t[tidx].id;
    memcpy(op->topic_name, sh->topics->t[tidx].name, sizeof(op->topic_name));
    strcpy(op->name, m->durable);
    op->max_inflight = m->has_max_inflight ? m->max_inflight : 0;
    op->max_deliver = m->has_max_deliver ? m->max_deliver : 0;
    op->ack_wait_ms = m->has_ack_wait_ms ? m->ack_wait_ms : 0;
    *out = op;
    return 0;
}

/* See replay.h. */
void topic_bind_attach(struct shard *sh, struct sub *s, struct dop_bind *op)
{
    struct dbind *b = xcalloc(1, sizeof(*b));
    b->sub = s;
    b->topic = op->topic;
    memcpy(b->name, op->name, sizeof(b->name));
    s->bind = b;
    op->b = b;
    dur_send(sh, &op->h);
}

/* See replay.h. */
void topic_unbind(struct shard *sh, struct sub *s)
{
    struct dbind *b = s->bind;
    struct dop_bind *op;
    s->bind = NULL;
    b->sub = NULL;
    if (b->failed) {
        free(b);
        return;
    }
    op = xcalloc(1, sizeof(*op));
    op->h.type = DOP_UNBIND;
    op->b = b;
    op->topic = b->topic;
    memcpy(op->name, b->name, sizeof(op->name));
    dur_send(sh, &op->h);
}

static void bind_done(struct shard *sh, struct dop_bind *op)
{
    struct dbind *b = op->b;
    if (op->h.rc && b->sub) {
        struct sub *s = b->sub;
        char text[160];
        b->failed = true;
        snprintf(text, sizeof(text), "cannot bind to consumer %s: %s", op->name,
                 rmq_err_str(op->h.rc));
        conn_send_error(s->conn,
                        op->h.rc == RMQ_ENOTFOUND ? RINGMQ__ERROR_CODE__ERR_NO_TOPIC
                                                  : RINGMQ__ERROR_CODE__ERR_STORAGE,
                        text, s->sid, false);
        conn_sub_remove(s->conn, s);
    } else if (op->h.rc) {
        b->failed = true; /* its UNBIND is on the way and frees it */
    }
    (void)sh;
    free(op);
}

static void cdeliver(struct shard *sh, struct dop_cdeliver *op)
{
    struct sub *s = op->b->sub;
    struct codec_msg m;
    struct msgbuf *body;
    uint8_t pre[CODEC_MSG_PREFIX_MAX];
    size_t pl, blen;
    if (!s || (s->conn->flags & (CONN_F_SLOW | CONN_F_DRAINING | CONN_F_CLOSING)) ||
        s->remaining == SUB_DONE || codec_msg_parse(op->data, op->len, &m) != 0) {
        free(op); /* the storage thread redelivers it after ack_wait */
        return;
    }
    m.reply.p = (const uint8_t *)op->reply;
    m.reply.len = op->rlen;
    m.seq = op->seq;
    m.time_ns = op->ts_ns;
    m.deliveries = op->deliveries;
    blen = codec_body_size(&m);
    body = msgbuf_new(&sh->pool, (uint32_t)blen);
    codec_body_write(&m, body->data);
    pl = codec_msg_prefix(pre, s->sid, blen);
    if (conn_enqueue(s->conn, pre, pl, body, false)) {
        stat_add(&sh->stats.msgs_out, 1);
        if (s->remaining && --s->remaining == 0) {
            s->remaining = SUB_DONE;
            shard_push_unsub(sh, s);
        }
    }
    xshard_unref(sh, body);
    free(op);
}

/* End every topic subscription and binding whose topic is gone. */
static void drop_orphans(struct shard *sh)
{
    for (struct conn *c = sh->conns; c; c = c->next)
        for (uint32_t i = 0; i < c->subcap; i++) {
            struct sub *s = c->subs[i];
            uint32_t id;
            bool found = false;
            if (!s || s == DISPATCH_SUB_TOMB || (!s->rp && !s->bind) || s->remaining == SUB_DONE)
                continue;
            id = s->bind ? s->bind->topic : replay_topic(s);
            for (uint32_t k = 0; k < sh->topics->n && !found; k++)
                found = sh->topics->t[k].id == id;
            if (found)
                continue;
            conn_send_error(c, RINGMQ__ERROR_CODE__ERR_NO_TOPIC, "the topic was removed", s->sid,
                            false);
            shard_push_unsub(sh, s);
            s->remaining = SUB_DONE;
        }
    dispatch_after_route(sh);
}

/* See dur.h. */
void dur_drain(struct shard *sh)
{
    struct mpsc_node *l = mpsc_take_all(&sh->dur_in);
    while (l) {
        struct mpsc_node *nx = l->next;
        struct dop *op = (struct dop *)l;
        switch ((enum dop_type)op->type) {
        case DOP_APPEND:
            append_done(sh, (struct dop_append *)op);
            break;
        case DOP_ADMIN: {
            struct dop_admin *a = (struct dop_admin *)op;
            if (a->kind == DA_TOPIC_LIST && sh->rtopics && sh->rtopics->n)
                list_reply(sh, a->reply, a->out, a->outlen);
            else
                dispatch_publish_local(sh, a->reply, (const char *)a->out, a->outlen);
            free(a->out);
            free(a);
            break;
        }
        case DOP_BIND:
            bind_done(sh, (struct dop_bind *)op);
            break;
        case DOP_UNBIND:
            free(((struct dop_bind *)op)->b);
            free(op);
            break;
        case DOP_TOPICS: {
            struct dop_topics *t = (struct dop_topics *)op;
            table_apply(sh, t->tab);
            t->tab = NULL;
            drop_orphans(sh);
            if (sh->id == 0)
                route_topics_changed(sh);
            dur_send(sh, op);
            break;
        }
        case DOP_CDELIVER:
            cdeliver(sh, (struct dop_cdeliver *)op);
            break;
        default:
            log_error("[s%u] unexpected op %u from the storage thread", sh->id, op->type);
            free(op);
            break;
        }
        l = nx;
    }
    dispatch_after_route(sh);
}
