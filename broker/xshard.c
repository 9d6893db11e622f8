/*
 * xshard.c - cross-shard messaging, delivery and interest (see xshard.h).
 *
 * Interest: every shard keeps a trie (itrie) of what every shard, itself
 * included, subscribes to, one entry per (shard, pattern, queue group),
 * whose value is a struct rint. A shard broadcasts XE_INT_ADD when a key
 * gets its first local subscription and XE_INT_DEL when it loses its last;
 * each peer applies it and answers XE_INT_ACK with the broadcast's seq.
 * A PING is answered once every peer has acked everything broadcast before
 * it, which is what makes "flush after subscribe" hold across shards.
 *
 * Routing a publish: one walk of itrie gives, per shard, whether its plain
 * subscribers want the message and which queue groups it was chosen for
 * (the trie picks one (shard, group) entry per group round-robin, so each
 * group gets the message exactly once across shards). The body is encoded
 * once; each interested peer gets references in XE_DELIVER entries and runs
 * its own local match, filtered by that choice.
 *
 * A body is freed by its owner only: the shard that drops the last
 * reference of a foreign body sends it home in an XE_FREE entry.
 */
#include "xshard.h"

#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "conn.h"
#include "dispatch.h"
#include "dur.h"
#include "log.h"
#include "route.h"
#include "rproxy.h"
#include "shard.h"
#include "trie.h"
#include "xalloc.h"

struct rint {
    uint16_t shard;
    uint64_t ghash; /* 0: plain interest */
};

static _Thread_local bool xshard_finishing;

/* See xshard.h. */
void xshard_server_init(struct server *srv)
{
    size_t n = (size_t)srv->nshards * srv->nshards;
    srv->xr = aligned_alloc(64, n * sizeof(struct xring));
    if (!srv->xr)
        abort();
    memset(srv->xr, 0, n * sizeof(struct xring));
    pthread_barrier_init(&srv->barrier, NULL, srv->nshards);
}

/* See xshard.h. */
void xshard_server_fini(struct server *srv)
{
    pthread_barrier_destroy(&srv->barrier);
    free(srv->xr);
}

/* See xshard.h. */
void xshard_init(struct shard *sh)
{
    unsigned n = sh->srv->nshards;
    sh->stage = xcalloc(n, sizeof(*sh->stage));
    sh->tgt = xcalloc(n, sizeof(*sh->tgt));
    sh->acked = xcalloc(n, sizeof(*sh->acked));
    sh->ptgt = xcalloc(CONFIG_MAX_ROUTES, sizeof(*sh->ptgt));
    sh->itrie = trie_new();
    if (!sh->itrie)
        abort();
    strmap_init(&sh->lint);
    strmap_init(&sh->rints);
    strmap_init(&sh->lgroups);
    sh->ring_fd = sh->ring.ring_fd;
}

static void stage_push(struct shard *sh, unsigned dst, const struct xent *e)
{
    struct xstage *st = &sh->stage[dst];
    if (st->n == st->cap && st->head) {
        /* Compact: what is left moves to the front, once per refill. */
        memmove(st->v, st->v + st->head, (st->n - st->head) * sizeof(*st->v));
        st->n -= st->head;
        st->head = 0;
    }
    if (st->n == st->cap) {
        st->cap = st->cap ? st->cap * 2 : 256;
        st->v = xrealloc(st->v, st->cap * sizeof(*st->v));
    }
    st->v[st->n++] = *e;
}

/* See xshard.h. */
void xshard_unref(struct shard *sh, struct msgbuf *m)
{
    if (!msgbuf_unref_last(m))
        return;
    if (xshard_finishing) {
        free(m);
        return;
    }
    if (m->owner == sh->id) {
        msgpool_put(&sh->pool, m);
    } else {
        struct xent e = {.type = XE_FREE, .ptr = m};
        stage_push(sh, m->owner, &e);
    }
}

/* ---- Rings and doorbells ---- */

static struct xring *ring_of(struct server *srv, unsigned src, unsigned dst)
{
    return &srv->xr[(size_t)src * srv->nshards + dst];
}

static void doorbell(struct shard *sh, struct shard *peer)
{
    struct io_uring_sqe *sqe = shard_sqe(sh);
    io_uring_prep_msg_ring(sqe, peer->ring_fd, 0, UD_WAKE, 0);
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    io_uring_sqe_set_data64(sqe, UD_IGNORE);
    stat_add(&sh->stats.xdoorbells, 1);
}

/* See xshard.h. */
void xshard_flush(struct shard *sh)
{
    struct server *srv = sh->srv;
    for (unsigned d = 0; d < srv->nshards; d++) {
        struct xstage *st = &sh->stage[d];
        struct xring *r;
        uint32_t head, tail, k;
        if (st->head == st->n || d == sh->id)
            continue;
        r = ring_of(srv, sh->id, d);
        head = atomic_load_explicit(&r->head, memory_order_acquire);
        tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
        k = XRING_CAP - (tail - head);
        if (k > st->n - st->head)
            k = st->n - st->head;
        for (uint32_t i = 0; i < k; i++)
            r->ents[(tail + i) & (XRING_CAP - 1)] = st->v[st->head + i];
        atomic_store_explicit(&r->tail, tail + k, memory_order_release);
        st->head += k;
        if (st->head == st->n)
            st->head = st->n = 0;
        if (!k)
            continue;
        /* Pairs with the fence in the consumer's sleep check. */
        atomic_thread_fence(memory_order_seq_cst);
        struct shard *peer = &srv->shards[d];
        if (atomic_load_explicit(&peer->sleeping, memory_order_relaxed) &&
            atomic_exchange(&peer->sleeping, 0))
            doorbell(sh, peer);
    }
}

/* See xshard.h. */
bool xshard_pending(struct shard *sh)
{
    struct server *srv = sh->srv;
    for (unsigned s = 0; s < srv->nshards; s++) {
        struct xring *r;
        if (s == sh->id)
            continue;
        r = ring_of(srv, s, sh->id);
        if (atomic_load_explicit(&r->tail, memory_order_acquire) !=
            atomic_load_explicit(&r->head, memory_order_relaxed))
            return true;
    }
    return false;
}

/* ---- Interest ---- */

static void key_split(const char *key, size_t klen, size_t *plen, const char **q, size_t *qlen)
{
    *plen = strlen(key);
    *q = key + *plen + 1;
    *qlen = klen - *plen - 1;
}

/*
 * A shard of this node gained (add) or lost its interest in key. Counts, per
 * shard, the node's shards with each queue group (so a publish prefers a
 * member on this node) and, on shard 0 of a cluster node, the node's keys
 * (a key that appears or vanishes on the node is told to the peers).
 */
static void node_key(struct shard *sh, const char *key, size_t klen, uint64_t ghash, bool add)
{
    if (!sh->srv->cluster)
        return;
    if (ghash) {
        struct strmap_ent *g = add ? strmap_put(&sh->lgroups, &ghash, sizeof(ghash))
                                   : strmap_get(&sh->lgroups, &ghash, sizeof(ghash));
        if (g && !add && --g->count == 0)
            strmap_del(&sh->lgroups, g);
        else if (g && add)
            g->count++;
    }
    if (sh->id == 0)
        route_node_interest(sh, key, klen, add);
}

/*
 * Interest of origin from in key, added or removed. exported: a node key
 * peers are told about (node_key); topic subscriptions are not (their live
 * messages are routed on the node that stores the topic, and peers send
 * their publishes to it as publishes), so they are counted apart.
 */
static void interest_apply(struct shard *sh, unsigned from, const char *key, size_t klen, bool add,
                           bool exported)
{
    char rk[SUBJECT_MAX_LEN * 2 + 8];
    size_t plen, qlen;
    const char *q;
    struct strmap_ent *e;

    if (klen + 3 > sizeof(rk))
        return;
    rk[0] = (char)(from >> 8);
    rk[1] = (char)from;
    rk[2] = exported ? 'x' : 'l';
    memcpy(rk + 3, key, klen);
    key_split(key, klen, &plen, &q, &qlen);
    if (add) {
        e = strmap_put(&sh->rints, rk, klen + 3);
        if (e->count++ == 0) {
            struct rint *ri = xmalloc(sizeof(*ri));
            ri->shard = (uint16_t)from;
            ri->ghash = qlen ? strmap_hash(key, klen) : 0;
            e->val = ri;
            if (trie_insert(sh->itrie, key, plen, q, qlen, ri) < 0)
                abort(); /* validated by the origin; only OOM gets here */
            sh->memo.itrie_gen++;
            if (from != sh->id)
                sh->nremote_int++;
            if (from < XORIGIN_PEER && exported)
                node_key(sh, key, klen, qlen ? ri->ghash : 0, true);
        }
        return;
    }
    e = strmap_get(&sh->rints, rk, klen + 3);
    if (!e)
        return;
    if (--e->count == 0) {
        struct rint *ri = e->val;
        trie_remove(sh->itrie, key, plen, q, qlen, ri);
        sh->memo.itrie_gen++;
        if (from != sh->id)
            sh->nremote_int--;
        if (from < XORIGIN_PEER && exported)
            node_key(sh, key, klen, ri->ghash, false);
        free(ri);
        strmap_del(&sh->rints, e);
    }
}

static void interest_broadcast(struct shard *sh, const char *key, size_t klen, bool add,
                               bool exported)
{
    struct server *srv = sh->srv;
    interest_apply(sh, sh->id, key, klen, add, exported);
    sh->bcast_seq++;
    for (unsigned d = 0; d < srv->nshards; d++) {
        struct xent e = {.type = add ? XE_INT_ADD : XE_INT_DEL,
                         .plain = exported,
                         .seq = sh->bcast_seq,
                         .origin = (uint16_t)sh->id};
        if (d == sh->id)
            continue;
        e.ptr = xmalloc(klen);
        memcpy(e.ptr, key, klen);
        e.klen = (uint16_t)klen;
        stage_push(sh, d, &e);
    }
}

/* See xshard.h. */
void xshard_sub_interest(struct shard *sh, const char *key, size_t klen, bool add, bool exported)
{
    char lk[SUBJECT_MAX_LEN * 2 + 8];
    struct strmap_ent *e;
    if ((sh->srv->nshards == 1 && !sh->srv->cluster) || klen + 1 > sizeof(lk))
        return;
    memcpy(lk, key, klen);
    lk[klen] = exported ? 'x' : 'l'; /* counted apart: see interest_apply */
    if (add) {
        e = strmap_put(&sh->lint, lk, klen + 1);
        if (e->count++ == 0)
            interest_broadcast(sh, key, klen, true, exported);
        return;
    }
    e = strmap_get(&sh->lint, lk, klen + 1);
    if (!e)
        return;
    if (--e->count == 0) {
        strmap_del(&sh->lint, e);
        interest_broadcast(sh, key, klen, false, exported);
    }
}

/* See xshard.h. */
void xshard_peer_interest(struct shard *sh, uint16_t origin, const char *key, size_t klen, bool add)
{
    struct server *srv = sh->srv;
    if (!sh->stage)
        return; /* after xshard_fini */
    interest_apply(sh, origin, key, klen, add, true);
    sh->bcast_seq++;
    for (unsigned d = 0; d < srv->nshards; d++) {
        struct xent e = {.type = add ? XE_INT_ADD : XE_INT_DEL,
                         .plain = 1,
                         .seq = sh->bcast_seq,
                         .origin = origin};
        if (d == sh->id)
            continue;
        e.ptr = xmalloc(klen);
        memcpy(e.ptr, key, klen);
        e.klen = (uint16_t)klen;
        stage_push(sh, d, &e);
    }
}

static uint64_t min_acked(struct shard *sh)
{
    uint64_t m = UINT64_MAX;
    for (unsigned d = 0; d < sh->srv->nshards; d++)
        if (d != sh->id && sh->acked[d] < m)
            m = sh->acked[d];
    return m;
}

/* See xshard.h. */
void xshard_pong(struct shard *sh, struct conn *c, uint64_t token)
{
    struct xpong *p;
    if (sh->srv->nshards == 1 || min_acked(sh) >= sh->bcast_seq) {
        conn_send_pong(c, token);
        return;
    }
    if (sh->ponghead + sh->npongs == sh->pongcap && sh->pongs) {
        memmove(sh->pongs, sh->pongs + sh->ponghead, sh->npongs * sizeof(*sh->pongs));
        sh->ponghead = 0;
    }
    if (sh->npongs == sh->pongcap) {
        sh->pongcap = sh->pongcap ? sh->pongcap * 2 : 64;
        sh->pongs = xrealloc(sh->pongs, sh->pongcap * sizeof(*sh->pongs));
    }
    p = &sh->pongs[sh->ponghead + sh->npongs++];
    p->conn = c;
    p->token = token;
    p->seq = sh->bcast_seq;
}

/* See xshard.h. */
uint64_t xshard_interest_seq(struct shard *sh)
{
    return sh->bcast_seq;
}

/* See xshard.h. */
bool xshard_interest_synced(struct shard *sh, uint64_t seq)
{
    return sh->srv->nshards == 1 || min_acked(sh) >= seq;
}

static void pongs_release(struct shard *sh)
{
    uint64_t m = min_acked(sh);
    while (sh->npongs && sh->pongs[sh->ponghead].seq <= m) {
        struct xpong *p = &sh->pongs[sh->ponghead++];
        sh->npongs--;
        if (p->conn)
            conn_send_pong(p->conn, p->token);
    }
    if (!sh->npongs)
        sh->ponghead = 0;
}

/* See xshard.h. */
void xshard_conn_gone(struct shard *sh, struct conn *c)
{
    for (uint32_t i = 0; i < sh->npongs; i++)
        if (sh->pongs[sh->ponghead + i].conn == c)
            sh->pongs[sh->ponghead + i].conn = NULL;
}

/* ---- Delivery ---- */

struct route_scan {
    struct shard *sh;
    unsigned touched[XSHARD_MAX];
    unsigned nt;
    bool overflow;
    /* Cluster: peers touched (slot numbers), or for a message from a route
     * the groups it is for (low 32 bits). */
    unsigned ptouched[CONFIG_MAX_ROUTES];
    unsigned npt;
    bool from_route, in_plain;
    const uint32_t *in_g;
    unsigned in_ng;
};

static bool in_groups(const struct route_scan *rs, uint64_t ghash)
{
    for (unsigned i = 0; i < rs->in_ng; i++)
        if (rs->in_g[i] == (uint32_t)ghash)
            return true;
    return false;
}

/* Record what rint ri asks of a target: plain, or one more queue group. */
static void take_choice(struct route_scan *rs, const struct rint *ri, bool *plain, uint8_t *ng,
                        uint64_t *g)
{
    if (!ri->ghash)
        *plain = true;
    else if (*ng < XROUTE_GROUPS)
        g[(*ng)++] = ri->ghash;
    else
        rs->overflow = true;
}

static enum trie_visit_rc scan_peer(struct route_scan *rs, const struct rint *ri)
{
    unsigned slot = ri->shard - XORIGIN_PEER;
    struct ptarget *t = &rs->sh->ptgt[slot];
    /* A message from a route is never forwarded again. A group with a
     * member on this node takes the message here (the trie offers the next
     * member, ours eventually). */
    if (rs->from_route)
        return ri->ghash ? TRIE_NEXT_MEMBER : TRIE_TAKEN;
    if (ri->ghash && strmap_get(&rs->sh->lgroups, &ri->ghash, sizeof(ri->ghash)))
        return TRIE_NEXT_MEMBER;
    if (!t->plain && !t->ng)
        rs->ptouched[rs->npt++] = slot;
    take_choice(rs, ri, &t->plain, &t->ng, t->g);
    return TRIE_TAKEN;
}

static enum trie_visit_rc scan_visit(void *p, void *arg)
{
    struct rint *ri = p;
    struct route_scan *rs = arg;
    struct xtarget *t;
    if (ri->shard >= XORIGIN_PEER)
        return scan_peer(rs, ri);
    if (rs->from_route) {
        if (ri->ghash ? !in_groups(rs, ri->ghash) : !rs->in_plain)
            return TRIE_SKIP_GROUP;
    }
    t = &rs->sh->tgt[ri->shard];
    if (!t->touched) {
        t->touched = true;
        rs->touched[rs->nt++] = ri->shard;
    }
    take_choice(rs, ri, &t->plain, &t->ng, t->g);
    return TRIE_TAKEN;
}

/* Hand body to the routes of the peers rs touched (shard 0 sends). */
static void forward_peers(struct shard *sh, struct route_scan *rs, struct msgbuf *body)
{
    /* The routes live on shard 0: a backlog there (a peer that does not
     * keep up) pauses the publisher, as a local backlog does. */
    if (rs->npt && (atomic_load_explicit(&sh->srv->shards[0].pressure, memory_order_relaxed) ||
                    (sh->id != 0 && sh->stage[0].n - sh->stage[0].head > XRING_CAP)))
        sh->pub_pressure = true;
    for (unsigned i = 0; i < rs->npt; i++) {
        unsigned slot = rs->ptouched[i];
        struct ptarget *t = &sh->ptgt[slot];
        unsigned g = 0;
        do {
            unsigned ng = t->ng - g < XENT_GROUPS ? t->ng - g : XENT_GROUPS;
            if (sh->id == 0) {
                route_forward(sh, slot, body, g == 0 && t->plain, t->g + g, ng, false);
            } else {
                struct xent e = {.type = XE_ROUTE,
                                 .plain = g == 0 && t->plain,
                                 .ngroups = (uint8_t)ng,
                                 .seq = slot};
                memcpy(e.g, t->g + g, ng * sizeof(uint64_t));
                e.ptr = msgbuf_ref(body);
                stage_push(sh, 0, &e);
            }
            g += ng;
        } while (g < t->ng);
        t->plain = false;
        t->ng = 0;
    }
}

static void route_scanned(struct shard *sh, const struct codec_msg *m, struct route_scan *rs)
{
    struct msgbuf *body;
    size_t blen;
    uint64_t ts;

    if (!rs->nt && !rs->npt)
        return;
    if (rs->overflow)
        log_warn("[s%u] a message matched more than %d queue groups on one shard; "
                 "the extra groups did not get it",
                 sh->id, XROUTE_GROUPS);
    blen = codec_body_size(m);
    /* A fresh clock, not the loop's cached one: a subscriber on another
     * shard whose flush returned before this publish was read must have
     * created_ns below it (see route_visit). Only remote deliveries need
     * it: local ones are matched right now. */
    ts = rs->nt > 1 || (rs->nt == 1 && rs->touched[0] != sh->id) ? now_ns() : 0;
    body = msgbuf_new(&sh->pool, (uint32_t)blen);
    codec_body_write(m, body->data);
    for (unsigned i = 0; i < rs->nt; i++) {
        unsigned d = rs->touched[i];
        struct xtarget *t = &sh->tgt[d];
        if (atomic_load_explicit(&sh->srv->shards[d].pressure, memory_order_relaxed) ||
            sh->stage[d].n - sh->stage[d].head > XRING_CAP)
            sh->pub_pressure = true;
        if (d == sh->id) {
            struct route_filter f = {.plain = t->plain, .ng = t->ng, .g = t->g};
            dispatch_deliver(sh, NULL, body, &f);
        } else {
            unsigned g = 0;
            do {
                struct xent e = {.type = XE_DELIVER, .plain = g == 0 && t->plain, .seq = ts};
                e.ngroups = (uint8_t)(t->ng - g < XENT_GROUPS ? t->ng - g : XENT_GROUPS);
                memcpy(e.g, t->g + g, e.ngroups * sizeof(uint64_t));
                g += e.ngroups;
                e.ptr = msgbuf_ref(body);
                stage_push(sh, d, &e);
            } while (g < t->ng);
            stat_add(&sh->stats.xdeliver, 1);
        }
        t->touched = t->plain = false;
        t->ng = 0;
    }
    forward_peers(sh, rs, body);
    xshard_unref(sh, body);
}

/* Replay the memo's routing of m's subject into rs and the scratch
 * targets, as the walk would have left them. false if it does not apply. */
static bool memo_get(struct shard *sh, const struct codec_msg *m, struct route_scan *rs)
{
    struct xmemo *mo = &sh->memo;
    if (mo->gen != mo->itrie_gen || mo->slen != m->subject.len ||
        memcmp(mo->subj, m->subject.p, m->subject.len) != 0)
        return false;
    for (unsigned i = 0; i < mo->nt; i++) {
        struct xtarget *t = &sh->tgt[mo->t[i]];
        t->touched = t->plain = true;
        rs->touched[i] = mo->t[i];
    }
    rs->nt = mo->nt;
    for (unsigned i = 0; i < mo->npt; i++) {
        sh->ptgt[mo->pt[i]].plain = true;
        rs->ptouched[i] = mo->pt[i];
    }
    rs->npt = mo->npt;
    return true;
}

/* Keep the routing the walk found in rs, if it took plain interest only
 * (a queue group's choice rotates from message to message). */
static void memo_put(struct shard *sh, const struct codec_msg *m, const struct route_scan *rs)
{
    struct xmemo *mo = &sh->memo;
    mo->gen = 0;
    mo->slen = 0;
    if (rs->overflow || m->subject.len > sizeof(mo->subj))
        return;
    for (unsigned i = 0; i < rs->nt; i++) {
        if (sh->tgt[rs->touched[i]].ng)
            return;
        mo->t[i] = (uint16_t)rs->touched[i];
    }
    for (unsigned i = 0; i < rs->npt; i++) {
        if (sh->ptgt[rs->ptouched[i]].ng)
            return;
        mo->pt[i] = (uint8_t)rs->ptouched[i];
    }
    mo->nt = (uint8_t)rs->nt;
    mo->npt = (uint8_t)rs->npt;
    mo->slen = (uint16_t)m->subject.len;
    memcpy(mo->subj, m->subject.p, m->subject.len);
    mo->gen = mo->itrie_gen;
}

/* See xshard.h. */
void xshard_route(struct shard *sh, const struct codec_msg *m)
{
    static const struct route_filter all = {.plain = true, .all_groups = true};
    struct route_scan rs;

    /* No other shard or node wants anything: one walk of the local trie
     * (and the body is only built if something matches). */
    if (sh->nremote_int == 0) {
        dispatch_deliver(sh, m, NULL, &all);
        if (sh->nbacklog)
            sh->pub_pressure = true;
        return;
    }
    rs.sh = sh;
    rs.nt = rs.npt = 0;
    rs.overflow = rs.from_route = false;
    if (!memo_get(sh, m, &rs)) {
        trie_match(sh->itrie, (const char *)m->subject.p, m->subject.len, scan_visit, &rs);
        memo_put(sh, m, &rs);
    }
    route_scanned(sh, m, &rs);
}

/* See xshard.h. */
void xshard_rtopics(struct shard *sh, struct rtopic_table *t)
{
    for (unsigned d = 0; d < sh->srv->nshards; d++) {
        struct xent e = {.type = XE_RTOPICS, .ptr = t};
        if (d == sh->id)
            continue;
        atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
        stage_push(sh, d, &e);
    }
    topic_rtopics_apply(sh, t);
}

/* See xshard.h. */
void xshard_send(struct shard *sh, unsigned dst, const struct xent *e)
{
    if (!sh->stage || xshard_finishing) { /* shutdown: nobody will read it */
        if (e->type == XE_PX_MSG)
            xshard_unref(sh, e->ptr);
        else
            rproxy_entry_drop(e);
        return;
    }
    stage_push(sh, dst, e);
}

/* See xshard.h. */
void xshard_route_publish(struct shard *sh, unsigned slot, struct msgbuf *body)
{
    struct xent e = {.type = XE_ROUTE, .plain = 2, .seq = slot};
    if (sh->id == 0) {
        route_forward(sh, slot, body, false, NULL, 0, true);
        return;
    }
    e.ptr = msgbuf_ref(body);
    stage_push(sh, 0, &e);
}

/* See xshard.h. */
void xshard_route_in(struct shard *sh, const struct codec_msg *m, bool plain, const uint32_t *g,
                     unsigned ng)
{
    struct route_scan rs;
    if (sh->srv->nshards == 1 && ng == 0) {
        /* One shard and no queue group: the itrie could only name this
         * shard, for its plain subscribers. Match the local trie directly
         * (the body is only built if a subscriber takes it). */
        struct route_filter f = {.plain = plain};
        if (plain)
            dispatch_deliver(sh, m, NULL, &f);
        if (sh->nbacklog)
            sh->pub_pressure = true;
        return;
    }
    rs.sh = sh;
    rs.nt = rs.npt = 0;
    rs.overflow = false;
    rs.from_route = true;
    rs.in_plain = plain;
    rs.in_g = g;
    rs.in_ng = ng;
    trie_match(sh->itrie, (const char *)m->subject.p, m->subject.len, scan_visit, &rs);
    route_scanned(sh, m, &rs);
}

static void handle(struct shard *sh, unsigned from, struct xent *e)
{
    switch ((enum xent_type)e->type) {
    case XE_DELIVER: {
        struct route_filter f = {.plain = e->plain, .ng = e->ngroups, .g = e->g, .ts = e->seq};
        dispatch_deliver(sh, NULL, e->ptr, &f);
        xshard_unref(sh, e->ptr);
        break;
    }
    case XE_FREE:
        msgpool_put(&sh->pool, e->ptr);
        break;
    case XE_ROUTE:
        route_forward(sh, (unsigned)e->seq, e->ptr, e->plain == 1, e->g, e->ngroups, e->plain == 2);
        xshard_unref(sh, e->ptr);
        break;
    case XE_RTOPICS:
        topic_rtopics_apply(sh, e->ptr);
        break;
    case XE_PX_OPEN:
    case XE_PX_CLOSE:
    case XE_PX_FLOW:
    case XE_PX_MSG:
    case XE_PX_ERR:
    case XE_PX_FREE:
        rproxy_entry(sh, e);
        break;
    case XE_INT_ADD:
    case XE_INT_DEL: {
        struct xent ack = {.type = XE_INT_ACK, .seq = e->seq};
        interest_apply(sh, e->origin, e->ptr, e->klen, e->type == XE_INT_ADD, e->plain != 0);
        free(e->ptr);
        stage_push(sh, from, &ack);
        break;
    }
    case XE_INT_ACK:
        sh->acked[from] = e->seq;
        pongs_release(sh);
        break;
    }
}

/* See xshard.h. */
unsigned xshard_drain(struct shard *sh, unsigned budget)
{
    struct server *srv = sh->srv;
    unsigned done = 0;
    for (unsigned s = 0; s < srv->nshards; s++) {
        struct xring *r;
        uint32_t head, tail;
        if (s == sh->id)
            continue;
        r = ring_of(srv, s, sh->id);
        head = atomic_load_explicit(&r->head, memory_order_relaxed);
        tail = atomic_load_explicit(&r->tail, memory_order_acquire);
        while (head != tail && done < budget) {
            handle(sh, s, &r->ents[head & (XRING_CAP - 1)]);
            head++;
            done++;
        }
        atomic_store_explicit(&r->head, head, memory_order_release);
    }
    return done;
}

static void drop_entry(struct shard *sh, struct xent *e)
{
    switch ((enum xent_type)e->type) {
    case XE_ROUTE:
    case XE_DELIVER:
        xshard_unref(sh, e->ptr);
        break;
    case XE_RTOPICS:
        rtopic_table_unref(e->ptr);
        break;
    case XE_FREE:
        free(e->ptr);
        break;
    case XE_INT_ADD:
    case XE_INT_DEL:
        free(e->ptr);
        break;
    case XE_INT_ACK:
        break;
    case XE_PX_MSG:
        xshard_unref(sh, e->ptr);
        break;
    case XE_PX_OPEN:
    case XE_PX_CLOSE:
    case XE_PX_FLOW:
    case XE_PX_ERR:
    case XE_PX_FREE:
        rproxy_entry_drop(e);
        break;
    }
}

/* See xshard.h. Runs after every shard has left its loop. */
void xshard_fini(struct shard *sh)
{
    struct server *srv = sh->srv;
    xshard_finishing = true;
    if (!sh->stage)
        return;
    for (unsigned s = 0; s < srv->nshards; s++) {
        struct xring *r = ring_of(srv, s, sh->id);
        uint32_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
        uint32_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
        for (; head != tail; head++)
            drop_entry(sh, &r->ents[head & (XRING_CAP - 1)]);
        atomic_store_explicit(&r->head, head, memory_order_release);
        for (uint32_t i = sh->stage[s].head; i < sh->stage[s].n; i++)
            drop_entry(sh, &sh->stage[s].v[i]);
        free(sh->stage[s].v);
    }
    for (size_t i = 0; i < sh->rints.cap; i++)
        if (sh->rints.ents[i].key)
            free(sh->rints.ents[i].val);
    strmap_fini(&sh->rints);
    strmap_fini(&sh->lint);
    strmap_fini(&sh->lgroups);
    trie_free(sh->itrie);
    free(sh->stage);
    sh->stage = NULL; /* routes freed after this (shard_fini) broadcast nothing */
    free(sh->tgt);
    free(sh->acked);
    free(sh->ptgt);
    free(sh->pongs);
}
