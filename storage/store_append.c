/*
 * store_append.c - group commit: a batch of messages (any mix of topics)
 * in one write transaction, with seq assignment, deduplication and
 * count/bytes retention applied inside that same transaction.
 *
 * Per entry, in batch order (t = the entry's topic, st = t's state):
 *
 *   check topic/lengths --fail--> entry rc, nothing written, next entry
 *   ts  = max(entry ts, st.last_ts)              (time never goes back)
 *   dedup id, window > 0?  (t|id) in dedup and ts - its ts < window
 *                              --yes--> duplicate, original seq, next entry
 *   seq = st.last_seq + 1
 *   msgs    (t|seq)       <- ts | payload           (MDB_RESERVE, one copy)
 *   dedup   (t|id)        <- ts | seq
 *   dedupts (t|ts|id)     <- ""
 *   while over max_msgs or max_bytes: delete msgs (t|st.first_seq)
 *
 * then tstate records of the touched topics, then one commit.
 *
 * Map full: the txn is aborted (LMDB cannot continue a failed txn), the
 * map doubled and the whole batch redone. At map_max the batch is redone
 * as its longest prefix that fits (shorter on each failure) and the
 * entries after it fail with RMQ_ESTOREFULL:
 *
 *   attempt 1:  [e0 e1 e2 e3 e4 e5 e6 e7]   MAP_FULL at e5, cannot grow
 *   attempt 2:  [e0 e1 e2 e3 e4]            committed
 *   result:      0  0  0  0  0  FULL FULL FULL
 *
 * MDB_TXN_FULL (too many dirty pages for one txn) also shortens the
 * attempt, but the rest then goes on in the next txn instead of failing.
 *
 * Only the writer thread runs this file.
 */
#include "store_internal.h"

#define APPEND_REARM 4096 /* non-APPEND puts before MDB_APPEND is tried again */

/* Payload length stored in a msgs value, or STORE_ECORRUPT. */
static int msg_len(const MDB_val *v, size_t *len)
{
    if (v->mv_size < MSG_HDR_LEN)
        return STORE_ECORRUPT;
    *len = v->mv_size - MSG_HDR_LEN;
    return 0;
}

/*
 * Delete t's oldest message (t has one and is touched) and update t->st.
 * mc is a DB_MSGS cursor of w. 0 or an LMDB/store code. Writer thread.
 */
int msg_delete_first(struct wtxn *w, struct tmem *t, MDB_cursor *mc)
{
    uint8_t key[MSG_KEY_LEN];
    MDB_val k = {sizeof(key), key}, v;
    size_t len;
    int rc;

    (void)w;
    msg_key(key, t->id, t->st.first_seq);
    rc = mdb_cursor_get(mc, &k, &v, MDB_SET_KEY);
    if (rc == MDB_NOTFOUND)
        return STORE_ECORRUPT; /* the state says it is there */
    if (rc == 0)
        rc = msg_len(&v, &len);
    if (rc == 0)
        rc = mdb_cursor_del(mc, 0);
    if (rc != 0)
        return rc;
    t->st.msgs--;
    t->st.bytes = t->st.bytes >= len ? t->st.bytes - len : 0;
    t->st.first_seq++;
    if (t->st.msgs == 0) {
        t->st.first_seq = t->st.last_seq + 1;
        t->st.first_ts = 0;
        t->st.bytes = 0;
        return 0;
    }
    msg_key(key, t->id, t->st.first_seq);
    k.mv_data = key;
    k.mv_size = sizeof(key);
    rc = mdb_cursor_get(mc, &k, &v, MDB_SET_KEY);
    if (rc == MDB_NOTFOUND || (rc == 0 && v.mv_size < MSG_HDR_LEN))
        return STORE_ECORRUPT;
    if (rc != 0)
        return rc;
    t->st.first_ts = get_be64(v.mv_data);
    return 0;
}

/*
 * Delete dedup record (topic, id) if it still has timestamp ts, and the
 * expiry entry (topic, ts, id). 0 or an LMDB code. Writer thread.
 */
int dedup_delete(struct wtxn *w, uint32_t topic, const uint8_t *id, size_t idlen, uint64_t ts)
{
    uint8_t key[4 + 8 + STORE_DEDUP_ID_MAX];
    MDB_val k, v;
    int rc;

    if (idlen > STORE_DEDUP_ID_MAX)
        return STORE_ECORRUPT;
    put_be32(key, topic);
    memcpy(key + 4, id, idlen);
    k.mv_data = key;
    k.mv_size = 4 + idlen;
    rc = mdb_get(w->txn, w->s->dbi[DB_DEDUP], &k, &v);
    if (rc == 0 && v.mv_size == DEDUP_VAL_LEN && get_be64(v.mv_data) == ts)
        rc = mdb_del(w->txn, w->s->dbi[DB_DEDUP], &k, NULL);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return rc;
    put_be64(key + 4, ts);
    memcpy(key + 12, id, idlen);
    k.mv_data = key;
    k.mv_size = 12 + idlen;
    rc = mdb_del(w->txn, w->s->dbi[DB_DEDUPTS], &k, NULL);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Checks that need no I/O: the entry's own rc, or 0. */
static int entry_check(const struct tmem *t, const struct store_append *e)
{
    if (t == NULL)
        return RMQ_ENOTFOUND;
    if (e->data == NULL && e->len > 0)
        return -EINVAL;
    if (e->dedup_len > STORE_DEDUP_ID_MAX || (e->dedup_id == NULL && e->dedup_len > 0))
        return -EINVAL;
    if (e->len > STORE_MSG_MAX || (t->max_bytes != 0 && e->len > t->max_bytes))
        return -EMSGSIZE;
    return 0;
}

/*
 * Look the entry's dedup id up. *dup is set (with the original seq in
 * e->seq) when it is within the window; an expired record's expiry entry
 * is deleted so that the new one replaces it. 0 or an LMDB code.
 */
static int dedup_check(struct wtxn *w, struct tmem *t, struct store_append *e, uint64_t ts,
                       uint8_t *dkey, bool *dup)
{
    MDB_val k = {4 + e->dedup_len, dkey}, v;
    uint64_t ots;
    int rc;

    *dup = false;
    put_be32(dkey, t->id);
    memcpy(dkey + 4, e->dedup_id, e->dedup_len);
    rc = mdb_get(w->txn, w->s->dbi[DB_DEDUP], &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    if (v.mv_size != DEDUP_VAL_LEN)
        return STORE_ECORRUPT;
    ots = get_be64(v.mv_data);
    if (ts >= ots && ts - ots < t->dedup_window_ns) {
        e->seq = get_be64((const uint8_t *)v.mv_data + 8);
        *dup = true;
        return 0;
    }
    return dedup_delete(w, t->id, e->dedup_id, e->dedup_len, ots);
}

static int dedup_store(struct wtxn *w, struct tmem *t, const struct store_append *e, uint64_t ts,
                       uint64_t seq, uint8_t *dkey)
{
    uint8_t val[DEDUP_VAL_LEN], tkey[4 + 8 + STORE_DEDUP_ID_MAX];
    MDB_val k = {4 + e->dedup_len, dkey}, v = {sizeof(val), val};
    int rc;

    put_be64(val, ts);
    put_be64(val + 8, seq);
    rc = mdb_put(w->txn, w->s->dbi[DB_DEDUP], &k, &v, 0);
    if (rc != 0)
        return rc;
    put_be32(tkey, t->id);
    put_be64(tkey + 4, ts);
    memcpy(tkey + 12, e->dedup_id, e->dedup_len);
    k.mv_data = tkey;
    k.mv_size = 12 + e->dedup_len;
    v.mv_data = NULL;
    v.mv_size = 0;
    return mdb_put(w->txn, w->s->dbi[DB_DEDUPTS], &k, &v, 0);
}

/*
 * Apply one entry in w. Entry-level failures go to e->rc and return 0;
 * a non-zero return is an LMDB/store code that dooms the whole txn.
 */
static int append_one(struct wtxn *w, MDB_cursor *mc, struct store_append *e, bool *deleted)
{
    uint8_t key[MSG_KEY_LEN], dkey[4 + STORE_DEDUP_ID_MAX];
    struct tmem *t = topic_find(w->s, e->topic);
    MDB_val k = {sizeof(key), key}, v;
    bool dedup, dup;
    uint64_t ts, seq;
    unsigned flags;
    int rc;

    e->rc = entry_check(t, e);
    e->duplicate = false;
    e->seq = 0;
    if (e->rc != 0)
        return 0;
    ts = e->ts_ns > t->st.last_ts ? e->ts_ns : t->st.last_ts;
    dedup = e->dedup_len > 0 && t->dedup_window_ns > 0;
    if (dedup) {
        rc = dedup_check(w, t, e, ts, dkey, &dup);
        if (rc != 0 || dup) {
            e->duplicate = dup;
            return rc;
        }
    }

    wtxn_touch(w, t);
    seq = t->st.last_seq + 1;
    msg_key(key, t->id, seq);
    flags = MDB_RESERVE;
    if (t->append_hint)
        flags |= MDB_APPEND;
    v.mv_size = MSG_HDR_LEN + e->len;
    rc = mdb_cursor_put(mc, &k, &v, flags);
    if (rc == MDB_KEYEXIST && (flags & MDB_APPEND)) {
        /* Another topic's keys sort after ours: a plain insert. */
        t->append_hint = false;
        v.mv_size = MSG_HDR_LEN + e->len;
        rc = mdb_cursor_put(mc, &k, &v, MDB_RESERVE);
    }
    if (rc != 0)
        return rc;
    put_be64(v.mv_data, ts);
    if (e->len > 0)
        memcpy((uint8_t *)v.mv_data + MSG_HDR_LEN, e->data, e->len);
    if (!t->append_hint && (seq & (APPEND_REARM - 1)) == 0)
        t->append_hint = true;

    if (dedup) {
        rc = dedup_store(w, t, e, ts, seq, dkey);
        if (rc != 0)
            return rc;
    }
    t->st.msgs++;
    t->st.bytes += e->len;
    if (t->st.msgs == 1) {
        t->st.first_seq = seq;
        t->st.first_ts = ts;
    }
    t->st.last_seq = seq;
    t->st.last_ts = ts;
    while ((t->max_msgs != 0 && t->st.msgs > t->max_msgs) ||
           (t->max_bytes != 0 && t->st.bytes > t->max_bytes)) {
        rc = msg_delete_first(w, t, mc);
        if (rc != 0)
            return rc;
        *deleted = true;
    }
    e->seq = seq;
    return 0;
}

/*
 * One attempt: entries a[0..k) in one txn, committed. On failure returns
 * the LMDB/store code with *fail_at = the entry that hit it (k if it was
 * the commit); the txn is gone and the cache restored.
 */
static int batch_txn(struct store *s, struct store_append *a, size_t k, size_t *fail_at)
{
    bool deleted = false;
    struct wtxn w;
    MDB_cursor *mc;
    size_t i;
    int rc;

    *fail_at = 0;
    rc = wtxn_begin(s, &w);
    if (rc != 0)
        return rc;
    rc = mdb_cursor_open(w.txn, s->dbi[DB_MSGS], &mc);
    if (rc != 0) {
        wtxn_abort(&w);
        return rc;
    }
    for (i = 0; i < k; i++) {
        rc = append_one(&w, mc, &a[i], &deleted);
        if (rc != 0) {
            *fail_at = i;
            mdb_cursor_close(mc);
            wtxn_abort(&w);
            return rc;
        }
    }
    mdb_cursor_close(mc);
    *fail_at = k;
    rc = wtxn_commit(&w);
    if (rc == 0 && deleted)
        s->freed = true;
    return rc;
}

/* Entries that will not be attempted: their own error if they have one, else rc. */
static void fail_rest(struct store *s, struct store_append *a, size_t n, int rc)
{
    size_t i;

    for (i = 0; i < n; i++) {
        a[i].duplicate = false;
        a[i].seq = 0;
        a[i].rc = entry_check(topic_find(s, a[i].topic), &a[i]);
        if (a[i].rc == 0)
            a[i].rc = rc;
    }
}

/*
 * Append a batch in one txn (see store.h and the file comment). Returns 0
 * when every entry has rc 0, else the first failing entry's rc. Writer
 * thread; the entries' inputs are borrowed.
 */
int store_append_batch(struct store *s, struct store_append *a, size_t n)
{
    size_t start = 0, i;
    int rc;

    if (s == NULL || (a == NULL && n > 0))
        return -EINVAL;
    while (start < n) {
        size_t k = n - start, fail_at;
        int shortened_by = 0;

        for (;;) {
            rc = batch_txn(s, a + start, k, &fail_at);
            if (rc == 0)
                break;
            if (rc == MDB_MAP_FULL && store_grow(s) == 0)
                continue;
            if (rc == MDB_MAP_FULL && s->freed && store_bump(s) == 0)
                continue;
            /* fail_at 0: the first entry alone does not fit, no prefix will. */
            if ((rc == MDB_MAP_FULL || rc == MDB_TXN_FULL) && k > 1 && fail_at > 0) {
                shortened_by = rc;
                k = fail_at < k ? fail_at : k / 2;
                continue;
            }
            break;
        }
        if (rc == MDB_TXN_FULL) {
            /* One entry alone is too big for a txn: fail it, go on. */
            fail_rest(s, a + start, 1, store_err(rc));
            start++;
            continue;
        }
        if (rc != 0) {
            fail_rest(s, a + start, n - start, store_err(rc));
            break;
        }
        start += k;
        if (shortened_by == MDB_MAP_FULL) {
            fail_rest(s, a + start, n - start, RMQ_ESTOREFULL);
            break;
        }
    }
    for (i = 0; i < n; i++) {
        if (a[i].rc != 0)
            return a[i].rc;
    }
    return 0;
}
