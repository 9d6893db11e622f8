/*
 * dispatch.c - frame handling for client connections.
 *
 * The publish path, which runs once per message:
 *
 *   codec_peek -> codec_msg_parse (in place) -> subject_check ->
 *   trie_match -> for each match: [first match only: take a msgbuf from the
 *   pool and write the shared body once] -> per-subscriber prefix ->
 *   conn_enqueue (a reference, no copy), or for a frame of at most
 *   CONN_COPY_MAX bytes conn_enqueue_copy (prefix and body copied into the
 *   conn's current send buffer: one iovec for many small messages).
 *
 * No malloc in the steady state: msgbufs come from the shard pool and the
 * out-queues grow by doubling. Work that would change the trie during
 * trie_match (auto-unsubscribe reaching zero, a consumer going slow) is put
 * on shard lists and done in dispatch_after_route().
 *
 * Thread: the connection's shard.
 */
#include "dispatch.h"

#include <errno.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "codec.h"
#include "conn.h"
#include "dur.h"
#include "dur_int.h"
#include "log.h"
#include "replay.h"
#include "route.h"
#include "rproxy.h"
#include "subject.h"
#include "trie.h"
#include "xalloc.h"
#include "xshard.h"

/* ---- The sid map of a connection ---- */

static uint32_t sid_slot(uint64_t sid, uint32_t cap)
{
    return (uint32_t)((sid * 0x9E3779B97F4A7C15ull) >> 32) & (cap - 1);
}

static struct sub **submap_find(struct conn *c, uint64_t sid)
{
    if (!c->subcap)
        return NULL;
    for (uint32_t i = sid_slot(sid, c->subcap);; i = (i + 1) & (c->subcap - 1)) {
        struct sub *s = c->subs[i];
        if (!s)
            return NULL;
        if (s != DISPATCH_SUB_TOMB && s->sid == sid)
            return &c->subs[i];
    }
}

static void submap_put(struct conn *c, struct sub *s);

static void submap_grow(struct conn *c)
{
    struct sub **old = c->subs;
    uint32_t oldcap = c->subcap;
    uint32_t cap = oldcap ? oldcap : 8;
    while ((c->nsubs + 1) * 2 > cap)
        cap *= 2;
    c->subs = xcalloc(cap, sizeof(*c->subs));
    c->subcap = cap;
    c->nsubs = c->subused = 0;
    for (uint32_t i = 0; i < oldcap; i++)
        if (old[i] && old[i] != DISPATCH_SUB_TOMB)
            submap_put(c, old[i]);
    free(old);
}

static void submap_put(struct conn *c, struct sub *s)
{
    uint32_t i;
    if ((c->subused + 1) * 4 > c->subcap * 3)
        submap_grow(c);
    for (i = sid_slot(s->sid, c->subcap); c->subs[i] && c->subs[i] != DISPATCH_SUB_TOMB;
         i = (i + 1) & (c->subcap - 1))
        ;
    if (!c->subs[i])
        c->subused++;
    c->subs[i] = s;
    c->nsubs++;
}

/* ---- Subscriptions ---- */

static const char *sub_queue(const struct sub *s)
{
    return s->str + s->plen + 1;
}

/* See dispatch.h. */
void dispatch_sub_unindex(struct shard *sh, struct sub *s)
{
    bool topic = s->rp != NULL;
    int rc;
    if (s->bind || s->px) { /* a consumer binding or a proxy is not in the trie */
        if (s->bind)
            topic_unbind(sh, s);
        else
            rproxy_detach(sh, s);
        stat_add(&sh->stats.subs_now, (uint64_t)-1);
        return;
    }
    if (s->rp)
        replay_free(sh, s);
    rc = trie_remove(sh->trie, s->str, s->plen, sub_queue(s), s->qlen, s);
    if (rc < 0)
        log_error("[s%u] subscription %" PRIu64 " missing from the index", sh->id, s->sid);
    stat_add(&sh->stats.subs_now, (uint64_t)-1);
    xshard_sub_interest(sh, s->str, sub_klen(s), false, !topic);
}

/* See conn.h. */
void conn_sub_remove(struct conn *c, struct sub *s)
{
    struct sub **slot = submap_find(c, s->sid);
    if (slot) {
        *slot = DISPATCH_SUB_TOMB;
        c->nsubs--;
    }
    dispatch_sub_unindex(c->sh, s);
    free(s);
}

static bool queue_name_ok(const char *q, size_t len)
{
    if (len > SUBJECT_MAX_LEN)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)q[i] <= ' ' || q[i] == 0x7f)
            return false;
    return true;
}

/* See dispatch.h. */
struct sub *dispatch_sub_find(struct conn *c, uint64_t sid)
{
    struct sub **slot = submap_find(c, sid);
    return slot ? *slot : NULL;
}

/* See dispatch.h. */
void dispatch_subscribe(struct conn *c, const struct codec_span *sp)
{
    struct shard *sh = c->sh;
    Ringmq__Subscribe *m = ringmq__subscribe__unpack(NULL, sp->len, sp->p);
    struct sub *s;
    struct replay *rp = NULL;
    struct dop_bind *bind = NULL;
    struct rproxy *px = NULL;
    size_t plen, qlen;
    int rc;

    if (!m) {
        stat_add(&sh->stats.bad_frames, 1);
        conn_send_error(c, RINGMQ__ERROR_CODE__ERR_BAD_FRAME, "malformed SUBSCRIBE", 0, false);
        return;
    }
    plen = strlen(m->pattern);
    qlen = m->queue ? strlen(m->queue) : 0;
    if (m->sid == 0 || submap_find(c, m->sid)) {
        conn_send_error(c, RINGMQ__ERROR_CODE__ERR_BAD_SID,
                        m->sid ? "subscription id already in use" : "subscription id 0", m->sid,
                        false);
        goto out;
    }
    if (c->nsubs >= sh->srv->cfg.max_subs) {
        conn_send_error(c, RINGMQ__ERROR_CODE__ERR_LIMIT, "too many subscriptions", m->sid, false);
        goto out;
    }
    if (subject_check_pattern(m->pattern, plen) || (m->queue && !queue_name_ok(m->queue, qlen))) {
        char text[128];
        stat_add(&sh->stats.bad_subjects, 1);
        snprintf(text, sizeof(text), "invalid %s '%.60s'",
                 subject_check_pattern(m->pattern, plen) ? "subject pattern" : "queue group",
                 subject_check_pattern(m->pattern, plen) ? m->pattern : m->queue);
        conn_send_error(c, RINGMQ__ERROR_CODE__ERR_BAD_SUBJECT, text, m->sid, false);
        goto out;
    }
    if ((c->flags & CONN_F_ROUTE) && !m->topic) {
        conn_send_error(c, RINGMQ__ERROR_CODE__ERR_INVALID,
                        "only topic subscriptions come over a route", m->sid, false);
        goto out;
    }
    if (rproxy_prepare(c, m, &px))
        goto out;
    if (!px && (m->durable ? topic_bind_prepare(c, m, &bind)
                : m->topic ? replay_prepare(c, m, &rp)
                           : 0))
        goto out;
    s = xmalloc(sizeof(*s) + plen + qlen + 2);
    s->conn = c;
    s->rp = NULL;
    s->bind = NULL;
    s->px = NULL;
    s->sid = m->sid;
    s->remaining = 0;
    s->plen = (uint16_t)plen;
    s->qlen = (uint16_t)qlen;
    memcpy(s->str, m->pattern, plen + 1);
    memcpy(s->str + plen + 1, qlen ? m->queue : "", qlen + 1);
    s->ghash = strmap_hash(s->str, sub_klen(s));
    s->created_ns = now_ns(); /* fresh, not the loop's cached time: see route_visit */
    if (bind || px) {
        submap_put(c, s);
        stat_add(&sh->stats.subs_now, 1);
        if (bind)
            topic_bind_attach(sh, s, bind);
        else
            rproxy_attach(sh, s, px, m);
        goto out;
    }
    rc = trie_insert(sh->trie, s->str, plen, sub_queue(s), qlen, s);
    if (rc < 0) {
        free(s);
        free(rp);
        conn_send_error(c, RINGMQ__ERROR_CODE__ERR_LIMIT, rmq_err_str(rc), m->sid, false);
        goto out;
    }
    submap_put(c, s);
    stat_add(&sh->stats.subs_now, 1);
    xshard_sub_interest(sh, s->str, sub_klen(s), true, rp == NULL);
    if (rp)
        replay_attach(sh, s, rp);
out:
    ringmq__subscribe__free_unpacked(m, NULL);
}

/* See dispatch.h. */
void dispatch_unsubscribe(struct conn *c, const struct codec_span *sp)
{
    Ringmq__Unsubscribe *m = ringmq__unsubscribe__unpack(NULL, sp->len, sp->p);
    struct sub **slot;
    if (!m) {
        stat_add(&c->sh->stats.bad_frames, 1);
        conn_send_error(c, RINGMQ__ERROR_CODE__ERR_BAD_FRAME, "malformed UNSUBSCRIBE", 0, false);
        return;
    }
    slot = submap_find(c, m->sid);
    if (!slot)
        conn_send_error(c, RINGMQ__ERROR_CODE__ERR_BAD_SID, "no such subscription", m->sid, false);
    else if (!m->has_max || m->max == 0)
        conn_sub_remove(c, *slot);
    else
        (*slot)->remaining = m->max;
    ringmq__unsubscribe__free_unpacked(m, NULL);
}

/* ---- Publish ---- */

struct route_ctx {
    struct shard *sh;
    const struct codec_msg *m;
    const struct route_filter *f;
    struct msgbuf *body;
    bool own_body;
    size_t body_len;
    uint64_t delivered;
    bool seq_known; /* for topic subscriptions: the message's seq, parsed once */
    uint64_t seq;
    struct codec_span subj;
    bool memo_ok; /* the walk so far can be kept in sh->dmemo */
};

static uint64_t route_seq(struct route_ctx *r)
{
    if (!r->seq_known) {
        struct codec_msg m;
        r->seq_known = true;
        r->seq = r->m                                                    ? r->m->seq
                 : codec_msg_parse(r->body->data, r->body->len, &m) == 0 ? m.seq
                                                                         : 0;
    }
    return r->seq;
}

static bool group_chosen(const struct route_filter *f, uint64_t ghash)
{
    for (unsigned i = 0; i < f->ng; i++)
        if (f->g[i] == ghash)
            return true;
    return false;
}

static enum trie_visit_rc route_visit(void *p, void *arg)
{
    struct sub *s = p;
    struct route_ctx *r = arg;
    struct conn *c = s->conn;
    uint8_t pre[CODEC_MSG_PREFIX_MAX];
    size_t pl;

    /* Another shard was chosen for this group: leave its turn alone. */
    if (s->qlen ? !(r->f->all_groups || group_chosen(r->f, s->ghash)) : !r->f->plain)
        return TRIE_SKIP_GROUP;
    /* This member cannot take it: a group offers the next member. A
     * subscription younger than a cross-shard message was not there when
     * the message was published (it only waited in a ring). */
    if ((c->flags & (CONN_F_SLOW | CONN_F_DRAINING | CONN_F_CLOSING)) || s->remaining == SUB_DONE ||
        (r->f->ts && s->created_ns > r->f->ts))
        return TRIE_NEXT_MEMBER;
    if (s->rp && !replay_offer(r->sh, s, route_seq(r), (const char *)r->subj.p, r->subj.len))
        return TRIE_NEXT_MEMBER;
    if (!r->body) {
        r->body = msgbuf_new(&r->sh->pool, (uint32_t)r->body_len);
        r->own_body = true;
        codec_body_write(r->m, r->body->data);
    }
    pl = codec_msg_prefix(pre, s->sid, r->body_len);
    /* A small message is copied into the conn's send buffer (one iovec
     * for many messages); a large one is queued as a reference. */
    if (!(pl + r->body_len <= CONN_COPY_MAX
              ? conn_enqueue_copy(c, pre, pl, r->body->data, r->body_len, false)
              : conn_enqueue(c, pre, pl, r->body, false)))
        return TRIE_NEXT_MEMBER;
    r->delivered++;
    if (s->remaining && --s->remaining == 0) {
        s->remaining = SUB_DONE;
        shard_push_unsub(r->sh, s);
    }
    return TRIE_TAKEN;
}

/* route_visit(), noting the plain subscriptions the walk finds in the memo. */
static enum trie_visit_rc route_visit_memo(void *p, void *arg)
{
    struct sub *s = p;
    struct route_ctx *r = arg;
    struct dmemo *mo = &r->sh->dmemo;
    if (r->memo_ok) {
        if (s->qlen || mo->n == DMEMO_SUBS)
            r->memo_ok = false;
        else
            mo->subs[mo->n++] = s;
    }
    return route_visit(p, arg);
}

/* Match subj in the local trie, or replay the memo of the last walk. */
static void route_match(struct shard *sh, struct route_ctx *r, struct codec_span subj)
{
    struct dmemo *mo = &sh->dmemo;
    uint64_t gen = trie_gen(sh->trie);
    if (mo->valid && mo->gen == gen && mo->slen == subj.len &&
        memcmp(mo->subj, subj.p, subj.len) == 0) {
        /* Nothing was inserted or removed since: the walk would visit the
         * same plain subscriptions in the same order (a deferred
         * unsubscribe or slow close bumps gen after this publish). */
        for (unsigned i = 0; i < mo->n; i++)
            route_visit(mo->subs[i], r);
        return;
    }
    mo->valid = false;
    mo->n = 0;
    r->memo_ok = subj.len <= sizeof(mo->subj);
    trie_match(sh->trie, (const char *)subj.p, subj.len, route_visit_memo, r);
    if (r->memo_ok) {
        mo->valid = true;
        mo->gen = gen;
        mo->slen = (uint16_t)subj.len;
        memcpy(mo->subj, subj.p, subj.len);
    }
}

/* See dispatch.h. */
void dispatch_deliver(struct shard *sh, const struct codec_msg *m, struct msgbuf *body,
                      const struct route_filter *f)
{
    struct route_ctx r = {.sh = sh, .m = m, .f = f, .body = body};
    struct codec_span subj;
    if (m) {
        subj = m->subject;
        r.body_len = codec_body_size(m);
    } else {
        if (codec_body_subject(body->data, body->len, &subj))
            return;
        r.body_len = body->len;
    }
    r.subj = subj;
    route_match(sh, &r, subj);
    if (r.own_body)
        xshard_unref(sh, r.body);
    stat_add(&sh->stats.msgs_out, r.delivered);
    dispatch_after_route(sh);
}

/* See dispatch.h. */
void dispatch_after_route(struct shard *sh)
{
    for (uint32_t i = 0; i < sh->nunsub; i++)
        conn_sub_remove(sh->unsub[i]->conn, sh->unsub[i]);
    sh->nunsub = 0;
    for (uint32_t i = 0; i < sh->nslow; i++)
        conn_slow_close(sh->slow[i]);
    sh->nslow = 0;
}

/* See dispatch.h. */
void dispatch_publish_local(struct shard *sh, const char *subj, const char *data, size_t len)
{
    size_t slen = strlen(subj);
    size_t n = codec_pub_size(subj, slen, NULL, 0, NULL, 0, len);
    uint8_t *frame = xmalloc(n);
    struct codec_span body, sub;
    struct codec_msg m;
    codec_pub_write(frame, subj, slen, NULL, 0, NULL, 0, data, len);
    if (codec_split(frame, n, UINT32_MAX, &body) == 1 &&
        codec_peek(body.p, body.len, &sub) == CODEC_K_PUB &&
        codec_msg_parse(sub.p, sub.len, &m) == 0)
        xshard_route(sh, &m);
    free(frame);
}

/* The $SYS.REQ.STATS fields: JSON name and counter, summed over shards. */
static const struct {
    const char *name;
    size_t off;
} stat_fields[] = {
#define STAT_FIELD(json, field)                                                                    \
    {                                                                                              \
        json, offsetof(struct shard_stats, field)                                                  \
    }
    STAT_FIELD("connections_total", conns_total),
    STAT_FIELD("connections", conns_now),
    STAT_FIELD("msgs_in", msgs_in),
    STAT_FIELD("bytes_in", bytes_in),
    STAT_FIELD("msgs_out", msgs_out),
    STAT_FIELD("bytes_out", bytes_out),
    STAT_FIELD("slow_consumers", slow_consumers),
    STAT_FIELD("bad_frames", bad_frames),
    STAT_FIELD("bad_subjects", bad_subjects),
    STAT_FIELD("payload_too_big", too_big),
    STAT_FIELD("enobufs", enobufs),
    STAT_FIELD("subscriptions", subs_now),
    STAT_FIELD("sends", sends),
    STAT_FIELD("send_iovecs", send_iovs),
    STAT_FIELD("xshard_deliveries", xdeliver),
    STAT_FIELD("xshard_doorbells", xdoorbells),
    STAT_FIELD("publisher_stalls", stalls),
    STAT_FIELD("zerocopy_sends", zc_sends),
    STAT_FIELD("zerocopy_copied", zc_copied),
    STAT_FIELD("route_msgs_in", route_in),
    STAT_FIELD("route_msgs_out", route_out),
    STAT_FIELD("remote_topic_subs", px_now),
    STAT_FIELD("remote_topic_pauses", px_pauses),
#undef STAT_FIELD
};

static void sys_stats(struct conn *c, const struct codec_msg *m)
{
    struct server *srv = c->sh->srv;
    char json[2048], reply[SUBJECT_MAX_LEN + 1];
    size_t n;

    n = (size_t)snprintf(json, sizeof(json),
                         "{\"server_id\":\"%s\",\"version\":\"%s\",\"shards\":%u", srv->server_id,
                         RMQ_VERSION, srv->nshards);
    for (size_t k = 0; k < sizeof(stat_fields) / sizeof(stat_fields[0]) && n < sizeof(json); k++) {
        uint64_t v = 0;
        for (unsigned i = 0; i < srv->nshards; i++)
            v += stat_get((_Atomic uint64_t *)((char *)&srv->shards[i].stats + stat_fields[k].off));
        n += (size_t)snprintf(json + n, sizeof(json) - n, ",\"%s\":%" PRIu64, stat_fields[k].name,
                              v);
    }
    if (srv->dur && n < sizeof(json)) {
        struct dur_stats *ds = &srv->dur->stats;
        n += (size_t)snprintf(
            json + n, sizeof(json) - n,
            ",\"stored\":%" PRIu64 ",\"store_duplicates\":%" PRIu64 ",\"store_errors\":%" PRIu64
            ",\"store_batches\":%" PRIu64 ",\"consumer_deliveries\":%" PRIu64
            ",\"consumer_redeliveries\":%" PRIu64 ",\"consumer_acks\":%" PRIu64
            ",\"consumer_dropped\":%" PRIu64,
            stat_get(&ds->stored), stat_get(&ds->duplicates), stat_get(&ds->store_errors),
            stat_get(&ds->batches), stat_get(&ds->cons_delivered), stat_get(&ds->cons_redelivered),
            stat_get(&ds->cons_acks), stat_get(&ds->cons_dropped));
    }
    if (n < sizeof(json) - 1)
        json[n++] = '}';
    memcpy(reply, m->reply.p, m->reply.len);
    reply[m->reply.len] = '\0';
    dispatch_publish_local(c->sh, reply, json, n < sizeof(json) ? n : sizeof(json) - 1);
}

static void on_publish(struct conn *c, const struct codec_span *sp)
{
    struct shard *sh = c->sh;
    struct codec_msg m;
    char text[160];

    if (codec_msg_parse(sp->p, sp->len, &m)) {
        stat_add(&sh->stats.bad_frames, 1);
        conn_send_error(c, RINGMQ__ERROR_CODE__ERR_BAD_FRAME, "malformed PUBLISH", 0, false);
        return;
    }
    stat_add(&sh->stats.msgs_in, 1);
    if (m.payload.len > sh->srv->cfg.max_payload) {
        stat_add(&sh->stats.too_big, 1);
        snprintf(text, sizeof(text), "payload of %zu bytes is over the limit of %u", m.payload.len,
                 sh->srv->cfg.max_payload);
        conn_send_error(c, RINGMQ__ERROR_CODE__ERR_PAYLOAD_TOO_BIG, text, 0, false);
        return;
    }
    if (subject_check((const char *)m.subject.p, m.subject.len) ||
        (m.reply.len && subject_check((const char *)m.reply.p, m.reply.len))) {
        bool bad_subj = subject_check((const char *)m.subject.p, m.subject.len) != 0;
        const struct codec_span *b = bad_subj ? &m.subject : &m.reply;
        stat_add(&sh->stats.bad_subjects, 1);
        snprintf(text, sizeof(text), "invalid %s subject '%.*s'", bad_subj ? "publish" : "reply",
                 (int)(b->len > 60 ? 60 : b->len), (const char *)b->p);
        conn_send_error(c, RINGMQ__ERROR_CODE__ERR_BAD_SUBJECT, text, 0, false);
        return;
    }
    if (m.subject.p[0] == '$') {
        if (m.reply.len && m.subject.len == strlen(DISPATCH_SYS_STATS) &&
            memcmp(m.subject.p, DISPATCH_SYS_STATS, m.subject.len) == 0) {
            sys_stats(c, &m);
            return;
        }
        if (m.reply.len && m.subject.len == strlen(DISPATCH_SYS_CLUSTER) &&
            memcmp(m.subject.p, DISPATCH_SYS_CLUSTER, m.subject.len) == 0) {
            char json[16384], reply[SUBJECT_MAX_LEN + 1];
            size_t n = route_cluster_json(sh->srv, json, sizeof(json));
            memcpy(reply, m.reply.p, m.reply.len);
            reply[m.reply.len] = '\0';
            dispatch_publish_local(sh, reply, json, n);
            return;
        }
        if (topic_sys_publish(sh, &m))
            return;
    }
    if (sh->topics && sh->topics->n) {
        int tidx = topic_of_subject(sh, (const char *)m.subject.p, m.subject.len);
        if (tidx >= 0) {
            topic_publish(sh, c, &m, tidx);
            return;
        }
    }
    if (sh->rtopics && sh->rtopics->n) {
        int ridx = rtopic_of_subject(sh, (const char *)m.subject.p, m.subject.len);
        if (ridx >= 0) {
            topic_publish_remote(sh, &m, ridx);
            return;
        }
    }
    if (m.nhdrs && m.reply.len && topic_refuse_ack(sh, &m))
        return;
    xshard_route(sh, &m);
}

/* ---- Handshake and control ---- */

static void on_connect(struct conn *c, const struct codec_span *sp)
{
    struct shard *sh = c->sh;
    struct server *srv = sh->srv;
    Ringmq__Connect *m = ringmq__connect__unpack(NULL, sp->len, sp->p);
    Ringmq__Frame f = RINGMQ__FRAME__INIT;
    Ringmq__Info info = RINGMQ__INFO__INIT;

    if (!m) {
        stat_add(&sh->stats.bad_frames, 1);
        conn_send_error(c, RINGMQ__ERROR_CODE__ERR_BAD_FRAME, "malformed CONNECT", 0, true);
        return;
    }
    if (m->version != CODEC_PROTO_VERSION) {
        char text[96];
        snprintf(text, sizeof(text), "protocol version %u not supported (this server speaks %u)",
                 m->version, CODEC_PROTO_VERSION);
        conn_send_error(c, RINGMQ__ERROR_CODE__ERR_PROTOCOL_VERSION, text, 0, true);
        goto out;
    }
    if (srv->cfg.auth_token[0] &&
        (!m->auth_token || strcmp(m->auth_token, srv->cfg.auth_token) != 0)) {
        log_warn("[s%u] conn %llu (%s): authentication failed", sh->id, (unsigned long long)c->id,
                 c->peer);
        conn_send_error(c, RINGMQ__ERROR_CODE__ERR_AUTH, "authentication failed", 0, true);
        goto out;
    }
    if (m->name)
        snprintf(c->name, sizeof(c->name), "%s", m->name);
    c->flags |= CONN_F_READY;
    c->deadline_ns = 0;
    info.server_id = srv->server_id;
    info.version = RMQ_VERSION;
    info.proto_version = CODEC_PROTO_VERSION;
    info.max_frame = srv->max_body;
    info.max_payload = srv->cfg.max_payload;
    info.shards = srv->nshards;
    info.has_client_id = true;
    info.client_id = c->id;
    f.kind_case = RINGMQ__FRAME__KIND_INFO;
    f.info = &info;
    conn_send_frame(c, &f);
    log_debug("[s%u] conn %llu connected as '%s'", sh->id, (unsigned long long)c->id, c->name);
out:
    ringmq__connect__free_unpacked(m, NULL);
}

static void on_ping(struct conn *c, const struct codec_span *sp)
{
    Ringmq__Ping *m = ringmq__ping__unpack(NULL, sp->len, sp->p);
    if (!m) {
        stat_add(&c->sh->stats.bad_frames, 1);
        conn_send_error(c, RINGMQ__ERROR_CODE__ERR_BAD_FRAME, "malformed PING", 0, false);
        return;
    }
    xshard_pong(c->sh, c, m->token);
    ringmq__ping__free_unpacked(m, NULL);
}

/* See dispatch.h. */
void dispatch_frame(struct conn *c, const uint8_t *body, size_t len)
{
    struct codec_span sp;
    char text[96];
    int kind = codec_peek(body, len, &sp);

    if (kind < 0) {
        stat_add(&c->sh->stats.bad_frames, 1);
        log_debug("[s%u] conn %llu: malformed frame body (%zu bytes)", c->sh->id,
                  (unsigned long long)c->id, len);
        conn_send_error(c, RINGMQ__ERROR_CODE__ERR_BAD_FRAME, "malformed frame body", 0,
                        !(c->flags & CONN_F_READY));
        return;
    }
    if (!(c->flags & CONN_F_READY) && kind != CODEC_K_CONNECT) {
        stat_add(&c->sh->stats.bad_frames, 1);
        conn_send_error(c, RINGMQ__ERROR_CODE__ERR_NOT_CONNECTED, "CONNECT must come first", 0,
                        true);
        return;
    }
    switch (kind) {
    case CODEC_K_PUB:
        on_publish(c, &sp);
        break;
    case CODEC_K_SUB:
        dispatch_subscribe(c, &sp);
        break;
    case CODEC_K_UNSUB:
        dispatch_unsubscribe(c, &sp);
        break;
    case CODEC_K_PING:
        on_ping(c, &sp);
        break;
    case CODEC_K_PONG:
        break;
    case CODEC_K_CONNECT:
        if (c->flags & CONN_F_READY) {
            stat_add(&c->sh->stats.bad_frames, 1);
            conn_send_error(c, RINGMQ__ERROR_CODE__ERR_BAD_FRAME, "already connected", 0, false);
        } else
            on_connect(c, &sp);
        break;
    default:
        stat_add(&c->sh->stats.bad_frames, 1);
        snprintf(text, sizeof(text), "frame kind %d is not accepted from clients", kind);
        conn_send_error(c, RINGMQ__ERROR_CODE__ERR_UNKNOWN_KIND, text, 0, false);
        break;
    }
}
