/*
 * client.c - the public API of libringmq: connect/close, publish, flush,
 * subscriptions (callback and synchronous), request/reply, messages and
 * counters. The socket side lives in client_io.c.
 *
 * Every API call takes rmq_client.mu for a short time: to append a frame to
 * the send buffer, to look at the state, or to wait on a condition variable.
 * Waits are bounded by the caller's timeout and always end when rmq_close()
 * sets `closing`. Threads inside blocking calls are counted in `busy`, and
 * rmq_close() frees the client only once that count is back to zero.
 *
 * Subscriptions are reference counted under mu: the owner (table + user
 * handle) holds one reference until rmq_unsubscribe(); a dispatch running a
 * callback and a thread waiting in rmq_sub_next() hold one each. So a handle
 * is never freed under a running callback or waiter.
 *
 *   rmq_subscribe ---> table[sid] (ACTIVE) ---> auto-unsub limit: DONE
 *                                 |        \--> server ERROR{sid}: FAILED
 *                                 v
 *              rmq_unsubscribe: removed, CLOSED, freed at refs == 0
 *
 * Request/reply: one wildcard inbox subscription "_INBOX.<16 hex>.*" per
 * client, made on the first rmq_request(); request n uses the reply subject
 * "_INBOX.<hex>.<n>". Its callback (on the I/O thread) hands a copy of the
 * reply to the waiting request, found by n in the list c->reqs. The async
 * publish acks (client_ack.c) take their n from the same counter and are
 * looked up first, in their hash.
 *
 * Durable topics (client_topic.c) reuse all of this: a topic subscription
 * or consumer binding is an rmq_sub with topic fields, whose SUBSCRIBE is
 * built by client_sub_frames(); deliveries record the highest seq, so a
 * replay is re-sent after a reconnect from the seq after it.
 */

/* The public header repeats rmq_error.h's codes; check that both agree. */
#include "ringmq.h"
enum {
    API_ERRBASE = RMQ_ERRBASE,
    API_EFRAME = RMQ_EFRAME,
    API_ESUBJECT = RMQ_ESUBJECT,
    API_ENOTFOUND = RMQ_ENOTFOUND,
    API_ESTOREFULL = RMQ_ESTOREFULL,
    API_ESLOW = RMQ_ESLOW,
    API_EAUTH = RMQ_EAUTH,
    API_ESERVER = RMQ_ESERVER,
    API_EKIND = RMQ_EKIND,
    API_ECLOSED = RMQ_ECLOSED,
};
#undef RMQ_ERRBASE
#undef RMQ_EFRAME
#undef RMQ_ESUBJECT
#undef RMQ_ENOTFOUND
#undef RMQ_ESTOREFULL
#undef RMQ_ESLOW
#undef RMQ_EAUTH
#undef RMQ_ESERVER
#undef RMQ_EKIND
#undef RMQ_ECLOSED
#include "rmq_error.h"
_Static_assert(API_ERRBASE == RMQ_ERRBASE, "RMQ_ERRBASE differs from rmq_error.h");
_Static_assert(API_EFRAME == RMQ_EFRAME, "RMQ_EFRAME differs from rmq_error.h");
_Static_assert(API_ESUBJECT == RMQ_ESUBJECT, "RMQ_ESUBJECT differs from rmq_error.h");
_Static_assert(API_ENOTFOUND == RMQ_ENOTFOUND, "RMQ_ENOTFOUND differs from rmq_error.h");
_Static_assert(API_ESTOREFULL == RMQ_ESTOREFULL, "RMQ_ESTOREFULL differs from rmq_error.h");
_Static_assert(API_ESLOW == RMQ_ESLOW, "RMQ_ESLOW differs from rmq_error.h");
_Static_assert(API_EAUTH == RMQ_EAUTH, "RMQ_EAUTH differs from rmq_error.h");
_Static_assert(API_ESERVER == RMQ_ESERVER, "RMQ_ESERVER differs from rmq_error.h");
_Static_assert(API_EKIND == RMQ_EKIND, "RMQ_EKIND differs from rmq_error.h");
_Static_assert(API_ECLOSED == RMQ_ECLOSED, "RMQ_ECLOSED differs from rmq_error.h");

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "client_int.h"

#include "subject.h"

/* ---- Subject syntax (proto/subject.c, shared with the broker) ---- */

/* Validate a publish subject (len bytes). 0 or RMQ_ESUBJECT. Any thread. */
int client_subject_check(const char *s, size_t len)
{
    return subject_check(s, len) == 0 ? 0 : RMQ_ESUBJECT;
}

/* Validate a subscription pattern (len bytes). 0 or RMQ_ESUBJECT. */
int client_pattern_check(const char *s, size_t len)
{
    return subject_check_pattern(s, len) == 0 ? 0 : RMQ_ESUBJECT;
}

/* ---- Small helpers ---- */

/* Grow *buf (capacity *cap) to hold at least need bytes, geometrically.
 * Returns 0 or -ENOMEM (the old buffer is kept). */
int client_buf_reserve(uint8_t **buf, size_t *cap, size_t need)
{
    size_t n = *cap ? *cap : 4096;
    uint8_t *p;

    if (need <= *cap)
        return 0;
    while (n < need)
        n *= 2;
    p = realloc(*buf, n);
    if (p == NULL)
        return -ENOMEM;
    *buf = p;
    *cap = n;
    return 0;
}

static int frame_append(uint8_t **buf, size_t *len, size_t *cap, const Ringmq__Frame *f)
{
    size_t n = codec_frame_size(f);
    ssize_t w;

    if (client_buf_reserve(buf, cap, *len + n) < 0)
        return -ENOMEM;
    w = codec_frame_write(f, *buf + *len, *cap - *len);
    if (w < 0)
        return (int)w;
    *len += (size_t)w;
    return 0;
}

/* Wake the I/O thread (new data in sbuf, or close). Any thread. */
void client_wake(rmq_client *c)
{
    uint64_t one = 1;
    ssize_t n = write(c->wake_fd, &one, sizeof(one));
    (void)n; /* EAGAIN: the counter is already non-zero, the thread will wake */
}

/* Append frame f to the send buffer and wake the I/O thread if the buffer
 * was empty. Caller holds c->mu. Returns 0 or -ENOMEM. */
int client_frame_append_locked(rmq_client *c, const Ringmq__Frame *f)
{
    bool was_empty = c->slen == 0;
    int rc = frame_append(&c->sbuf, &c->slen, &c->scap, f);
    if (rc == 0 && was_empty)
        client_wake(c);
    return rc;
}

/* Deadline helpers on CLOCK_MONOTONIC; timeout_ms < 0 means none. */
static bool deadline_set(struct timespec *ts, int timeout_ms)
{
    if (timeout_ms < 0)
        return false;
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += timeout_ms / 1000;
    ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
    return true;
}

/* CLOCK_MONOTONIC in ns: the clock of every client deadline. Any thread. */
int64_t client_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Wait on cv until signalled or the deadline (NULL: none). ETIMEDOUT or 0. */
static int cond_wait(pthread_cond_t *cv, pthread_mutex_t *mu, const struct timespec *dl)
{
    if (dl == NULL)
        return pthread_cond_wait(cv, mu);
    return pthread_cond_timedwait(cv, mu, dl);
}

static int cond_init_mono(pthread_cond_t *cv)
{
    pthread_condattr_t a;
    int rc;

    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    rc = pthread_cond_init(cv, &a);
    pthread_condattr_destroy(&a);
    return -rc;
}

static void busy_leave_locked(rmq_client *c)
{
    if (--c->busy == 0 && c->closing)
        pthread_cond_broadcast(&c->cv);
}

/* Wake every waiter of c: state waiters, publishers, sync subscribers.
 * Caller holds c->mu. */
void client_wake_all_locked(rmq_client *c)
{
    pthread_cond_broadcast(&c->cv);
    pthread_cond_broadcast(&c->cv_room);
    for (size_t b = 0; b < c->nbuckets; b++)
        for (rmq_sub *s = c->subs[b]; s; s = s->hnext)
            pthread_cond_broadcast(&s->cv);
}

/* ---- Messages ---- */

/* Bytes client_msg_build() needs for the parsed message cm. */
size_t client_msg_size(const struct codec_msg *cm)
{
    return sizeof(struct rmq_msg) + cm->raw.len + cm->subject.len + 1 + cm->reply.len + 1;
}

static const uint8_t *rebase(const uint8_t *p, const struct codec_msg *cm, const uint8_t *base)
{
    return base + (p - cm->raw.p);
}

/*
 * Build a message in mem (client_msg_size(cm) bytes, suitably aligned): copy
 * the submessage once and point the spans into the copy. The result is
 * marked borrowed (owned = false); callers that hand it out set owned.
 * cm and what it points to are borrowed. Any thread.
 */
rmq_msg *client_msg_build(const struct codec_msg *cm, void *mem)
{
    rmq_msg *m = mem;
    uint8_t *raw = m->buf;
    char *subj = (char *)raw + cm->raw.len;
    char *reply = subj + cm->subject.len + 1;

    if (cm->raw.len)
        memcpy(raw, cm->raw.p, cm->raw.len);
    m->cm = *cm;
    m->cm.raw.p = raw;
    m->cm.subject.p = rebase(cm->subject.p, cm, raw);
    m->cm.reply.p = rebase(cm->reply.p, cm, raw);
    m->cm.payload.p = rebase(cm->payload.p, cm, raw);
    memcpy(subj, m->cm.subject.p, cm->subject.len);
    subj[cm->subject.len] = '\0';
    m->subject = subj;
    if (cm->reply.len) {
        memcpy(reply, m->cm.reply.p, cm->reply.len);
        reply[cm->reply.len] = '\0';
        m->reply = reply;
    } else {
        reply[0] = '\0';
        m->reply = NULL;
    }
    m->data = m->cm.payload.p;
    m->len = cm->payload.len;
    m->owned = false;
    m->next = NULL;
    return m;
}

static rmq_msg *msg_new(const struct codec_msg *cm)
{
    void *mem = malloc(client_msg_size(cm));
    rmq_msg *m;

    if (mem == NULL)
        return NULL;
    m = client_msg_build(cm, mem);
    m->owned = true;
    return m;
}

/* See ringmq.h. */
const char *rmq_msg_subject(const rmq_msg *m)
{
    return m->subject;
}

/* See ringmq.h. */
const char *rmq_msg_reply(const rmq_msg *m)
{
    return m->reply;
}

/* See ringmq.h. */
const void *rmq_msg_data(const rmq_msg *m)
{
    return m->data;
}

/* See ringmq.h. */
size_t rmq_msg_len(const rmq_msg *m)
{
    return m->len;
}

/* See ringmq.h. */
size_t rmq_msg_header_count(const rmq_msg *m)
{
    return m->cm.nhdrs;
}

/* See ringmq.h. */
bool rmq_msg_header_next(const rmq_msg *m, size_t *pos, const char **key, size_t *klen,
                         const void **value, size_t *vlen)
{
    struct codec_hdr h;

    if (m == NULL || pos == NULL || !codec_hdr_next(&m->cm, pos, &h))
        return false;
    if (key)
        *key = h.key;
    if (klen)
        *klen = h.klen;
    if (value)
        *value = h.val;
    if (vlen)
        *vlen = h.vlen;
    return true;
}

/* See ringmq.h. */
int rmq_msg_header(const rmq_msg *m, const char *key, const void **value, size_t *len)
{
    struct codec_hdr h;
    size_t pos = 0, kl;

    if (m == NULL || key == NULL)
        return -EINVAL;
    kl = strlen(key);
    while (codec_hdr_next(&m->cm, &pos, &h)) {
        if (h.klen == kl && memcmp(h.key, key, kl) == 0) {
            if (value)
                *value = h.val;
            if (len)
                *len = h.vlen;
            return 0;
        }
    }
    return RMQ_ENOTFOUND;
}

/* See ringmq.h. */
int rmq_msg_copy(const rmq_msg *m, rmq_msg **out)
{
    rmq_msg *n;

    if (m == NULL || out == NULL)
        return -EINVAL;
    n = msg_new(&m->cm);
    if (n == NULL)
        return -ENOMEM;
    *out = n;
    return 0;
}

/* See ringmq.h. */
void rmq_msg_free(rmq_msg *m)
{
    if (m == NULL || !m->owned)
        return;
    free(m);
}

/* See ringmq.h. The fields live in the parsed message, kept by msg copies. */
uint64_t rmq_msg_seq(const rmq_msg *m)
{
    return m->cm.seq;
}

/* See ringmq.h. */
uint64_t rmq_msg_time_ns(const rmq_msg *m)
{
    return m->cm.time_ns;
}

/* See ringmq.h. */
uint32_t rmq_msg_deliveries(const rmq_msg *m)
{
    return m->cm.deliveries;
}

/* ---- Subscription table ---- */

static size_t sid_bucket(uint64_t sid, size_t nb)
{
    return (size_t)((sid * 0x9E3779B97F4A7C15ull) >> 40) & (nb - 1);
}

static rmq_sub *subs_find_locked(rmq_client *c, uint64_t sid)
{
    if (c->nbuckets == 0)
        return NULL;
    for (rmq_sub *s = c->subs[sid_bucket(sid, c->nbuckets)]; s; s = s->hnext)
        if (s->sid == sid)
            return s;
    return NULL;
}

static int subs_insert_locked(rmq_client *c, rmq_sub *s)
{
    if (c->nsubs >= c->nbuckets) {
        size_t nb = c->nbuckets ? c->nbuckets * 2 : 16;
        rmq_sub **t = calloc(nb, sizeof(*t));
        if (t == NULL)
            return -ENOMEM;
        for (size_t b = 0; b < c->nbuckets; b++) {
            rmq_sub *x = c->subs[b], *nx;
            for (; x; x = nx) {
                nx = x->hnext;
                size_t nbk = sid_bucket(x->sid, nb);
                x->hnext = t[nbk];
                t[nbk] = x;
            }
        }
        free(c->subs);
        c->subs = t;
        c->nbuckets = nb;
    }
    size_t b = sid_bucket(s->sid, c->nbuckets);
    s->hnext = c->subs[b];
    c->subs[b] = s;
    s->in_table = true;
    c->nsubs++;
    return 0;
}

static void subs_remove_locked(rmq_client *c, rmq_sub *s)
{
    rmq_sub **pp;

    if (!s->in_table)
        return;
    for (pp = &c->subs[sid_bucket(s->sid, c->nbuckets)]; *pp; pp = &(*pp)->hnext) {
        if (*pp == s) {
            *pp = s->hnext;
            break;
        }
    }
    s->in_table = false;
    s->hnext = NULL;
    c->nsubs--;
}

/* Let the I/O thread read again once a blocking sub is half drained (or,
 * with force, gone). Caller holds c->mu. */
static void sub_unblock_locked(rmq_client *c, rmq_sub *s, bool force)
{
    if (!s->blocking ||
        (!force && (s->qmsgs > c->opts.pending_msgs / 2 || s->qbytes > c->opts.pending_bytes / 2)))
        return;
    s->blocking = false;
    if (--c->nblocking == 0)
        client_wake(c);
}

static void sub_queue_clear_locked(rmq_sub *s)
{
    rmq_msg *m = s->head, *n;
    for (; m; m = n) {
        n = m->next;
        free(m);
    }
    s->head = s->tail = NULL;
    s->qmsgs = s->qbytes = 0;
}

static void sub_strings_free(rmq_sub *s)
{
    free(s->pattern);
    free(s->queue);
    free(s->topic);
    free(s->durable);
}

static void sub_destroy(rmq_sub *s)
{
    sub_queue_clear_locked(s);
    pthread_cond_destroy(&s->cv);
    sub_strings_free(s);
    free(s);
}

/* Drop one reference; frees s at zero. Caller holds s->c->mu. */
void client_sub_unref_locked(rmq_sub *s)
{
    if (--s->refs == 0)
        sub_destroy(s);
}

/*
 * The durable-topic fields of s's SUBSCRIBE. A consumer binding is the same
 * every time. A replay starts where it was asked to until it has delivered
 * something, then (after a reconnect) right after the last seq delivered,
 * so it goes on with no gap and no duplicate. Caller holds c->mu.
 */
static void sub_topic_fields(const rmq_sub *s, Ringmq__Subscribe *sub)
{
    const rmq_replay_opts *st = &s->start;

    sub->topic = s->topic;
    if (s->durable) {
        sub->durable = s->durable;
        sub->has_max_inflight = s->cons.max_inflight != 0;
        sub->max_inflight = s->cons.max_inflight;
        sub->has_ack_wait_ms = s->cons.ack_wait_ms != 0;
        sub->ack_wait_ms = s->cons.ack_wait_ms;
        sub->has_max_deliver = s->cons.max_deliver != 0;
        sub->max_deliver = s->cons.max_deliver;
        return;
    }
    sub->has_start = true;
    if (s->last_seq != 0) {
        sub->start = RINGMQ__START_POLICY__START_SEQ;
        sub->has_start_seq = true;
        sub->start_seq = s->last_seq + 1;
        return;
    }
    if (st->start == RMQ_START_NEW && s->sent_once) {
        /* Re-sent before it delivered anything: "new" means new since it
         * was made, not since the reconnect (which would skip what was
         * stored meanwhile). By the broker's store times, so it relies on
         * the two clocks agreeing. */
        sub->start = RINGMQ__START_POLICY__START_TIME;
        sub->has_start_time_ns = true;
        sub->start_time_ns = s->new_since_ns;
        return;
    }
    sub->start = (Ringmq__StartPolicy)st->start;
    sub->has_start_seq = st->start == RMQ_START_SEQ;
    sub->start_seq = st->seq;
    sub->has_start_time_ns = st->start == RMQ_START_TIME;
    sub->start_time_ns = st->time_ns;
}

/*
 * Append the frames that (re)create s on a server to buf: SUBSCRIBE, plus an
 * UNSUBSCRIBE{max} carrying what is left of an auto-unsubscribe limit.
 * Caller holds c->mu (reads delivered/max/last_seq). Returns 0 or -ENOMEM.
 */
int client_sub_frames(rmq_sub *s, uint8_t **buf, size_t *len, size_t *cap)
{
    Ringmq__Frame f = RINGMQ__FRAME__INIT;
    Ringmq__Subscribe sub = RINGMQ__SUBSCRIBE__INIT;
    Ringmq__Unsubscribe un = RINGMQ__UNSUBSCRIBE__INIT;
    int rc;

    sub.sid = s->sid;
    sub.pattern = s->pattern;
    sub.queue = s->queue;
    if (s->topic)
        sub_topic_fields(s, &sub);
    s->sent_once = true;
    f.kind_case = RINGMQ__FRAME__KIND_SUB;
    f.sub = &sub;
    rc = frame_append(buf, len, cap, &f);
    if (rc < 0 || s->max == 0)
        return rc;
    un.sid = s->sid;
    un.has_max = true;
    un.max = s->max - s->delivered;
    f.kind_case = RINGMQ__FRAME__KIND_UNSUB;
    f.unsub = &un;
    return frame_append(buf, len, cap, &f);
}

static int unsub_frame_locked(rmq_client *c, uint64_t sid, uint64_t max)
{
    Ringmq__Frame f = RINGMQ__FRAME__INIT;
    Ringmq__Unsubscribe un = RINGMQ__UNSUBSCRIBE__INIT;

    un.sid = sid;
    un.has_max = max != 0;
    un.max = max;
    f.kind_case = RINGMQ__FRAME__KIND_UNSUB;
    f.unsub = &un;
    return client_frame_append_locked(c, &f);
}

/* strdup(src) into *dst unless src is NULL. false on -ENOMEM. */
static bool dup_opt(char **dst, const char *src)
{
    if (src == NULL)
        return true;
    *dst = strdup(src);
    return *dst != NULL;
}

/* Create a subscription (arguments already validated). Caller holds c->mu. */
static int sub_create_locked(rmq_client *c, const struct client_sub_spec *sp, rmq_sub **out)
{
    rmq_sub *s;
    int rc = -ENOMEM;

    if (c->closing || c->state == CLIENT_CLOSED)
        return RMQ_ECLOSED;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->c = c;
    s->cb = sp->cb;
    s->arg = sp->arg;
    s->refs = 1;
    s->start = sp->start;
    if (sp->topic && !sp->durable && sp->start.start == RMQ_START_NEW) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        s->new_since_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    }
    s->cons = sp->cons;
    if (!dup_opt(&s->pattern, sp->pattern) || !dup_opt(&s->queue, sp->queue) ||
        !dup_opt(&s->topic, sp->topic) || !dup_opt(&s->durable, sp->durable))
        goto err_free;
    rc = cond_init_mono(&s->cv);
    if (rc < 0)
        goto err_free;
    s->sid = c->next_sid++;
    rc = subs_insert_locked(c, s);
    if (rc < 0)
        goto err_cv;
    if (c->state == CLIENT_CONNECTED) {
        bool was_empty = c->slen == 0;
        rc = client_sub_frames(s, &c->sbuf, &c->slen, &c->scap);
        if (rc < 0)
            goto err_table;
        if (was_empty)
            client_wake(c);
    }
    *out = s;
    return 0;
err_table:
    subs_remove_locked(c, s);
err_cv:
    pthread_cond_destroy(&s->cv);
err_free:
    sub_strings_free(s);
    free(s);
    return rc;
}

/*
 * Create a subscription from sp (strings copied): checks the pattern and
 * queue syntax (RMQ_ESUBJECT), queues the SUBSCRIBE and sets *out. Names
 * of topics and consumers are the caller's to check. Returns 0,
 * RMQ_ESUBJECT, RMQ_ECLOSED, -EINVAL or -ENOMEM. Any thread.
 */
int client_sub_create(rmq_client *c, const struct client_sub_spec *sp, rmq_sub **out)
{
    int rc;

    if (c == NULL || sp->pattern == NULL || out == NULL)
        return -EINVAL;
    if (client_pattern_check(sp->pattern, strlen(sp->pattern)) < 0)
        return RMQ_ESUBJECT;
    if (sp->queue && client_subject_check(sp->queue, strlen(sp->queue)) < 0)
        return RMQ_ESUBJECT;
    pthread_mutex_lock(&c->mu);
    rc = sub_create_locked(c, sp, out);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* See ringmq.h. Any thread, callbacks included. */
int rmq_subscribe(rmq_client *c, const char *pattern, const char *queue, rmq_msg_cb cb, void *arg,
                  rmq_sub **out)
{
    struct client_sub_spec sp = {.pattern = pattern, .queue = queue, .cb = cb, .arg = arg};

    if (cb == NULL)
        return -EINVAL;
    return client_sub_create(c, &sp, out);
}

/* See ringmq.h. Any thread. */
int rmq_subscribe_sync(rmq_client *c, const char *pattern, const char *queue, rmq_sub **out)
{
    struct client_sub_spec sp = {.pattern = pattern, .queue = queue};

    return client_sub_create(c, &sp, out);
}

/* See ringmq.h. Any thread, callbacks included. */
int rmq_unsubscribe(rmq_sub *s)
{
    rmq_client *c;

    if (s == NULL)
        return 0;
    c = s->c;
    pthread_mutex_lock(&c->mu);
    if (s->state == SUB_ACTIVE && c->state == CLIENT_CONNECTED)
        unsub_frame_locked(c, s->sid, 0); /* on -ENOMEM the server keeps it; harmless */
    s->state = SUB_CLOSED;
    s->user_freed = true;
    subs_remove_locked(c, s);
    sub_unblock_locked(c, s, true);
    sub_queue_clear_locked(s);
    pthread_cond_broadcast(&s->cv);
    /* A delivery may have passed its SUB_ACTIVE check and be about to call
     * the callback: wait for it, so none starts after we return. (From a
     * callback we cannot wait; the I/O thread is the one running it.) */
    if (!client_in_io_thread(c))
        while (s->in_cb)
            pthread_cond_wait(&s->cv, &c->mu);
    client_sub_unref_locked(s);
    pthread_mutex_unlock(&c->mu);
    return 0;
}

/* See ringmq.h. Any thread, callbacks included. */
int rmq_unsubscribe_after(rmq_sub *s, uint64_t n)
{
    rmq_client *c;
    int rc = 0;

    if (s == NULL || n == 0)
        return -EINVAL;
    c = s->c;
    pthread_mutex_lock(&c->mu);
    if (s->state != SUB_ACTIVE) {
        rc = RMQ_ECLOSED;
    } else {
        s->max = s->delivered + n;
        if (c->state == CLIENT_CONNECTED)
            rc = unsub_frame_locked(c, s->sid, n);
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* See ringmq.h. */
int rmq_sub_pending(rmq_sub *s, size_t *msgs, size_t *bytes)
{
    if (s == NULL)
        return -EINVAL;
    pthread_mutex_lock(&s->c->mu);
    if (msgs)
        *msgs = s->qmsgs;
    if (bytes)
        *bytes = s->qbytes;
    pthread_mutex_unlock(&s->c->mu);
    return 0;
}

/* See ringmq.h. */
uint64_t rmq_sub_dropped(rmq_sub *s)
{
    uint64_t n;

    if (s == NULL)
        return 0;
    pthread_mutex_lock(&s->c->mu);
    n = s->dropped;
    pthread_mutex_unlock(&s->c->mu);
    return n;
}

/* See ringmq.h. */
uint64_t rmq_sub_delivered(rmq_sub *s)
{
    uint64_t n;

    if (s == NULL)
        return 0;
    pthread_mutex_lock(&s->c->mu);
    n = s->delivered;
    pthread_mutex_unlock(&s->c->mu);
    return n;
}

/* See ringmq.h. Any thread but the I/O thread. */
int rmq_sub_next(rmq_sub *s, int timeout_ms, rmq_msg **out)
{
    struct timespec ts;
    const struct timespec *dl;
    rmq_client *c;
    bool timed_out = false; /* one more look at the queue, then give up */
    int rc;

    if (s == NULL || out == NULL || s->cb != NULL)
        return -EINVAL;
    c = s->c;
    if (client_in_io_thread(c))
        return -EDEADLK;
    dl = deadline_set(&ts, timeout_ms) ? &ts : NULL;
    pthread_mutex_lock(&c->mu);
    c->busy++;
    s->refs++;
    for (;;) {
        if (s->head) {
            rmq_msg *m = s->head;
            s->head = m->next;
            if (s->head == NULL)
                s->tail = NULL;
            s->qmsgs--;
            s->qbytes -= m->len;
            m->next = NULL;
            s->overflowing = false;
            sub_unblock_locked(c, s, false);
            *out = m;
            rc = 0;
            break;
        }
        if (s->state == SUB_FAILED) {
            rc = s->err;
            break;
        }
        if (s->state != SUB_ACTIVE || c->closing || c->state == CLIENT_CLOSED) {
            rc = RMQ_ECLOSED;
            break;
        }
        if (timed_out) {
            rc = -ETIMEDOUT;
            break;
        }
        timed_out = timeout_ms == 0 || cond_wait(&s->cv, &c->mu, dl) == ETIMEDOUT;
    }
    client_sub_unref_locked(s);
    busy_leave_locked(c);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* ---- Delivery (called by the I/O thread) ---- */

/*
 * Deliver a parsed MESSAGE (borrowed from the read buffer) to its
 * subscription: count it against an auto-unsubscribe limit, then queue a
 * copy (sync) or run the callback on a message built in the scratch buffer.
 * Unknown or finished sids are dropped silently. I/O thread only.
 */
void client_deliver(rmq_client *c, const struct codec_msg *cm)
{
    rmq_sub *s;
    bool report = false;

    pthread_mutex_lock(&c->mu);
    s = subs_find_locked(c, cm->sid);
    if (s == NULL || s->state != SUB_ACTIVE) {
        pthread_mutex_unlock(&c->mu);
        return;
    }
    s->delivered++;
    if (cm->seq > s->last_seq)
        s->last_seq = cm->seq;
    c->stats.in_msgs++;
    c->stats.in_bytes += cm->payload.len;
    if (s->max && s->delivered >= s->max) {
        s->state = SUB_DONE; /* the server forgets it too */
        pthread_cond_broadcast(&s->cv);
    }
    if (s->cb == NULL) {
        rmq_msg *m = NULL;
        bool fits = s->qmsgs + 1 <= c->opts.pending_msgs &&
                    s->qbytes + cm->payload.len <= c->opts.pending_bytes;
        /* A replay or consumer is never dropped: the I/O thread stops
         * reading instead (TCP then holds the broker back), so what still
         * comes is bounded by one read. */
        if (fits || s->topic)
            m = msg_new(cm);
        if (m && !fits && !s->blocking) {
            s->blocking = true;
            c->nblocking++;
        }
        if (m == NULL) {
            s->dropped++;
            c->stats.dropped++;
            report = !s->overflowing;
            s->overflowing = true;
        } else {
            if (s->tail)
                s->tail->next = m;
            else
                s->head = m;
            s->tail = m;
            s->qmsgs++;
            s->qbytes += m->len;
            pthread_cond_signal(&s->cv);
        }
        if (!report) {
            pthread_mutex_unlock(&c->mu);
            return;
        }
    }
    s->refs++;
    if (!report)
        s->in_cb++; /* from here on rmq_unsubscribe() waits for the callback */
    pthread_mutex_unlock(&c->mu);

    if (report) {
        client_io_report(c, s, -ENOBUFS, "pending queue full: message dropped");
    } else if (client_buf_reserve(&c->scratch, &c->scratch_cap, client_msg_size(cm)) == 0) {
        rmq_msg *m = client_msg_build(cm, c->scratch);
        s->cb(c, s, m, s->arg);
    } else {
        client_io_report(c, s, -ENOMEM, "out of memory: message dropped");
    }

    pthread_mutex_lock(&c->mu);
    if (!report && --s->in_cb == 0)
        pthread_cond_broadcast(&s->cv);
    client_sub_unref_locked(s);
    pthread_mutex_unlock(&c->mu);
}

/*
 * The server rejected subscription sid (ERROR with sid): mark it failed,
 * wake its waiter and tell the error callback. I/O thread only.
 */
void client_sub_fail(rmq_client *c, uint64_t sid, int err, const char *text)
{
    rmq_sub *s;

    pthread_mutex_lock(&c->mu);
    s = subs_find_locked(c, sid);
    if (s != NULL) {
        if (s->state == SUB_ACTIVE) {
            s->state = SUB_FAILED;
            s->err = err;
            pthread_cond_broadcast(&s->cv);
        }
        s->refs++;
    }
    pthread_mutex_unlock(&c->mu);
    client_io_report(c, s, err, text);
    if (s != NULL) {
        pthread_mutex_lock(&c->mu);
        client_sub_unref_locked(s);
        pthread_mutex_unlock(&c->mu);
    }
}

/* ---- Publish ---- */

/* Wait until a frame of size bytes may be appended. Caller holds c->mu. */
static int room_wait_locked(rmq_client *c, size_t size)
{
    struct timespec ts;
    int rc = 0;

    if (c->state == CLIENT_RECONNECTING)
        return c->slen + size > c->opts.reconnect_buf ? -EAGAIN : 0;
    if (c->slen == 0 || c->slen + size <= c->opts.send_buf)
        return 0;
    if (client_in_io_thread(c))
        return client_io_drain_locked(c, size);
    deadline_set(&ts, c->opts.connect_timeout_ms);
    c->busy++;
    while (!c->closing && c->state == CLIENT_CONNECTED && c->slen > 0 &&
           c->slen + size > c->opts.send_buf) {
        if (pthread_cond_timedwait(&c->cv_room, &c->mu, &ts) == ETIMEDOUT) {
            rc = -EAGAIN;
            break;
        }
    }
    busy_leave_locked(c);
    if (rc == 0 && (c->closing || c->state == CLIENT_CLOSED))
        rc = RMQ_ECLOSED;
    else if (rc == 0 && c->state == CLIENT_RECONNECTING)
        rc = c->slen + size > c->opts.reconnect_buf ? -EAGAIN : 0;
    return rc;
}

/*
 * Check a publish and fill *p (which borrows every argument): subject and
 * reply syntax (RMQ_ESUBJECT), headers (-EINVAL). No lock, any thread.
 */
int client_pub_prepare(struct client_pub *p, const char *subj, const char *reply,
                       const rmq_header *h, size_t nh, const void *data, size_t len)
{
    if (subj == NULL || (len && data == NULL) || (nh && h == NULL))
        return -EINVAL;
    p->subj = subj;
    p->slen = strlen(subj);
    if (client_subject_check(subj, p->slen) < 0)
        return RMQ_ESUBJECT;
    p->reply = reply;
    p->rlen = reply ? strlen(reply) : 0;
    if (reply && client_subject_check(reply, p->rlen) < 0)
        return RMQ_ESUBJECT;
    if (nh > RMQ_MAX_HEADERS)
        return -EINVAL;
    for (size_t i = 0; i < nh; i++) {
        if (h[i].key == NULL || h[i].key[0] == '\0' || (h[i].value_len && !h[i].value))
            return -EINVAL;
        p->hdrs[i].key = h[i].key;
        p->hdrs[i].klen = strlen(h[i].key);
        p->hdrs[i].val = h[i].value; /* NULL: a header without value field */
        p->hdrs[i].vlen = h[i].value ? h[i].value_len : 0;
    }
    p->nh = nh;
    p->data = data ? data : "";
    p->len = len;
    return 0;
}

/*
 * Append the PUBLISH frame of p to the send buffer, waiting for room as
 * rmq_publish() documents. Caller holds c->mu, which may be released while
 * waiting; once this returns 0 the frame is in sbuf and mu was not released
 * since it was written. Returns 0, RMQ_ECLOSED, -EMSGSIZE, -EAGAIN or
 * -ENOMEM.
 */
int client_pub_append_locked(rmq_client *c, const struct client_pub *p)
{
    size_t size = codec_pub_size(p->subj, p->slen, p->reply, p->rlen, p->hdrs, p->nh, p->len);
    int rc;

    if (c->closing || c->state == CLIENT_CLOSED)
        return RMQ_ECLOSED;
    if (p->len > c->max_payload || size - CODEC_HDR_LEN > c->max_frame)
        return -EMSGSIZE;
    rc = room_wait_locked(c, size);
    if (rc < 0)
        return rc;
    rc = client_buf_reserve(&c->sbuf, &c->scap, c->slen + size);
    if (rc < 0)
        return rc;
    codec_pub_write(c->sbuf + c->slen, p->subj, p->slen, p->reply, p->rlen, p->hdrs, p->nh, p->data,
                    p->len);
    if (c->slen == 0 && c->state == CLIENT_CONNECTED)
        client_wake(c);
    c->slen += size;
    c->stats.out_msgs++;
    c->stats.out_bytes += p->len;
    return 0;
}

/* rmq_publish_msg() behind the public checks. Any thread, callbacks included. */
int client_publish(rmq_client *c, const char *subj, const char *reply, const rmq_header *h,
                   size_t nh, const void *data, size_t len)
{
    struct client_pub p;
    int rc;

    if (c == NULL)
        return -EINVAL;
    rc = client_pub_prepare(&p, subj, reply, h, nh, data, len);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&c->mu);
    rc = client_pub_append_locked(c, &p);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* See ringmq.h. Any thread, callbacks included. */
int rmq_publish(rmq_client *c, const char *subj, const void *data, size_t len)
{
    return client_publish(c, subj, NULL, NULL, 0, data, len);
}

/* See ringmq.h. Any thread, callbacks included. */
int rmq_publish_msg(rmq_client *c, const char *subj, const char *reply, const rmq_header *headers,
                    size_t nheaders, const void *data, size_t len)
{
    return client_publish(c, subj, reply, headers, nheaders, data, len);
}

/* See ringmq.h. Any thread, callbacks included. */
int rmq_respond(rmq_client *c, const rmq_msg *msg, const void *data, size_t len)
{
    if (msg == NULL)
        return -EINVAL;
    if (msg->reply == NULL)
        return -EINVAL;
    return client_publish(c, msg->reply, NULL, NULL, 0, data, len);
}

/* ---- Flush ---- */

static int ping_frame_locked(rmq_client *c, uint64_t token)
{
    Ringmq__Frame f = RINGMQ__FRAME__INIT;
    Ringmq__Ping ping = RINGMQ__PING__INIT;

    ping.has_token = true;
    ping.token = token;
    f.kind_case = RINGMQ__FRAME__KIND_PING;
    f.ping = &ping;
    return client_frame_append_locked(c, &f);
}

/* See ringmq.h. Any thread but the I/O thread. */
int rmq_flush(rmq_client *c, int timeout_ms)
{
    struct timespec ts;
    const struct timespec *dl;
    uint64_t token, gen;
    int rc;

    if (c == NULL)
        return -EINVAL;
    if (client_in_io_thread(c))
        return -EDEADLK;
    dl = deadline_set(&ts, timeout_ms) ? &ts : NULL;
    pthread_mutex_lock(&c->mu);
    c->busy++;
    while (c->state == CLIENT_RECONNECTING && !c->closing) {
        if (cond_wait(&c->cv, &c->mu, dl) == ETIMEDOUT) {
            rc = -ETIMEDOUT;
            goto out;
        }
    }
    if (c->closing || c->state == CLIENT_CLOSED) {
        rc = RMQ_ECLOSED;
        goto out;
    }
    token = ++c->ping_seq;
    gen = c->gen;
    rc = ping_frame_locked(c, token);
    if (rc < 0)
        goto out;
    while (c->pong_seq < token && c->gen == gen && !c->closing) {
        if (cond_wait(&c->cv, &c->mu, dl) == ETIMEDOUT)
            break;
    }
    if (c->pong_seq >= token && c->gen == gen)
        rc = 0;
    else if (c->closing || c->state == CLIENT_CLOSED)
        rc = RMQ_ECLOSED;
    else if (c->gen != gen)
        rc = -ECONNRESET;
    else
        rc = -ETIMEDOUT;
out:
    busy_leave_locked(c);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* ---- Request / reply ---- */

/* Inbox callback (I/O thread): hand a copy of the reply to its request. */
static void inbox_cb(rmq_client *c, rmq_sub *sub, const rmq_msg *m, void *arg)
{
    const char *subj = m->subject;
    size_t plen = strlen(c->inbox_prefix);
    uint64_t id = 0;
    const char *p;

    (void)sub;
    (void)arg;
    if (strncmp(subj, c->inbox_prefix, plen) != 0)
        return;
    p = subj + plen;
    if (*p == '\0')
        return;
    for (; *p; p++) {
        if (*p < '0' || *p > '9' || id > UINT64_MAX / 10)
            return;
        id = id * 10 + (uint64_t)(*p - '0');
    }
    if (client_ack_reply(c, id, m))
        return;
    pthread_mutex_lock(&c->mu);
    for (struct client_req *r = c->reqs; r; r = r->next) {
        if (r->id == id) {
            if (r->reply == NULL) {
                r->reply = msg_new(&m->cm);
                pthread_cond_broadcast(&c->cv);
            }
            break;
        }
    }
    pthread_mutex_unlock(&c->mu);
}

/* Create the inbox subscription on first use. Caller holds c->mu.
 * Returns 0, RMQ_ECLOSED or -ENOMEM. */
int client_inbox_ensure_locked(rmq_client *c)
{
    struct client_sub_spec sp = {.cb = inbox_cb};
    uint8_t rnd[8];
    char pattern[sizeof(c->inbox_prefix) + 1];
    int rc;

    if (c->inbox)
        return 0;
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        uint64_t x = c->rng ^ (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)c;
        memcpy(rnd, &x, sizeof(rnd));
    }
    snprintf(c->inbox_prefix, sizeof(c->inbox_prefix),
             CLIENT_INBOX_PREFIX "%02x%02x%02x%02x%02x%02x%02x%02x.", rnd[0], rnd[1], rnd[2],
             rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
    snprintf(pattern, sizeof(pattern), "%s*", c->inbox_prefix);
    sp.pattern = pattern;
    rc = sub_create_locked(c, &sp, &c->inbox);
    if (rc < 0)
        c->inbox = NULL;
    return rc;
}

/*
 * rmq_request() with headers h[0..nh) on the request (borrowed, copied into
 * the send buffer). *reply is owned by the caller on success. Any thread
 * but the I/O thread (-EDEADLK).
 */
int client_request(rmq_client *c, const char *subj, const rmq_header *h, size_t nh,
                   const void *data, size_t len, int timeout_ms, rmq_msg **reply)
{
    struct timespec ts;
    const struct timespec *dl;
    struct client_req r = {0};
    char rsubj[sizeof(c->inbox_prefix) + 24];
    int rc;

    if (c == NULL || subj == NULL || reply == NULL)
        return -EINVAL;
    if (client_in_io_thread(c))
        return -EDEADLK;
    if (client_subject_check(subj, strlen(subj)) < 0)
        return RMQ_ESUBJECT;
    dl = deadline_set(&ts, timeout_ms) ? &ts : NULL;
    pthread_mutex_lock(&c->mu);
    rc = client_inbox_ensure_locked(c);
    if (rc < 0) {
        pthread_mutex_unlock(&c->mu);
        return rc;
    }
    r.id = ++c->req_seq;
    r.next = c->reqs;
    c->reqs = &r;
    c->busy++;
    snprintf(rsubj, sizeof(rsubj), "%s%" PRIu64, c->inbox_prefix, r.id);
    pthread_mutex_unlock(&c->mu);

    rc = client_publish(c, subj, rsubj, h, nh, data, len);

    pthread_mutex_lock(&c->mu);
    while (rc == 0 && r.reply == NULL) {
        if (c->closing || c->state == CLIENT_CLOSED)
            rc = RMQ_ECLOSED;
        else if (cond_wait(&c->cv, &c->mu, dl) == ETIMEDOUT && r.reply == NULL)
            rc = -ETIMEDOUT;
    }
    for (struct client_req **pp = &c->reqs; *pp; pp = &(*pp)->next) {
        if (*pp == &r) {
            *pp = r.next;
            break;
        }
    }
    busy_leave_locked(c);
    pthread_mutex_unlock(&c->mu);
    if (r.reply != NULL && rc == 0) {
        *reply = r.reply;
        return 0;
    }
    rmq_msg_free(r.reply);
    return rc;
}

/* See ringmq.h. Any thread but the I/O thread. */
int rmq_request(rmq_client *c, const char *subj, const void *data, size_t len, int timeout_ms,
                rmq_msg **reply)
{
    return client_request(c, subj, NULL, 0, data, len, timeout_ms, reply);
}

/* ---- Connect / close ---- */

static void client_free(rmq_client *c)
{
    for (size_t b = 0; b < c->nbuckets; b++) {
        rmq_sub *s = c->subs[b], *n;
        for (; s; s = n) {
            n = s->hnext;
            sub_destroy(s);
        }
    }
    free(c->subs);
    client_acks_fini(&c->acks);
    if (c->wake_fd >= 0)
        close(c->wake_fd);
    if (c->fd >= 0)
        close(c->fd);
    free(c->sbuf);
    free(c->wbuf);
    free(c->rbuf);
    free(c->scratch);
    pthread_cond_destroy(&c->cv);
    pthread_cond_destroy(&c->cv_room);
    pthread_mutex_destroy(&c->mu);
    client_opts_fini(&c->opts);
    free(c);
}

/* See ringmq.h. Caller's thread; blocks for the connect attempts. */
int rmq_connect(const rmq_opts *o, rmq_client **out)
{
    rmq_opts *defaults = NULL;
    rmq_client *c;
    int rc;

    if (out == NULL)
        return -EINVAL;
    if (o == NULL) {
        rc = rmq_opts_new(&defaults);
        if (rc < 0)
            return rc;
        o = defaults;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        rmq_opts_free(defaults);
        return -ENOMEM;
    }
    rc = client_opts_copy(&c->opts, o);
    rmq_opts_free(defaults);
    if (rc < 0) {
        free(c);
        return rc;
    }
    c->fd = -1;
    c->wake_fd = -1;
    c->next_sid = 1;
    c->state = CLIENT_RECONNECTING;
    pthread_mutex_init(&c->mu, NULL);
    if (cond_init_mono(&c->cv) < 0 || cond_init_mono(&c->cv_room) < 0) {
        rc = -ENOMEM;
        goto err;
    }
    if (getrandom(&c->rng, sizeof(c->rng), 0) != (ssize_t)sizeof(c->rng))
        c->rng = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)c;
    c->rng |= 1;
    c->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (c->wake_fd < 0) {
        rc = -errno;
        goto err;
    }
    if (c->opts.nservers == 0) {
        rc = -EINVAL;
        goto err;
    }
    rc = client_io_dial(c);
    if (rc < 0)
        goto err;
    rc = client_io_start(c);
    if (rc < 0)
        goto err;
    *out = c;
    return 0;
err:
    client_free(c);
    return rc;
}

/* See ringmq.h. */
int rmq_connect_to(const char *servers, rmq_client **out)
{
    rmq_opts *o;
    int rc = rmq_opts_new(&o);

    if (rc < 0)
        return rc;
    if (servers != NULL)
        rc = rmq_opts_set_servers(o, servers);
    if (rc == 0)
        rc = rmq_connect(o, out);
    rmq_opts_free(o);
    return rc;
}

/* See ringmq.h. Any thread but the I/O thread; must be called once. */
int rmq_close(rmq_client *c)
{
    if (c == NULL)
        return 0;
    if (client_in_io_thread(c))
        return -EDEADLK;
    pthread_mutex_lock(&c->mu);
    c->closing = true;
    client_wake_all_locked(c);
    pthread_mutex_unlock(&c->mu);
    client_wake(c);
    if (c->io_started)
        pthread_join(c->io_thread, NULL);
    pthread_mutex_lock(&c->mu);
    while (c->busy > 0)
        pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
    client_free(c);
    return 0;
}

/* See ringmq.h. */
int rmq_client_stats(rmq_client *c, rmq_stats *out)
{
    if (c == NULL || out == NULL)
        return -EINVAL;
    pthread_mutex_lock(&c->mu);
    *out = c->stats;
    pthread_mutex_unlock(&c->mu);
    return 0;
}

/* See ringmq.h. */
size_t rmq_client_max_payload(rmq_client *c)
{
    size_t n;

    pthread_mutex_lock(&c->mu);
    n = c->max_payload;
    pthread_mutex_unlock(&c->mu);
    return n;
}

/* See ringmq.h. */
bool rmq_client_is_connected(rmq_client *c)
{
    bool up;

    pthread_mutex_lock(&c->mu);
    up = c->state == CLIENT_CONNECTED && !c->closing;
    pthread_mutex_unlock(&c->mu);
    return up;
}

/* See ringmq.h. */
int rmq_subject_check(const char *s, bool pattern)
{
    if (s == NULL)
        return RMQ_ESUBJECT;
    return pattern ? client_pattern_check(s, strlen(s)) : client_subject_check(s, strlen(s));
}

/* See ringmq.h. */
const char *rmq_strerror(int err)
{
    return rmq_err_str(err);
}

/* See ringmq.h. */
const char *rmq_version(void)
{
#ifdef RMQ_VERSION
    return RMQ_VERSION;
#else
    return RMQ_CLIENT_VERSION;
#endif
}
