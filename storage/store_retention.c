/*
 * store_retention.c - background retention: one bounded write transaction
 * per store_retention_run() call, deleting at most `budget` records.
 *
 * Order of work inside one call (stops wherever the budget runs out):
 *
 *   1. purge list     removed topics, oldest removal first:
 *                     msgs (id|*), dedup (id|*), dedupts (id|*), then 'P'|id
 *   2. topics         round-robin from s->rr, so one topic's backlog does not
 *                     starve the others across calls; for each topic t:
 *                       a. age     messages from first_seq while ts < now - max_age
 *                       b. limits  count/bytes (appends enforce them already)
 *                       (msgs_trim(): first_seq advances inside the head
 *                       chunk; a chunk is deleted once none of it is live)
 *                       c. dedup   dedupts (t|ts|id) while ts < now - window,
 *                                  with the matching dedup (t|id)
 *
 * The budget counts messages and dedup ids (a purged chunk counts as its
 * messages). Messages are deleted from the head only, so a topic's stored
 * seqs stay contiguous (store_seq_at_time() relies on it). Deleting needs free pages
 * too (copy-on-write): at map_max the budget is halved until a
 * transaction fits; only if even one deletion does not fit is
 * RMQ_ESTOREFULL returned.
 *
 * Writer thread only.
 */
#include "store_internal.h"

struct ret_ctx {
    uint64_t now;
    size_t budget;
    size_t deleted;
    size_t purged; /* purge-list entries finished (a prefix of s->purge) */
    size_t next_rr;
    bool freed; /* pages were freed (a chunk or a record deleted) */
};

/* Age and count/bytes limits of t: drop its oldest messages (msgs_trim()). */
static int expire_msgs(struct wtxn *w, struct tmem *t, MDB_cursor *mc, struct ret_ctx *c)
{
    uint64_t cutoff = 0;

    if (t->max_age_ns != 0 && c->now > t->max_age_ns)
        cutoff = c->now - t->max_age_ns;
    return msgs_trim(w, t, mc, cutoff, true, c->budget, &c->deleted, &c->freed);
}

static int expire_dedup(struct wtxn *w, struct tmem *t, struct ret_ctx *c)
{
    uint8_t pfx[4], id[STORE_DEDUP_ID_MAX];
    MDB_cursor *mc;
    MDB_val k, v;
    uint64_t cutoff, ts;
    size_t idlen;
    int rc;

    if (t->dedup_window_ns == 0 || c->now <= t->dedup_window_ns || c->deleted >= c->budget)
        return 0;
    cutoff = c->now - t->dedup_window_ns;
    put_be32(pfx, t->id);
    rc = mdb_cursor_open(w->txn, w->s->dbi[DB_DEDUPTS], &mc);
    if (rc != 0)
        return rc;
    while (c->deleted < c->budget) {
        k.mv_data = pfx;
        k.mv_size = sizeof(pfx);
        rc = mdb_cursor_get(mc, &k, &v, MDB_SET_RANGE);
        if (rc != 0)
            break;
        if (k.mv_size < 12 || memcmp(k.mv_data, pfx, 4) != 0)
            break;
        ts = get_be64((const uint8_t *)k.mv_data + 4);
        if (ts >= cutoff)
            break;
        idlen = k.mv_size - 12;
        if (idlen > STORE_DEDUP_ID_MAX) {
            rc = STORE_ECORRUPT;
            break;
        }
        memcpy(id, (const uint8_t *)k.mv_data + 12, idlen);
        /* dedup_delete() removes both records (the cursor's one included). */
        rc = dedup_delete(w, t->id, id, idlen, ts);
        if (rc != 0)
            break;
        c->deleted++;
    }
    mdb_cursor_close(mc);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static int purge_step(struct wtxn *w, struct ret_ctx *c)
{
    struct store *s = w->s;
    uint8_t pk[PURGE_KEY_LEN];
    MDB_val k;
    bool done;
    size_t i;
    int rc;

    for (i = 0; i < s->npurge && c->deleted < c->budget; i++) {
        rc = topic_purge_some(w, s->purge[i], c->budget, &c->deleted, &done);
        if (rc != 0)
            return rc;
        if (!done)
            break;
        pk[0] = 'P';
        put_be32(pk + 1, s->purge[i]);
        k.mv_data = pk;
        k.mv_size = sizeof(pk);
        rc = mdb_del(w->txn, s->dbi[DB_META], &k, NULL);
        if (rc != 0 && rc != MDB_NOTFOUND)
            return rc;
        c->purged = i + 1;
    }
    return 0;
}

static int retention_txn(struct wtxn *w, void *arg)
{
    struct ret_ctx *c = arg;
    struct store *s = w->s;
    MDB_cursor *mc;
    size_t j, n = s->ntopics;
    int rc;

    c->deleted = 0;
    c->purged = 0;
    c->freed = false;
    c->next_rr = s->rr;
    rc = purge_step(w, c);
    if (rc != 0 || n == 0)
        return rc;
    rc = mdb_cursor_open(w->txn, s->dbi[DB_MSGS], &mc);
    if (rc != 0)
        return rc;
    for (j = 0; j < n && c->deleted < c->budget; j++) {
        struct tmem *t = &s->topics[(s->rr + j) % n];

        rc = expire_msgs(w, t, mc, c);
        if (rc == 0)
            rc = expire_dedup(w, t, c);
        if (rc != 0)
            break;
        /* The next call starts after the last topic served here. */
        c->next_rr = (s->rr + j + 1) % n;
    }
    mdb_cursor_close(mc);
    return rc;
}

/*
 * One bounded retention transaction (see store.h and the file comment).
 * Returns 0 or a negative code; *deleted gets the records deleted. Writer
 * thread.
 */
int store_retention_run(struct store *s, uint64_t now_ns, size_t budget, size_t *deleted)
{
    struct ret_ctx c = {.now = now_ns};
    int rc;

    if (deleted != NULL)
        *deleted = 0;
    if (s == NULL)
        return -EINVAL;
    c.budget = budget != 0 ? budget : RETENTION_BUDGET_DEFAULT;
    for (;;) {
        rc = store_write(s, retention_txn, &c, true);
        if (rc != RMQ_ESTOREFULL || c.budget == 1)
            break;
        c.budget /= 2; /* at map_max: a smaller txn may still find free pages */
    }
    if (rc != 0)
        return rc;
    if (c.purged > 0) {
        memmove(s->purge, s->purge + c.purged, (s->npurge - c.purged) * sizeof(*s->purge));
        s->npurge -= c.purged;
    }
    if (s->ntopics > 0)
        s->rr = c.next_rr % s->ntopics;
    if (c.deleted > 0 || c.freed)
        s->freed = true;
    if (deleted != NULL)
        *deleted = c.deleted;
    return 0;
}
