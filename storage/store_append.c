/*
 * store_append.c - group commit: a batch of messages (any mix of topics)
 * in one write transaction, with seq assignment, deduplication, chunking
 * and count/bytes retention applied inside that same transaction.
 *
 * Pass 1, per entry in batch order (t = the entry's topic, st = t's state):
 *
 *   check topic/lengths --fail--> entry rc, nothing written, next entry
 *   ts  = max(entry ts, st.last_ts)              (time never goes back)
 *   dedup id, window > 0?  (t|id) in dedup and ts - its ts < window
 *                              --yes--> duplicate, original seq, next entry
 *   seq = st.last_seq + 1, st.msgs/bytes/last_* updated
 *   dedup   (t|id)        <- ts | seq
 *   dedupts (t|ts|id)     <- ""
 *   entry joins t's pending list (struct pend_ent: next, ts)
 *
 * Pass 2, per touched topic: its pending entries, in order, are packed
 * into chunks of at most CHUNK_MSGS_MAX entries and CHUNK_DATA_MAX
 * payload bytes (a bigger message alone), each one put with MDB_RESERVE
 * (one copy) and, while t's keys sort last, MDB_APPEND:
 *
 *   batch  [a1 b1 a2 a3 b2 ... a300]   ->  msgs (a|1): a1..a256
 *                                           msgs (a|257): a257..a300
 *                                           msgs (b|1): b1 b2 ...
 *
 * Pass 3, per touched topic: while over max_msgs or max_bytes, drop the
 * oldest message (msgs_trim(): advance first_seq; delete a chunk once
 * none of its entries is live). Trimming once after the batch gives the
 * same result as trimming after each entry: both drop the shortest head
 * that brings the topic within its limits. Then tstate records, commit.
 *
 * A batch never merges into the topic's last chunk from an earlier
 * commit: that chunk's pages are not dirty in this txn, so LMDB would
 * copy it whole (up to 1 MiB) to add one message, and a growing last
 * record forces middle page splits that leave leaf pages half empty.
 * A one-message batch therefore makes a one-entry chunk, which costs
 * what the old one-record-per-message layout cost (README.md, measured).
 *
 * Map full (at map_max) or MDB_TXN_FULL: the txn is aborted (LMDB cannot
 * continue a failed txn) and the longest prefix of the batch that fits
 * is found by binary search with probe txns that are aborted instead of
 * committed (no I/O), then committed; a prefix may end inside what would
 * have been one chunk. With MAP_FULL the entries after it fail with
 * RMQ_ESTOREFULL, and since the failed attempts were aborted, nothing of
 * them is visible:
 *
 *   attempt:  [e0 e1 e2 e3 e4 e5 e6 e7]   MAP_FULL (a chunk holding e0..e7)
 *   probes:   [e0 e1 e2 e3] ok, [e0..e5] full, [e0..e4] ok
 *   commit:   [e0 e1 e2 e3 e4]
 *   result:    0  0  0  0  0  FULL FULL FULL
 *
 * With MDB_TXN_FULL the rest goes on in the next txn instead of failing.
 *
 * Only the writer thread runs this file.
 */
#include "store_internal.h"

#include <stdlib.h>

#define APPEND_REARM 64 /* plain chunk puts before MDB_APPEND is tried again */
#define NONE SIZE_MAX

static bool trim_due(const struct tmem *t, uint64_t age_cutoff, bool limits)
{
    if (limits && ((t->max_msgs != 0 && t->st.msgs > t->max_msgs) ||
                   (t->max_bytes != 0 && t->st.bytes > t->max_bytes)))
        return true;
    return age_cutoff != 0 && t->st.first_ts < age_cutoff;
}

/*
 * Drop messages from t's head while due (see store_internal.h): first_seq
 * advances, msgs and bytes go down by exactly the dropped messages, and a
 * chunk whose entries are all dropped is deleted. 0 or an LMDB/store
 * code. Writer thread.
 */
int msgs_trim(struct wtxn *w, struct tmem *t, MDB_cursor *mc, uint64_t age_cutoff, bool limits,
              size_t budget, size_t *dropped, bool *freed)
{
    struct chunk c;
    uint32_t j, len;
    int rc;

    while (t->st.msgs > 0 && *dropped < budget && trim_due(t, age_cutoff, limits)) {
        wtxn_touch(w, t);
        rc = chunk_seek(mc, t->id, t->st.first_seq, &c);
        if (rc != 0)
            return rc;
        j = (uint32_t)(t->st.first_seq - c.first);
        while (j < c.count && t->st.msgs > 0 && *dropped < budget &&
               trim_due(t, age_cutoff, limits)) {
            len = chunk_end(&c, j) - chunk_start(&c, j);
            t->st.msgs--;
            t->st.bytes = t->st.bytes >= len ? t->st.bytes - len : 0;
            t->st.first_seq++;
            (*dropped)++;
            if (++j < c.count)
                t->st.first_ts = chunk_ts(&c, j);
        }
        if (t->st.msgs == 0) {
            t->st.first_seq = t->st.last_seq + 1;
            t->st.first_ts = 0;
            t->st.bytes = 0;
        } else if (j < c.count) {
            break; /* the chunk still holds live entries */
        }
        rc = mdb_cursor_del(mc, 0);
        if (rc != 0)
            return rc;
        *freed = true;
        if (t->st.msgs == 0)
            break;
        rc = chunk_seek(mc, t->id, t->st.first_seq, &c);
        if (rc != 0)
            return rc;
        t->st.first_ts = chunk_ts(&c, (uint32_t)(t->st.first_seq - c.first));
    }
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
 * Pass 1 for entry i (e = &a[i]) in w. Entry-level failures go to e->rc
 * and return 0; a non-zero return is an LMDB/store code that dooms the
 * whole txn. An accepted entry joins its topic's pending list.
 */
static int append_one(struct wtxn *w, struct store_append *e, size_t i)
{
    uint8_t dkey[4 + STORE_DEDUP_ID_MAX];
    struct store *s = w->s;
    struct tmem *t = topic_find(s, e->topic);
    bool dedup, dup;
    uint64_t ts, seq;
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
    if (dedup) {
        rc = dedup_store(w, t, e, ts, seq, dkey);
        if (rc != 0)
            return rc;
    }
    s->pend[i].next = NONE;
    s->pend[i].ts = ts;
    if (t->pend_first == NONE)
        t->pend_first = i;
    else
        s->pend[t->pend_last].next = i;
    t->pend_last = i;
    t->st.msgs++;
    t->st.bytes += e->len;
    if (t->st.msgs == 1) {
        t->st.first_seq = seq;
        t->st.first_ts = ts;
    }
    t->st.last_seq = seq;
    t->st.last_ts = ts;
    e->seq = seq;
    return 0;
}

/*
 * Put one chunk of t: c pending entries from a[i] on (data payload bytes
 * in all), keyed by a[i].seq. 0 or an LMDB code.
 */
static int chunk_put(struct wtxn *w, MDB_cursor *mc, struct tmem *t, const struct store_append *a,
                     size_t i, uint32_t c, size_t data)
{
    const struct pend_ent *pend = w->s->pend;
    uint8_t key[MSG_KEY_LEN], *p, *d;
    MDB_val k = {sizeof(key), key}, v;
    size_t size = CHUNK_HDR_LEN + (size_t)c * CHUNK_IDX_LEN + data;
    uint32_t j, end = 0;
    int rc;

    msg_key(key, t->id, a[i].seq);
    v.mv_size = size;
    rc = mdb_cursor_put(mc, &k, &v, MDB_RESERVE | (t->append_hint ? MDB_APPEND : 0));
    if (rc == MDB_KEYEXIST && t->append_hint) {
        /* Another topic's keys sort after ours: a plain insert. */
        t->append_hint = false;
        t->append_misses = 0;
        v.mv_size = size;
        rc = mdb_cursor_put(mc, &k, &v, MDB_RESERVE);
    }
    if (rc != 0)
        return rc;
    if (!t->append_hint && ++t->append_misses >= APPEND_REARM)
        t->append_hint = true;
    p = v.mv_data;
    put_be32(p, c);
    p += CHUNK_HDR_LEN;
    d = p + (size_t)c * CHUNK_IDX_LEN;
    for (j = 0; j < c; j++, i = pend[i].next) {
        if (a[i].len > 0)
            memcpy(d + end, a[i].data, a[i].len);
        end += (uint32_t)a[i].len;
        put_be64(p, pend[i].ts);
        put_be32(p + 8, end);
        p += CHUNK_IDX_LEN;
    }
    return 0;
}

static size_t chunk_size(uint32_t c, size_t data)
{
    return CHUNK_HDR_LEN + (size_t)c * CHUNK_IDX_LEN + data;
}

/* Bytes a msgs value of v bytes occupies: its share of a leaf page, or whole overflow pages. */
static size_t val_cost(const struct store *s, size_t v)
{
    if (v <= s->inline_max)
        return v + LMDB_LEAF_NODE + MSG_KEY_LEN;
    return (v + LMDB_PAGE_HDR + s->psize - 1) / s->psize * s->psize;
}

/*
 * How many of the c entries (data payload bytes) from a[i] on to put in
 * the next chunk (see store_internal.h): all of them, a prefix of at most
 * inline_cap bytes when they would not fill a page, or a prefix that
 * fills whole overflow pages when the rest then costs less on its own
 * (rest that fits leaf nodes: its bytes; else its overflow pages).
 * *taken_data gets the prefix's payload bytes.
 */
static uint32_t chunk_cut(const struct store *s, const struct store_append *a, size_t i, uint32_t c,
                          size_t data, size_t *taken_data)
{
    const struct pend_ent *pend = s->pend;
    size_t v = chunk_size(c, data), target, d = 0, rest, pages, first = i;
    uint32_t k = 0, j;
    bool rest_inline = true;

    *taken_data = data;
    if (v <= s->inline_cap)
        return c;
    pages = (v + LMDB_PAGE_HDR) / s->psize;
    target = pages > 0 ? pages * s->psize - LMDB_PAGE_HDR : s->inline_cap;
    for (j = 0; j < c; j++, i = pend[i].next) {
        if (k == j && chunk_size(k + 1, d + a[i].len) <= target) {
            d += a[i].len;
            k++;
        } else if (chunk_size(1, a[i].len) > s->inline_max) {
            rest_inline = false;
        }
    }
    if (k == c)
        return c;
    if (k == 0) {
        /* The first entry alone is over target: alone, unless overflow pages suit it. */
        if (pages == 0 && chunk_size(1, a[first].len) <= s->inline_max) {
            *taken_data = a[first].len;
            return 1;
        }
        return c;
    }
    if (pages > 0) {
        rest = chunk_size(c - k, data - d);
        if (rest_inline)
            rest += (rest / s->inline_cap + 1) * (LMDB_LEAF_NODE + MSG_KEY_LEN + 2);
        else
            rest = val_cost(s, rest);
        if (val_cost(s, chunk_size(k, d)) + rest >= val_cost(s, v))
            return c;
    }
    *taken_data = d;
    return k;
}

/*
 * Pass 2 for t: pack its pending entries into chunks. On failure
 * *fail_hi is a prefix length known not to fit (the failing chunk's last
 * entry + 1). 0 or an LMDB code.
 */
static int topic_flush(struct wtxn *w, MDB_cursor *mc, struct tmem *t, const struct store_append *a,
                       size_t *fail_hi)
{
    const struct pend_ent *pend = w->s->pend;
    size_t i = t->pend_first, j, last, data;
    uint32_t c, n;
    int rc;

    while (i != NONE) {
        for (j = i, c = 0, data = 0;
             j != NONE && c < CHUNK_MSGS_MAX && (c == 0 || data + a[j].len <= CHUNK_DATA_MAX);
             j = pend[j].next) {
            data += a[j].len;
            c++;
        }
        c = chunk_cut(w->s, a, i, c, data, &data);
        for (j = i, last = i, n = 0; n < c; n++, j = pend[j].next)
            last = j;
        rc = chunk_put(w, mc, t, a, i, c, data);
        if (rc != 0) {
            *fail_hi = last + 1;
            return rc;
        }
        i = j;
    }
    return 0;
}

static void pend_reset(struct wtxn *w)
{
    struct tmem *t;

    for (t = w->touched; t != NULL; t = t->touched_next) {
        t->pend_first = NONE;
        t->pend_last = NONE;
    }
}

/*
 * One attempt: entries a[0..k) in one txn, committed, or with probe set
 * only tried and aborted (nothing written: the prefix fits). On failure
 * returns the LMDB/store code with *fail_hi = a prefix length that does
 * not fit (k if it was trimming or the commit); the txn is gone and the
 * cache restored.
 */
static int batch_txn(struct store *s, struct store_append *a, size_t k, bool probe, size_t *fail_hi)
{
    bool freed = false;
    struct wtxn w;
    struct tmem *t;
    MDB_cursor *mc;
    size_t i, dropped = 0;
    int rc;

    *fail_hi = k;
    rc = wtxn_begin(s, &w);
    if (rc != 0)
        return rc;
    rc = mdb_cursor_open(w.txn, s->dbi[DB_MSGS], &mc);
    if (rc != 0) {
        wtxn_abort(&w);
        return rc;
    }
    for (i = 0; i < k && rc == 0; i++) {
        rc = append_one(&w, &a[i], i);
        if (rc != 0)
            *fail_hi = i + 1;
    }
    for (t = w.touched; t != NULL && rc == 0; t = t->touched_next) {
        if (t->pend_first != NONE)
            rc = topic_flush(&w, mc, t, a, fail_hi);
    }
    for (t = w.touched; t != NULL && rc == 0; t = t->touched_next)
        rc = msgs_trim(&w, t, mc, 0, true, SIZE_MAX, &dropped, &freed);
    pend_reset(&w);
    mdb_cursor_close(mc);
    if (rc != 0 || probe) {
        wtxn_abort(&w);
        return rc;
    }
    rc = wtxn_commit(&w);
    if (rc == 0 && freed)
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

/* Room for n entries in s->pend. 0 or -ENOMEM. */
static int pend_reserve(struct store *s, size_t n)
{
    struct pend_ent *np;

    if (n <= s->pend_cap)
        return 0;
    if (n > SIZE_MAX / sizeof(*np))
        return -ENOMEM;
    np = realloc(s->pend, n * sizeof(*np));
    if (np == NULL)
        return -ENOMEM;
    s->pend = np;
    s->pend_cap = n;
    return 0;
}

static bool is_full(int rc)
{
    return rc == MDB_MAP_FULL || rc == MDB_TXN_FULL;
}

/*
 * The longest prefix of a[0..hi) that fits in one txn (hi does not), by
 * probe txns. Returns 0 with *len (0: not even one entry fits) or a
 * fatal LMDB/store code.
 */
static int prefix_search(struct store *s, struct store_append *a, size_t hi, size_t *len)
{
    size_t lo = 0, mid, fh;
    int rc;

    while (hi - lo > 1) {
        mid = lo + (hi - lo) / 2;
        rc = batch_txn(s, a, mid, true, &fh);
        if (rc == 0)
            lo = mid;
        else if (is_full(rc))
            hi = mid;
        else
            return rc;
    }
    *len = lo;
    return 0;
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
    rc = pend_reserve(s, n);
    if (rc != 0) {
        fail_rest(s, a, n, rc);
        start = n;
    }
    while (start < n) {
        size_t k = n - start, fail_hi, len;
        int shortened_by = 0;

        for (;;) {
            rc = batch_txn(s, a + start, k, false, &fail_hi);
            if (rc == 0)
                break;
            if (rc == MDB_MAP_FULL && store_grow(s) == 0)
                continue;
            if (rc == MDB_MAP_FULL && s->freed && store_bump(s) == 0)
                continue;
            if (!is_full(rc))
                break;
            shortened_by = rc;
            rc = prefix_search(s, a + start, fail_hi < k ? fail_hi : k, &len);
            if (rc != 0)
                break;
            if (len == 0) {
                rc = shortened_by; /* the first entry alone does not fit */
                break;
            }
            k = len;
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
