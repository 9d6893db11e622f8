/*
 * rproxy.c - topic subscriptions proxied to the owner node (see rproxy.h).
 *
 * Thread: as rproxy.h says for each function.
 */
#include "rproxy.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "conn.h"
#include "dispatch.h"
#include "dur.h"
#include "log.h"
#include "msgbuf.h"
#include "replay.h"
#include "route.h"
#include "shard.h"
#include "strmap.h"
#include "xalloc.h"
#include "xshard.h"

/* A proxied subscription: owned by its home shard. */
struct rproxy {
    struct sub *s; /* NULL once detached; freed on XE_PX_FREE */
    uint64_t psid; /* the sid the owner knows it by; unique on this node */
    uint16_t home; /* the shard of s (immutable) */
    uint16_t slot; /* route slot of the owner when it was made */
    bool paused;   /* asked the owner to pause; on the home's paused list */
    char topic[STORE_NAME_MAX + 1];
    char node[64]; /* the owner's node name */
};

/* XE_PX_OPEN: to shard 0, the SUBSCRIBE to send (sid = psid). */
struct px_open {
    struct rproxy *px;
    uint64_t psid;
    uint16_t home, slot;
    char topic[STORE_NAME_MAX + 1];
    char node[64]; /* the owner: the slot must still be its route */
    size_t len;
    uint8_t frame[]; /* a whole SUBSCRIBE frame, length prefix included */
};

/* XE_PX_ERR: to the home shard, the owner ended the subscription. */
struct px_err {
    struct rproxy *px;
    Ringmq__ErrorCode code;
    char text[];
};

/* Shard 0's entry for one open proxy, in sh->pxtab by psid. */
struct pxent {
    struct rproxy *px;
    uint16_t home, slot;
    char topic[STORE_NAME_MAX + 1];
};

static void send_to(struct shard *sh, unsigned dst, const struct xent *e)
{
    if (dst == sh->id)
        rproxy_entry(sh, e);
    else
        xshard_send(sh, dst, e);
}

/* ---- The client's shard ---- */

/* See rproxy.h. */
int rproxy_prepare(struct conn *c, const Ringmq__Subscribe *m, struct rproxy **out)
{
    struct shard *sh = c->sh;
    struct rproxy *px;
    unsigned slot;
    int r;
    *out = NULL;
    /* A subscription that came over a route is the owner's to serve (or
     * refuse); it is never proxied again. */
    if (!m->topic || (c->flags & CONN_F_ROUTE) || topic_by_name(sh, m->topic) >= 0 ||
        (r = rtopic_by_name(sh, m->topic)) < 0)
        return 0;
    if (!route_owner_slot(sh->srv, sh->rtopics->t[r].owner, &slot)) {
        char text[160];
        snprintf(text, sizeof(text), "topic %s: the node that stores it is unreachable", m->topic);
        conn_send_error(c, RINGMQ__ERROR_CODE__ERR_UNAVAILABLE, text, m->sid, false);
        return -1;
    }
    px = xcalloc(1, sizeof(*px));
    px->psid = ((uint64_t)(sh->id + 1) << 48) | ++sh->px_next;
    px->home = (uint16_t)sh->id;
    px->slot = (uint16_t)slot;
    snprintf(px->topic, sizeof(px->topic), "%s", m->topic);
    memcpy(px->node, sh->rtopics->t[r].node, sizeof(px->node));
    *out = px;
    return 0;
}

/* See rproxy.h. */
void rproxy_attach(struct shard *sh, struct sub *s, struct rproxy *px, const Ringmq__Subscribe *m)
{
    Ringmq__Subscribe copy = *m;
    Ringmq__Frame f = RINGMQ__FRAME__INIT;
    struct px_open *o;
    size_t n;
    struct xent e = {.type = XE_PX_OPEN};
    copy.sid = px->psid;
    f.kind_case = RINGMQ__FRAME__KIND_SUB;
    f.sub = &copy;
    n = codec_frame_size(&f);
    o = xmalloc(sizeof(*o) + n);
    o->px = px;
    o->psid = px->psid;
    o->home = px->home;
    o->slot = px->slot;
    memcpy(o->topic, px->topic, sizeof(o->topic));
    memcpy(o->node, px->node, sizeof(o->node));
    o->len = (size_t)codec_frame_write(&f, o->frame, n);
    px->s = s;
    s->px = px;
    stat_add(&sh->stats.px_now, 1);
    e.ptr = o;
    send_to(sh, 0, &e);
}

static void paused_remove(struct shard *sh, struct rproxy *px)
{
    for (uint32_t i = 0; i < sh->npx_paused; i++)
        if (sh->px_paused[i] == px) {
            sh->px_paused[i] = sh->px_paused[--sh->npx_paused];
            break;
        }
    px->paused = false;
}

static void flow(struct shard *sh, struct rproxy *px, bool pause)
{
    struct xent e = {.type = XE_PX_FLOW, .plain = pause, .seq = px->psid};
    if (pause) {
        if (sh->npx_paused == sh->px_pausedcap) {
            sh->px_pausedcap = sh->px_pausedcap ? sh->px_pausedcap * 2 : 16;
            sh->px_paused = xrealloc(sh->px_paused, sh->px_pausedcap * sizeof(*sh->px_paused));
        }
        sh->px_paused[sh->npx_paused++] = px;
        px->paused = true;
        stat_add(&sh->stats.px_pauses, 1);
    } else {
        paused_remove(sh, px);
    }
    send_to(sh, 0, &e);
}

/* See rproxy.h. */
void rproxy_detach(struct shard *sh, struct sub *s)
{
    struct rproxy *px = s->px;
    struct xent e = {.type = XE_PX_CLOSE, .seq = px->psid};
    s->px = NULL;
    px->s = NULL;
    stat_add(&sh->stats.px_now, (uint64_t)-1);
    if (px->paused)
        paused_remove(sh, px);
    e.ptr = px;
    send_to(sh, 0, &e);
}

/* See rproxy.h. */
void rproxy_run(struct shard *sh)
{
    for (uint32_t i = sh->npx_paused; i-- > 0;) {
        struct rproxy *px = sh->px_paused[i];
        if (px->s->conn->pending < REPLAY_HIWAT / 2)
            flow(sh, px, false); /* swaps the last entry into i */
    }
}

/* A message from the owner for px (borrowed body). */
static void deliver(struct shard *sh, struct rproxy *px, struct msgbuf *body)
{
    struct sub *s = px->s;
    struct conn *c;
    uint8_t pre[CODEC_MSG_PREFIX_MAX];
    size_t pl;
    if (!s)
        return; /* unsubscribed while it was on the way */
    c = s->conn;
    if ((c->flags & (CONN_F_SLOW | CONN_F_DRAINING | CONN_F_CLOSING)) || s->remaining == SUB_DONE)
        return;
    pl = codec_msg_prefix(pre, s->sid, body->len);
    /* Past the slow-consumer limit: the owner pauses on our word (below),
     * so what still comes is bounded by what was on the way. */
    if (!conn_enqueue(c, pre, pl, body, true))
        return;
    stat_add(&sh->stats.msgs_out, 1);
    if (s->remaining && --s->remaining == 0) {
        s->remaining = SUB_DONE;
        shard_push_unsub(sh, s);
        dispatch_after_route(sh);
        return;
    }
    if (!px->paused && c->pending >= REPLAY_HIWAT)
        flow(sh, px, true);
}

/* The owner ended the subscription (or its route went down). */
static void end(struct px_err *er)
{
    struct rproxy *px = er->px;
    struct sub *s = px->s;
    if (s) {
        conn_send_error(s->conn, er->code, er->text, s->sid, false);
        conn_sub_remove(s->conn, s); /* detaches: px may be gone after this */
    }
    free(er);
}

/* ---- Shard 0: the table and the route ---- */

static struct pxent *ent_of(struct shard *sh, uint64_t psid, struct strmap_ent **me)
{
    struct strmap_ent *e = strmap_get(&sh->pxtab, &psid, sizeof(psid));
    if (me)
        *me = e;
    return e ? e->val : NULL;
}

/* Tell the home shard of px that the owner ended it. */
static void send_end(struct shard *sh, struct rproxy *px, unsigned home, Ringmq__ErrorCode code,
                     const char *text)
{
    /* Bounded: an ERROR frame that does not fit would leave the client
     * without one (the owner's text comes from the wire). */
    size_t n = strnlen(text, 200);
    struct px_err *er = xmalloc(sizeof(*er) + n + 1);
    struct xent e = {.type = XE_PX_ERR};
    er->px = px;
    er->code = code;
    memcpy(er->text, text, n);
    er->text[n] = '\0';
    e.ptr = er;
    send_to(sh, home, &e);
}

static void open_s0(struct shard *sh, struct px_open *o)
{
    struct strmap_ent *me;
    struct pxent *pe;
    /* The slot may have gone to another node since the client's shard
     * looked (a route down and a new one accepted): then it is down. */
    if (!route_slot_is(sh, o->slot, o->node) || !route_send_raw(sh, o->slot, o->frame, o->len)) {
        char text[160];
        snprintf(text, sizeof(text), "topic %s: the node that stores it is unreachable", o->topic);
        send_end(sh, o->px, o->home, RINGMQ__ERROR_CODE__ERR_UNAVAILABLE, text);
        free(o);
        return;
    }
    me = strmap_put(&sh->pxtab, &o->psid, sizeof(o->psid));
    pe = xmalloc(sizeof(*pe));
    pe->px = o->px;
    pe->home = o->home;
    pe->slot = o->slot;
    memcpy(pe->topic, o->topic, sizeof(pe->topic));
    me->val = pe;
    free(o);
}

static void ent_del(struct shard *sh, struct strmap_ent *me)
{
    free(me->val);
    strmap_del(&sh->pxtab, me);
}

static void close_s0(struct shard *sh, struct rproxy *px, uint64_t psid)
{
    struct strmap_ent *me;
    struct pxent *pe = ent_of(sh, psid, &me);
    struct xent e = {.type = XE_PX_FREE, .ptr = px};
    if (pe) {
        Ringmq__Unsubscribe u = RINGMQ__UNSUBSCRIBE__INIT;
        Ringmq__Frame f = RINGMQ__FRAME__INIT;
        u.sid = psid;
        f.kind_case = RINGMQ__FRAME__KIND_UNSUB;
        f.unsub = &u;
        route_send_frame(sh, pe->slot, &f);
        ent_del(sh, me);
    }
    send_to(sh, px->home, &e);
}

static void flow_s0(struct shard *sh, uint64_t psid, bool pause)
{
    struct pxent *pe = ent_of(sh, psid, NULL);
    Ringmq__RouteFlow rf = RINGMQ__ROUTE_FLOW__INIT;
    Ringmq__Frame f = RINGMQ__FRAME__INIT;
    if (!pe)
        return;
    rf.sid = psid;
    rf.has_pause = true;
    rf.pause = pause;
    f.kind_case = RINGMQ__FRAME__KIND_ROUTE_FLOW;
    f.route_flow = &rf;
    route_send_frame(sh, pe->slot, &f);
}

/* See rproxy.h. */
void rproxy_entry(struct shard *sh, const struct xent *e)
{
    switch ((enum xent_type)e->type) {
    case XE_PX_OPEN:
        open_s0(sh, e->ptr);
        break;
    case XE_PX_CLOSE:
        close_s0(sh, e->ptr, e->seq);
        break;
    case XE_PX_FLOW:
        flow_s0(sh, e->seq, e->plain != 0);
        break;
    case XE_PX_MSG:
        deliver(sh, (struct rproxy *)(uintptr_t)e->seq, e->ptr);
        xshard_unref(sh, e->ptr);
        break;
    case XE_PX_ERR:
        end(e->ptr);
        break;
    case XE_PX_FREE:
        free(e->ptr);
        break;
    default:
        break;
    }
}

/* See rproxy.h. */
void rproxy_entry_drop(const struct xent *e)
{
    switch ((enum xent_type)e->type) {
    case XE_PX_OPEN: /* the proxy stays with its sub, whose detach frees it */
        free(e->ptr);
        break;
    case XE_PX_CLOSE: /* nobody will answer: the proxy is ours to free */
    case XE_PX_FREE:
    case XE_PX_ERR:
        free(e->ptr);
        break;
    default: /* XE_PX_MSG: the caller drops the body; XE_PX_FLOW: nothing */
        break;
    }
}

/* See rproxy.h. */
void rproxy_route_msg(struct shard *sh, unsigned slot, const struct codec_span *sp)
{
    struct codec_msg m;
    struct pxent *pe;
    struct msgbuf *body;
    struct xent e = {.type = XE_PX_MSG};
    if (codec_msg_parse(sp->p, sp->len, &m) != 0 || !m.has_sid) {
        log_warn("cluster: malformed MESSAGE on route slot %u; dropped", slot);
        return;
    }
    pe = ent_of(sh, m.sid, NULL);
    if (!pe || pe->slot != slot)
        return; /* unsubscribed meanwhile */
    body = msgbuf_new(&sh->pool, (uint32_t)codec_body_size(&m));
    codec_body_write(&m, body->data);
    e.ptr = body;
    e.seq = (uint64_t)(uintptr_t)pe->px;
    send_to(sh, pe->home, &e); /* the entry's reference goes with it */
}

/* See rproxy.h. */
void rproxy_route_err(struct shard *sh, unsigned slot, const struct codec_span *sp)
{
    Ringmq__Error *m = ringmq__error__unpack(NULL, sp->len, sp->p);
    struct strmap_ent *me;
    struct pxent *pe;
    if (!m) {
        log_warn("cluster: malformed ERROR on route slot %u; dropped", slot);
        return;
    }
    pe = m->has_sid ? ent_of(sh, m->sid, &me) : NULL;
    if (pe && pe->slot == slot) {
        struct pxent copy = *pe;
        ent_del(sh, me); /* first: ending it on shard 0 itself closes it at once */
        send_end(sh, copy.px, copy.home, m->code, m->text ? m->text : "ended by the topic's node");
    } else if (!m->has_sid) {
        log_warn("cluster: route slot %u reported %s: %s", slot, codec_err_name(m->code),
                 m->text ? m->text : "");
    }
    ringmq__error__free_unpacked(m, NULL);
}

/* See rproxy.h. */
void rproxy_route_down(struct shard *sh, unsigned slot)
{
    /* Collect first: deleting shifts later entries of the table back. */
    uint64_t *ids = xcalloc(sh->pxtab.n + 1, sizeof(*ids));
    size_t n = 0;
    for (size_t i = 0; i < sh->pxtab.cap; i++) {
        struct strmap_ent *me = &sh->pxtab.ents[i];
        if (me->key && ((struct pxent *)me->val)->slot == slot)
            memcpy(&ids[n++], me->key, sizeof(ids[0]));
    }
    for (size_t i = 0; i < n; i++) {
        struct strmap_ent *me;
        struct pxent pe = *ent_of(sh, ids[i], &me);
        char text[160];
        ent_del(sh, me);
        snprintf(text, sizeof(text), "topic %s: lost the route to the node that stores it",
                 pe.topic);
        send_end(sh, pe.px, pe.home, RINGMQ__ERROR_CODE__ERR_UNAVAILABLE, text);
    }
    if (n)
        log_info("cluster: %zu remote topic subscription(s) ended with their route", n);
    free(ids);
}

/* See rproxy.h. */
void rproxy_fini(struct shard *sh)
{
    for (size_t i = 0; i < sh->pxtab.cap; i++)
        if (sh->pxtab.ents[i].key)
            free(sh->pxtab.ents[i].val);
    strmap_fini(&sh->pxtab);
    free(sh->px_paused);
    sh->px_paused = NULL;
    sh->npx_paused = sh->px_pausedcap = 0;
}

/* ---- The owner's side ---- */

/* See rproxy.h. */
void rproxy_serve_flow(struct conn *c, const struct codec_span *sp)
{
    Ringmq__RouteFlow *m = ringmq__route_flow__unpack(NULL, sp->len, sp->p);
    struct sub *s;
    if (!m) {
        log_warn("cluster: malformed RouteFlow from %s; closing", c->peer);
        conn_close(c);
        return;
    }
    s = dispatch_sub_find(c, m->sid);
    if (s && s->rp)
        replay_pause(c->sh, s, m->has_pause && m->pause);
    ringmq__route_flow__free_unpacked(m, NULL);
}
