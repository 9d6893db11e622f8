/*
 * replay.c - topic subscriptions (see replay.h).
 *
 * Thread: the shard's own thread.
 */
#include "replay.h"

#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "conn.h"
#include "dispatch.h"
#include "dur.h"
#include "log.h"
#include "shard.h"
#include "xalloc.h"
#include "xshard.h"

#define READ_MSGS 256
#define READ_BYTES (256u << 10)

enum { RP_WAIT = 0, RP_READ, RP_LIVE };

struct replay {
    struct sub *s;
    uint32_t topic;
    uint8_t state;
    bool paused; /* a proxy of another node asked us to wait (rproxy.h) */
    int32_t idx; /* in sh->replays, -1 when LIVE */
    uint64_t next;
    uint64_t int_seq;
};

static int start_err(struct conn *c, const Ringmq__Subscribe *m, Ringmq__ErrorCode code,
                     const char *text)
{
    conn_send_error(c, code, text, m->sid, false);
    return -1;
}

/* See replay.h. */
int replay_prepare(struct conn *c, const Ringmq__Subscribe *m, struct replay **out)
{
    struct shard *sh = c->sh;
    struct store *st = sh->srv->store;
    struct replay *rp;
    uint64_t next = 1, last = 0;
    uint32_t id;
    int tidx, rc = 0;

    if (!sh->srv->dur)
        return start_err(c, m, RINGMQ__ERROR_CODE__ERR_UNAVAILABLE,
                         "this broker runs without storage (--storage off)");
    if (m->queue && m->queue[0])
        return start_err(c, m, RINGMQ__ERROR_CODE__ERR_INVALID,
                         "a topic subscription cannot have a queue group (use a durable)");
    tidx = topic_by_name(sh, m->topic);
    if (tidx < 0)
        return start_err(c, m, RINGMQ__ERROR_CODE__ERR_NO_TOPIC, "no such topic");
    id = sh->topics->t[tidx].id;
    switch (m->has_start ? m->start : RINGMQ__START_POLICY__START_NEW) {
    case RINGMQ__START_POLICY__START_NEW:
        rc = store_last_seq(st, id, &last);
        next = last + 1;
        break;
    case RINGMQ__START_POLICY__START_ALL:
        break;
    case RINGMQ__START_POLICY__START_SEQ:
        if (!m->has_start_seq)
            return start_err(c, m, RINGMQ__ERROR_CODE__ERR_INVALID, "START_SEQ needs start_seq");
        next = m->start_seq ? m->start_seq : 1;
        break;
    case RINGMQ__START_POLICY__START_TIME:
        if (!m->has_start_time_ns)
            return start_err(c, m, RINGMQ__ERROR_CODE__ERR_INVALID,
                             "START_TIME needs start_time_ns");
        rc = store_seq_at_time(st, id, m->start_time_ns, &next);
        break;
    case RINGMQ__START_POLICY__START_LAST:
        rc = store_last_seq(st, id, &last);
        next = last ? last : 1;
        break;
    default:
        return start_err(c, m, RINGMQ__ERROR_CODE__ERR_INVALID, "unknown start policy");
    }
    if (rc)
        return start_err(c, m,
                         rc == RMQ_ENOTFOUND ? RINGMQ__ERROR_CODE__ERR_NO_TOPIC
                                             : RINGMQ__ERROR_CODE__ERR_STORAGE,
                         rmq_err_str(rc));
    rp = xcalloc(1, sizeof(*rp));
    rp->topic = id;
    rp->next = next;
    rp->idx = -1;
    *out = rp;
    return 0;
}

static void activate(struct shard *sh, struct replay *rp)
{
    if (rp->idx >= 0)
        return;
    if (sh->nreplays == sh->replaycap) {
        sh->replaycap = sh->replaycap ? sh->replaycap * 2 : 16;
        sh->replays = xrealloc(sh->replays, sh->replaycap * sizeof(*sh->replays));
    }
    rp->idx = (int32_t)sh->nreplays;
    sh->replays[sh->nreplays++] = rp;
}

static void deactivate(struct shard *sh, struct replay *rp)
{
    struct replay *last;
    if (rp->idx < 0)
        return;
    last = sh->replays[--sh->nreplays];
    sh->replays[rp->idx] = last;
    last->idx = rp->idx;
    rp->idx = -1;
}

/* See replay.h. */
void replay_attach(struct shard *sh, struct sub *s, struct replay *rp)
{
    rp->s = s;
    s->rp = rp;
    rp->state = RP_WAIT;
    rp->int_seq = xshard_interest_seq(sh);
    activate(sh, rp);
}

/* See replay.h. */
void replay_free(struct shard *sh, struct sub *s)
{
    deactivate(sh, s->rp);
    free(s->rp);
    s->rp = NULL;
}

/* See replay.h. */
void replay_pause(struct shard *sh, struct sub *s, bool pause)
{
    struct replay *rp = s->rp;
    rp->paused = pause;
    if (!pause && rp->state == RP_LIVE) {
        rp->state = RP_READ; /* what it skipped while paused is in the store */
        activate(sh, rp);
    }
}

/* See replay.h. */
uint32_t replay_topic(const struct sub *s)
{
    return s->rp->topic;
}

/* See replay.h. */
bool replay_offer(struct shard *sh, struct sub *s, uint64_t seq, const char *subj, size_t slen)
{
    struct replay *rp = s->rp;
    int tidx;
    if (!seq || rp->state != RP_LIVE || rp->paused)
        return false; /* paused: read later from the store, in order */
    tidx = topic_of_subject(sh, subj, slen);
    if (tidx < 0 || sh->topics->t[tidx].id != rp->topic || seq < rp->next)
        return false;
    if (seq > rp->next) {
        rp->state = RP_READ; /* fill the gap from the store, in order */
        activate(sh, rp);
        return false;
    }
    rp->next++;
    return true;
}

struct read_ctx {
    struct shard *sh;
    struct replay *rp;
    bool stopped;
};

static int read_one(void *arg, const struct store_msg *sm)
{
    struct read_ctx *x = arg;
    struct sub *s = x->rp->s;
    struct conn *c = s->conn;
    struct codec_msg m;
    struct msgbuf *body;
    uint8_t pre[CODEC_MSG_PREFIX_MAX];
    size_t pl, blen;
    bool ok;

    if (codec_msg_parse(sm->data, sm->len, &m) != 0 ||
        !subject_match(s->str, s->plen, (const char *)m.subject.p, m.subject.len)) {
        x->rp->next = sm->seq + 1; /* not for this pattern */
        return 0;
    }
    if (s->remaining == SUB_DONE || (c->flags & (CONN_F_SLOW | CONN_F_CLOSING))) {
        x->stopped = true;
        return -1;
    }
    m.seq = sm->seq;
    m.time_ns = sm->ts_ns;
    blen = codec_body_size(&m);
    body = msgbuf_new(&x->sh->pool, (uint32_t)blen);
    codec_body_write(&m, body->data);
    pl = codec_msg_prefix(pre, s->sid, blen);
    ok = conn_enqueue(c, pre, pl, body, false);
    xshard_unref(x->sh, body);
    if (!ok) {
        x->stopped = true;
        return -1;
    }
    stat_add(&x->sh->stats.msgs_out, 1);
    x->rp->next = sm->seq + 1;
    if (s->remaining && --s->remaining == 0) {
        s->remaining = SUB_DONE;
        shard_push_unsub(x->sh, s);
        x->stopped = true;
        return 1;
    }
    return 0;
}

static bool can_read(const struct replay *rp)
{
    const struct conn *c = rp->s->conn;
    return rp->state == RP_READ && !rp->paused && rp->s->remaining != SUB_DONE &&
           !(c->flags & (CONN_F_SLOW | CONN_F_CLOSING | CONN_F_DRAINING)) &&
           c->pending < REPLAY_HIWAT;
}

/* One chunk for rp; false if rp went LIVE or away (it left the list). */
static void run_one(struct shard *sh, struct replay *rp)
{
    struct read_ctx x = {.sh = sh, .rp = rp};
    struct sub *s = rp->s;
    uint64_t next = rp->next;
    ssize_t n;

    if (rp->state == RP_WAIT) {
        if (!xshard_interest_synced(sh, rp->int_seq))
            return;
        rp->state = RP_READ;
    }
    if (!can_read(rp))
        return;
    n = store_read(sh->srv->store, rp->topic, rp->next, READ_MSGS, READ_BYTES, read_one, &x, &next);
    if (n == 0) {
        if (next > rp->next)
            rp->next = next; /* retention removed what we were waiting for */
        rp->state = RP_LIVE;
        deactivate(sh, rp);
        return;
    }
    if (n < 0 && !x.stopped) {
        conn_send_error(s->conn,
                        n == RMQ_ENOTFOUND ? RINGMQ__ERROR_CODE__ERR_NO_TOPIC
                                           : RINGMQ__ERROR_CODE__ERR_STORAGE,
                        rmq_err_str((int)n), s->sid, false);
        if (s->remaining != SUB_DONE) {
            s->remaining = SUB_DONE;
            shard_push_unsub(sh, s);
        }
        deactivate(sh, rp);
    }
}

/* See replay.h. */
void replay_run(struct shard *sh)
{
    if (!sh->nreplays)
        return;
    /* run_one may remove the current entry (swapped with the last). */
    for (uint32_t i = sh->nreplays; i-- > 0;)
        if (i < sh->nreplays)
            run_one(sh, sh->replays[i]);
    dispatch_after_route(sh);
}

/* See replay.h. */
bool replay_busy(struct shard *sh)
{
    for (uint32_t i = 0; i < sh->nreplays; i++)
        if (can_read(sh->replays[i]))
            return true;
    return false;
}
