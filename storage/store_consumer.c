/*
 * store_consumer.c - durable consumers: a named cursor (ack floor) and
 * its configuration per (topic, name), surviving restarts. Delivery
 * counts and the in-flight set are the broker's, in memory.
 *
 *   key   (DB_CONSUMERS)  topic u32 | name bytes (1..64)
 *
 *   value +---------+-----------+--------------+-------------+-------------+----------+
 *         | ver u32 | ack_floor | max_inflight | max_deliver | ack_wait_ns | flags    |
 *         |         |    u64    |     u32      |     u32     |     u64     |   u32    |
 *         +---------+-----------+--------------+-------------+-------------+----------+
 *
 * Keys sort by topic first, so a topic's consumers are one key range
 * (store_consumer_list(), and store_topic_rm() deleting them).
 *
 * put/del/ack_batch run on the writer thread (write txns); get/list on
 * any thread (read txns).
 */
#include "store_internal.h"

#define CONS_REC_VERSION 1u
#define CONS_REC_LEN 32
#define CONS_KEY_MAX (4 + STORE_NAME_MAX)

static size_t cons_key(uint8_t *k, uint32_t topic, const char *name, size_t n)
{
    put_be32(k, topic);
    memcpy(k + 4, name, n);
    return 4 + n;
}

static void cons_encode(uint8_t v[CONS_REC_LEN], const struct store_consumer *c)
{
    put_be32(v, CONS_REC_VERSION);
    put_be64(v + 4, c->ack_floor);
    put_be32(v + 12, c->max_inflight);
    put_be32(v + 16, c->max_deliver);
    put_be64(v + 20, c->ack_wait_ns);
    put_be32(v + 28, c->flags);
}

static int cons_decode(const MDB_val *k, const MDB_val *v, struct store_consumer *c)
{
    const uint8_t *p = v->mv_data;
    size_t n = k->mv_size - 4;

    if (k->mv_size < 5 || n > STORE_NAME_MAX || v->mv_size != CONS_REC_LEN ||
        get_be32(p) != CONS_REC_VERSION)
        return STORE_ECORRUPT;
    memset(c, 0, sizeof(*c));
    c->topic = get_be32(k->mv_data);
    memcpy(c->name, (const uint8_t *)k->mv_data + 4, n);
    c->ack_floor = get_be64(p + 4);
    c->max_inflight = get_be32(p + 12);
    c->max_deliver = get_be32(p + 16);
    c->ack_wait_ns = get_be64(p + 20);
    c->flags = get_be32(p + 28);
    return 0;
}

/* ---- Writer calls ---- */

struct put_ctx {
    const struct store_consumer *c;
    size_t nlen;
};

static int put_txn(struct wtxn *w, void *arg)
{
    struct put_ctx *p = arg;
    uint8_t kb[CONS_KEY_MAX], vb[CONS_REC_LEN];
    MDB_val k = {cons_key(kb, p->c->topic, p->c->name, p->nlen), kb}, v = {sizeof(vb), vb};

    cons_encode(vb, p->c);
    return mdb_put(w->txn, w->s->dbi[DB_CONSUMERS], &k, &v, 0);
}

/*
 * Create or replace consumer (c->topic, c->name). Returns 0,
 * RMQ_ENOTFOUND, -EINVAL or a store code. Writer thread; c is copied.
 */
int store_consumer_put(struct store *s, const struct store_consumer *c)
{
    struct put_ctx p;

    if (s == NULL || c == NULL || !store_name_ok(c->name, sizeof(c->name), &p.nlen))
        return -EINVAL;
    if (topic_find(s, c->topic) == NULL)
        return RMQ_ENOTFOUND;
    p.c = c;
    return store_write(s, put_txn, &p, true);
}

struct del_ctx {
    uint32_t topic;
    const char *name;
    size_t nlen;
};

static int del_txn(struct wtxn *w, void *arg)
{
    struct del_ctx *d = arg;
    uint8_t kb[CONS_KEY_MAX];
    MDB_val k = {cons_key(kb, d->topic, d->name, d->nlen), kb};

    return mdb_del(w->txn, w->s->dbi[DB_CONSUMERS], &k, NULL);
}

/* Delete consumer (topic, name). 0, RMQ_ENOTFOUND, -EINVAL or a store code. Writer thread. */
int store_consumer_del(struct store *s, uint32_t topic, const char *name)
{
    struct del_ctx d = {.topic = topic, .name = name};

    if (s == NULL || !store_name_ok(name, STORE_NAME_MAX + 1, &d.nlen))
        return -EINVAL;
    return store_write(s, del_txn, &d, true);
}

struct ack_ctx {
    struct store_ack *acks;
    size_t n;
};

static int ack_txn(struct wtxn *w, void *arg)
{
    struct ack_ctx *a = arg;
    uint8_t kb[CONS_KEY_MAX], vb[CONS_REC_LEN];
    struct store_consumer c;
    MDB_val k, v;
    size_t i, nlen;
    int rc;

    for (i = 0; i < a->n; i++) {
        struct store_ack *e = &a->acks[i];

        if (!store_name_ok(e->name, STORE_NAME_MAX + 1, &nlen)) {
            e->rc = -EINVAL;
            continue;
        }
        k.mv_data = kb;
        k.mv_size = cons_key(kb, e->topic, e->name, nlen);
        rc = mdb_get(w->txn, w->s->dbi[DB_CONSUMERS], &k, &v);
        if (rc == MDB_NOTFOUND) {
            e->rc = RMQ_ENOTFOUND;
            continue;
        }
        if (rc == 0)
            rc = cons_decode(&k, &v, &c);
        if (rc != 0)
            return rc;
        e->rc = 0;
        if (e->floor <= c.ack_floor)
            continue;
        c.ack_floor = e->floor;
        cons_encode(vb, &c);
        v.mv_data = vb;
        v.mv_size = sizeof(vb);
        rc = mdb_put(w->txn, w->s->dbi[DB_CONSUMERS], &k, &v, 0);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/*
 * Raise ack floors in one txn (see store.h). Returns 0 or the first
 * failing entry's rc. Writer thread; names are borrowed.
 */
int store_consumer_ack_batch(struct store *s, struct store_ack *acks, size_t n)
{
    struct ack_ctx a = {acks, n};
    size_t i;
    int rc;

    if (s == NULL || (acks == NULL && n > 0))
        return -EINVAL;
    if (n == 0)
        return 0;
    rc = store_write(s, ack_txn, &a, true);
    for (i = 0; i < n; i++) {
        if (rc != 0)
            acks[i].rc = rc;
        if (acks[i].rc != 0)
            return acks[i].rc;
    }
    return 0;
}

/* ---- Reader calls ---- */

/*
 * Copy consumer (topic, name) into *c. 0, RMQ_ENOTFOUND, -EINVAL or a
 * store code. Any thread.
 */
int store_consumer_get(struct store *s, uint32_t topic, const char *name, struct store_consumer *c)
{
    uint8_t kb[CONS_KEY_MAX];
    MDB_txn *txn;
    MDB_val k, v;
    size_t nlen;
    int rc;

    if (s == NULL || c == NULL || !store_name_ok(name, STORE_NAME_MAX + 1, &nlen))
        return -EINVAL;
    rc = rtxn_begin(s, &txn);
    if (rc != 0)
        return rc;
    k.mv_data = kb;
    k.mv_size = cons_key(kb, topic, name, nlen);
    rc = mdb_get(txn, s->dbi[DB_CONSUMERS], &k, &v);
    if (rc == 0)
        rc = cons_decode(&k, &v, c);
    rtxn_end(s, txn);
    return store_err(rc);
}

/*
 * Call fn for each consumer of topic (0: all) in key order from one read
 * txn. Returns the count, fn's non-zero value, or a negative code. Any thread.
 */
ssize_t store_consumer_list(struct store *s, uint32_t topic, store_consumer_fn fn, void *arg)
{
    struct store_consumer c;
    uint8_t pfx[4];
    MDB_cursor *mc;
    MDB_txn *txn;
    MDB_val k, v;
    ssize_t n = 0;
    int rc, frc = 0;

    if (s == NULL || fn == NULL)
        return -EINVAL;
    rc = rtxn_begin(s, &txn);
    if (rc != 0)
        return rc;
    rc = mdb_cursor_open(txn, s->dbi[DB_CONSUMERS], &mc);
    if (rc == 0) {
        put_be32(pfx, topic);
        k.mv_data = pfx;
        k.mv_size = sizeof(pfx);
        for (rc = mdb_cursor_get(mc, &k, &v, topic != 0 ? MDB_SET_RANGE : MDB_FIRST); rc == 0;
             rc = mdb_cursor_get(mc, &k, &v, MDB_NEXT)) {
            if (topic != 0 && (k.mv_size < 4 || memcmp(k.mv_data, pfx, 4) != 0))
                break;
            rc = cons_decode(&k, &v, &c);
            if (rc != 0)
                break;
            n++;
            frc = fn(arg, &c);
            if (frc != 0)
                break;
        }
        mdb_cursor_close(mc);
        if (rc == MDB_NOTFOUND)
            rc = 0;
    }
    rtxn_end(s, txn);
    if (rc != 0)
        return store_err(rc);
    return frc != 0 ? frc : n;
}
