/*
 * dur_consumer.c - durable consumers, on the storage thread.
 *
 * A consumer lives here, whichever shards its bound subscriptions are on:
 * the cursor (next_seq), the in-flight window (a ring of entries in seq
 * order: delivered, not yet acked) and the members. Deliveries go to the
 * members round-robin as CDELIVER ops. An ack marks its entry; the entries
 * acked at the front of the window leave it and raise the ack floor, which
 * is persisted once per loop iteration for every consumer that moved
 * (store_consumer_ack_batch: one transaction).
 *
 * After a restart the cursor starts after the stored floor: what was acked
 * above it (out of order) is delivered again (at-least-once).
 *
 * Thread: the storage thread.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dur_int.h"
#include "log.h"
#include "shard.h"
#include "xalloc.h"

#define DEFAULT_MAX_INFLIGHT 1000
#define MAX_MAX_INFLIGHT 65536
#define DEFAULT_ACK_WAIT_NS (30000ull * 1000000)
#define READ_BYTES (1u << 20)

static struct cinfl *fl_at(struct consumer *c, uint32_t i)
{
    return &c->fl[(c->fhead + i) & (c->fcap - 1)];
}

static struct consumer *consumer_new(struct dur *d, const struct store_consumer *sc)
{
    struct consumer *c = xcalloc(1, sizeof(*c));
    c->cfg = *sc;
    c->next_seq = sc->ack_floor + 1;
    for (uint32_t i = 0; i < d->tab->n; i++)
        if (d->tab->t[i].id == sc->topic)
            memcpy(c->topic_name, d->tab->t[i].name, sizeof(c->topic_name));
    c->fcap = 64;
    while (c->fcap < sc->max_inflight)
        c->fcap *= 2;
    c->fl = xcalloc(c->fcap, sizeof(*c->fl));
    c->next = d->consumers;
    d->consumers = c;
    return c;
}

static int load_one(void *arg, const struct store_consumer *sc)
{
    consumer_new(arg, sc);
    return 0;
}

/* See dur_int.h. */
int dur_consumers_load(struct dur *d)
{
    ssize_t n = store_consumer_list(d->st, 0, load_one, d);
    if (n < 0) {
        log_error("storage: cannot load consumers: %s", rmq_err_str((int)n));
        return (int)n;
    }
    return 0;
}

static void consumer_free(struct consumer *c)
{
    free(c->fl);
    free(c->mem);
    free(c);
}

/* See dur_int.h. */
void dur_consumers_free(struct dur *d)
{
    while (d->consumers) {
        struct consumer *c = d->consumers;
        d->consumers = c->next;
        consumer_free(c);
    }
}

/* See dur_int.h. */
struct consumer *dur_consumer_find(struct dur *d, uint32_t topic, const char *name)
{
    for (struct consumer *c = d->consumers; c; c = c->next)
        if (c->cfg.topic == topic && strcmp(c->cfg.name, name) == 0)
            return c;
    return NULL;
}

/* See dur_int.h. */
void dur_consumer_remove(struct dur *d, struct consumer *c)
{
    for (struct consumer **p = &d->consumers; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            consumer_free(c);
            return;
        }
}

/* See dur_int.h. */
uint32_t dur_consumer_count(struct dur *d, uint32_t topic)
{
    uint32_t n = 0;
    for (struct consumer *c = d->consumers; c; c = c->next)
        n += c->cfg.topic == topic;
    return n;
}

/* See dur_int.h. */
void dur_consumers_drop_topic(struct dur *d, uint32_t topic)
{
    struct consumer **p = &d->consumers;
    while (*p) {
        struct consumer *c = *p;
        if (c->cfg.topic == topic) {
            *p = c->next;
            consumer_free(c);
        } else
            p = &c->next;
    }
}

/* ---- Delivery ---- */

struct send_ctx {
    struct dur *d;
    struct consumer *c;
    struct cinfl *e; /* redelivery: the entry; NULL: new messages */
    uint32_t room;
};

static void send_msg(struct dur *d, struct consumer *c, struct cinfl *e, const struct store_msg *m)
{
    struct cmember *mb = &c->mem[c->rr++ % c->nmem];
    struct dop_cdeliver *op = xmalloc(sizeof(*op) + m->len);
    int n;
    op->h.type = DOP_CDELIVER;
    op->h.shard = mb->shard;
    op->h.rc = 0;
    op->b = mb->b;
    op->seq = m->seq;
    op->ts_ns = m->ts_ns;
    op->deliveries = e->deliveries;
    n = snprintf(op->reply, sizeof(op->reply), DUR_ACK_PREFIX "%s.%s.%llu", c->topic_name,
                 c->cfg.name, (unsigned long long)m->seq);
    op->rlen = (uint8_t)(n < (int)sizeof(op->reply) ? n : (int)sizeof(op->reply) - 1);
    op->len = (uint32_t)m->len;
    memcpy(op->data, m->data, m->len);
    e->member = mb->b;
    dur_reply(d, &op->h);
    stat_add(&d->stats.cons_delivered, 1);
}

static int read_new(void *arg, const struct store_msg *m)
{
    struct send_ctx *x = arg;
    struct consumer *c = x->c;
    struct cinfl *e;
    if (!x->room)
        return -1;
    e = fl_at(c, c->fn++);
    memset(e, 0, sizeof(*e));
    e->seq = m->seq;
    e->deliveries = 1;
    e->deadline_ns = x->d->now_ns + c->cfg.ack_wait_ns;
    c->unacked++;
    c->next_seq = m->seq + 1;
    x->room--;
    send_msg(x->d, c, e, m);
    return 0;
}

static int read_again(void *arg, const struct store_msg *m)
{
    struct send_ctx *x = arg;
    if (m->seq != x->e->seq)
        return -1; /* gone (retention): the caller drops the entry */
    send_msg(x->d, x->c, x->e, m);
    return 1;
}

static void entry_done(struct consumer *c, struct cinfl *e)
{
    if (!e->acked) {
        e->acked = true;
        c->unacked--;
    }
    while (c->fn && fl_at(c, 0)->acked) {
        c->cfg.ack_floor = fl_at(c, 0)->seq;
        c->fhead = (c->fhead + 1) & (c->fcap - 1);
        c->fn--;
        c->floor_dirty = true;
    }
    if (!c->fn && c->next_seq - 1 > c->cfg.ack_floor) {
        c->cfg.ack_floor = c->next_seq - 1; /* seqs skipped by retention */
        c->floor_dirty = true;
    }
}

/* Redeliver the entries whose deadline passed. */
static void redeliver(struct dur *d, struct consumer *c)
{
    for (uint32_t i = 0; i < c->fn && c->nmem; i++) {
        struct cinfl *e = fl_at(c, i);
        struct send_ctx x = {.d = d, .c = c, .e = e};
        ssize_t n;
        if (e->acked || e->deadline_ns > d->now_ns)
            continue;
        if (c->cfg.max_deliver && e->deliveries >= c->cfg.max_deliver) {
            stat_add(&d->stats.cons_dropped, 1);
            log_warn("storage: consumer %s/%s: seq %llu dropped after %u deliveries", c->topic_name,
                     c->cfg.name, (unsigned long long)e->seq, e->deliveries);
            entry_done(c, e);
            i = (uint32_t)-1; /* the window moved: start over */
            continue;
        }
        e->deliveries++;
        e->deadline_ns = d->now_ns + c->cfg.ack_wait_ns;
        n = store_read(d->st, c->cfg.topic, e->seq, 1, 0, read_again, &x, NULL);
        if (n <= 0) {
            entry_done(c, e); /* removed by retention meanwhile */
            i = (uint32_t)-1;
            continue;
        }
        c->redelivered++;
        stat_add(&d->stats.cons_redelivered, 1);
    }
}

static void pump(struct dur *d, struct consumer *c)
{
    uint32_t max = c->cfg.max_inflight;
    if (!c->nmem)
        return;
    redeliver(d, c);
    while (c->unacked < max && c->fn < c->fcap) {
        struct send_ctx x = {.d = d, .c = c};
        uint32_t room = max - c->unacked;
        ssize_t n;
        if (room > c->fcap - c->fn)
            room = c->fcap - c->fn;
        x.room = room;
        n = store_read(d->st, c->cfg.topic, c->next_seq, room, READ_BYTES, read_new, &x, NULL);
        if (n <= 0)
            break;
    }
}

/* See dur_int.h. */
void dur_consumers_pump(struct dur *d, uint32_t topic)
{
    for (struct consumer *c = d->consumers; c; c = c->next)
        if (!topic || c->cfg.topic == topic)
            pump(d, c);
}

/* See dur_int.h. */
void dur_consumers_tick(struct dur *d)
{
    for (struct consumer *c = d->consumers; c; c = c->next)
        if (c->nmem && c->fn)
            pump(d, c);
}

/* See dur_int.h. */
void dur_consumers_persist(struct dur *d)
{
    struct store_ack acks[64];
    size_t n = 0;
    for (struct consumer *c = d->consumers; c; c = c->next) {
        if (!c->floor_dirty)
            continue;
        c->floor_dirty = false;
        acks[n].topic = c->cfg.topic;
        acks[n].name = c->cfg.name;
        acks[n].floor = c->cfg.ack_floor;
        if (++n == 64) {
            store_consumer_ack_batch(d->st, acks, n);
            n = 0;
        }
    }
    if (n) {
        int rc = store_consumer_ack_batch(d->st, acks, n);
        if (rc && rc != RMQ_ENOTFOUND)
            log_warn("storage: saving ack floors: %s", rmq_err_str(rc));
    }
}

/* ---- Bind, unbind, ack ---- */

/* See dur_int.h. */
void dur_bind(struct dur *d, struct dop_bind *op)
{
    struct consumer *c = dur_consumer_find(d, op->topic, op->name);
    int rc = 0;
    if (!c) {
        struct store_consumer sc = {0};
        strcpy(sc.name, op->name);
        sc.topic = op->topic;
        sc.max_inflight = op->max_inflight ? op->max_inflight : DEFAULT_MAX_INFLIGHT;
        if (sc.max_inflight > MAX_MAX_INFLIGHT)
            sc.max_inflight = MAX_MAX_INFLIGHT;
        sc.max_deliver = op->max_deliver;
        sc.ack_wait_ns = op->ack_wait_ms ? op->ack_wait_ms * 1000000ull : DEFAULT_ACK_WAIT_NS;
        rc = store_consumer_put(d->st, &sc);
        if (rc == 0)
            c = consumer_new(d, &sc);
    }
    op->h.rc = rc;
    if (c) {
        if (c->nmem == c->memcap) {
            c->memcap = c->memcap ? c->memcap * 2 : 4;
            c->mem = xrealloc(c->mem, c->memcap * sizeof(*c->mem));
        }
        c->mem[c->nmem].b = op->b;
        c->mem[c->nmem++].shard = op->h.shard;
    }
    dur_reply(d, &op->h);
    if (c)
        pump(d, c);
}

/* See dur_int.h. */
void dur_unbind(struct dur *d, struct dop_bind *op)
{
    struct consumer *c = dur_consumer_find(d, op->topic, op->name);
    if (c) {
        for (uint32_t i = 0; i < c->nmem; i++)
            if (c->mem[i].b == op->b) {
                c->mem[i] = c->mem[--c->nmem];
                break;
            }
        /* What it had not acked goes to the others now. */
        for (uint32_t i = 0; i < c->fn; i++)
            if (fl_at(c, i)->member == op->b && !fl_at(c, i)->acked) {
                fl_at(c, i)->deadline_ns = 0;
                fl_at(c, i)->member = NULL;
            }
        pump(d, c);
    }
    dur_reply(d, &op->h);
}

/* See dur_int.h. */
void dur_ack(struct dur *d, struct dop_ack *op)
{
    struct consumer *c = NULL;
    uint32_t lo, hi;
    for (uint32_t i = 0; i < d->tab->n && !c; i++)
        if (strcmp(d->tab->t[i].name, op->topic) == 0)
            c = dur_consumer_find(d, d->tab->t[i].id, op->consumer);
    if (!c || !c->fn)
        return;
    /* Binary search: the window is in seq order. */
    lo = 0;
    hi = c->fn;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (fl_at(c, mid)->seq < op->seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == c->fn || fl_at(c, lo)->seq != op->seq || fl_at(c, lo)->acked)
        return;
    if (op->nak) {
        fl_at(c, lo)->deadline_ns = 0;
    } else {
        stat_add(&d->stats.cons_acks, 1);
        entry_done(c, fl_at(c, lo));
    }
    pump(d, c);
}
