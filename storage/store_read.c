/*
 * store_read.c - replay: reading a topic's messages in seq order, finding
 * the first seq at or after a time, and the last seq; also the chunk
 * decoder and seek the writer shares. Every reader call is one short read
 * txn on the caller's thread (any thread), so it sees one committed
 * snapshot: the topic's tstate record and its chunks agree.
 *
 * A topic's messages are chunks keyed by their first seq (store_internal.h);
 * its live seqs are tstate first_seq..last_seq, so the head chunk may
 * still hold entries that retention dropped (below first_seq):
 *
 *   msgs:  ... [6|900] | [7|1: 1..256] [7|257: 257..300] [7|301: 301..301] | [8|1] ...
 *                          ^ dead up to first_seq = 40   ^ SET_RANGE(7|270) lands
 *                                                          on [7|301]: PREV
 *
 * To find seq x: SET_RANGE (7|x); unless that key is x itself, the chunk
 * holding x is the one before it. Then walk the entries of the chunk and
 * MDB_NEXT chunks, each of which must start where the previous one ended.
 *
 * Time lookup: timestamps never decrease within a topic and the stored
 * seqs are contiguous (first_seq..last_seq), so a binary search over seq
 * with one point lookup (chunk seek, then the index) per step finds the
 * first ts >= T:
 *
 *   seq  40  41  42  43  44  45          T = 1500
 *   ts  1000 1000 1400 1500 1500 1900    -> 43
 */
#include "store_internal.h"

/* The tstate of topic in txn; RMQ_ENOTFOUND if no such topic. */
static int state_get(struct store *s, MDB_txn *txn, uint32_t topic, struct tstate *st)
{
    uint8_t idb[4];
    MDB_val k = {sizeof(idb), idb}, v;
    int rc;

    put_be32(idb, topic);
    rc = mdb_get(txn, s->dbi[DB_TSTATE], &k, &v);
    if (rc != 0)
        return store_err(rc);
    return tstate_decode(&v, st);
}

/* ---- Chunks ---- */

/*
 * Decode and check chunk record (k, v) of topic (see store_internal.h).
 * Returns 0, RMQ_ENOTFOUND if k is not topic's, or STORE_ECORRUPT. Any
 * thread; *c points into v.
 */
int chunk_decode(uint32_t topic, const MDB_val *k, const MDB_val *v, struct chunk *c)
{
    const uint8_t *p = v->mv_data;
    size_t hdr;
    uint32_t j, end, prev = 0;

    if (k->mv_size != MSG_KEY_LEN || get_be32(k->mv_data) != topic)
        return RMQ_ENOTFOUND;
    if (v->mv_size < CHUNK_HDR_LEN)
        return STORE_ECORRUPT;
    c->first = get_be64((const uint8_t *)k->mv_data + 4);
    c->count = get_be32(p);
    if (c->count == 0 || c->count > CHUNK_MSGS_MAX ||
        (v->mv_size - CHUNK_HDR_LEN) / CHUNK_IDX_LEN < c->count)
        return STORE_ECORRUPT;
    hdr = CHUNK_HDR_LEN + (size_t)c->count * CHUNK_IDX_LEN;
    c->idx = p + CHUNK_HDR_LEN;
    c->data = p + hdr;
    for (j = 0; j < c->count; j++) {
        end = chunk_end(c, j);
        if (end < prev)
            return STORE_ECORRUPT;
        prev = end;
    }
    if (v->mv_size - hdr != prev || c->first == 0 || c->first + c->count < c->first)
        return STORE_ECORRUPT;
    return 0;
}

/*
 * Position mc on topic's chunk holding seq and decode it. Returns 0,
 * STORE_ECORRUPT if no chunk holds seq (the caller's state says one
 * does), or an LMDB code. Any thread.
 */
int chunk_seek(MDB_cursor *mc, uint32_t topic, uint64_t seq, struct chunk *c)
{
    uint8_t key[MSG_KEY_LEN];
    MDB_val k = {sizeof(key), key}, v;
    int rc;

    msg_key(key, topic, seq);
    rc = mdb_cursor_get(mc, &k, &v, MDB_SET_RANGE);
    if (rc == 0 && k.mv_size == MSG_KEY_LEN && memcmp(k.mv_data, key, MSG_KEY_LEN) == 0)
        return chunk_decode(topic, &k, &v, c) == 0 ? 0 : STORE_ECORRUPT;
    if (rc == 0)
        rc = mdb_cursor_get(mc, &k, &v, MDB_PREV);
    else if (rc == MDB_NOTFOUND)
        rc = mdb_cursor_get(mc, &k, &v, MDB_LAST);
    if (rc == MDB_NOTFOUND)
        return STORE_ECORRUPT;
    if (rc != 0)
        return rc;
    if (chunk_decode(topic, &k, &v, c) != 0 || seq < c->first || seq - c->first >= c->count)
        return STORE_ECORRUPT;
    return 0;
}

/* ---- Reads ---- */

static int walk(struct store *s, MDB_txn *txn, uint32_t topic, const struct tstate *st,
                uint64_t from, size_t max_msgs, size_t max_bytes, store_read_fn fn, void *arg,
                uint64_t *next, size_t *delivered)
{
    MDB_cursor *mc;
    MDB_val k, v;
    struct store_msg m;
    struct chunk c;
    size_t bytes = 0;
    uint32_t j;
    int rc, frc;

    rc = mdb_cursor_open(txn, s->dbi[DB_MSGS], &mc);
    if (rc != 0)
        return store_err(rc);
    rc = chunk_seek(mc, topic, from, &c);
    m.seq = from;
    j = rc == 0 ? (uint32_t)(from - c.first) : 0;
    while (rc == 0) {
        for (; j < c.count; j++, m.seq++) {
            uint32_t start = chunk_start(&c, j);

            m.ts_ns = chunk_ts(&c, j);
            m.data = c.data + start;
            m.len = chunk_end(&c, j) - start;
            if (*delivered > 0 && max_bytes != 0 && bytes + m.len > max_bytes)
                goto out;
            frc = fn(arg, &m);
            if (frc < 0) {
                *next = m.seq;
                rc = frc;
                goto out;
            }
            (*delivered)++;
            bytes += m.len;
            *next = m.seq + 1;
            if (frc > 0 || *delivered == max_msgs || m.seq == st->last_seq)
                goto out;
        }
        /* The next chunk must start right after this one. */
        rc = mdb_cursor_get(mc, &k, &v, MDB_NEXT);
        if (rc == 0)
            rc = chunk_decode(topic, &k, &v, &c);
        if (rc == 0 && c.first != m.seq)
            rc = STORE_ECORRUPT;
        if (rc == MDB_NOTFOUND || rc == RMQ_ENOTFOUND)
            rc = STORE_ECORRUPT; /* the state says seq m.seq is stored */
        j = 0;
    }
out:
    mdb_cursor_close(mc);
    return store_err(rc);
}

/*
 * Deliver messages of topic from from_seq to fn (see store.h). Returns
 * the count or a negative code; *next_seq is where to go on. Any thread;
 * the bytes fn sees are borrowed for the call.
 */
ssize_t store_read(struct store *s, uint32_t topic, uint64_t from_seq, size_t max_msgs,
                   size_t max_bytes, store_read_fn fn, void *arg, uint64_t *next_seq)
{
    struct tstate st;
    MDB_txn *txn;
    uint64_t from, next = from_seq;
    size_t delivered = 0;
    int rc;

    if (s == NULL || fn == NULL || max_msgs == 0)
        return -EINVAL;
    rc = rtxn_begin(s, &txn);
    if (rc != 0)
        return rc;
    rc = state_get(s, txn, topic, &st);
    if (rc == 0) {
        from = from_seq > st.first_seq ? from_seq : st.first_seq;
        next = from > st.last_seq + 1 ? from : st.last_seq + 1;
        if (st.msgs > 0 && from <= st.last_seq) {
            next = from;
            rc = walk(s, txn, topic, &st, from, max_msgs, max_bytes, fn, arg, &next, &delivered);
        }
    }
    rtxn_end(s, txn);
    if (next_seq != NULL)
        *next_seq = next;
    return rc != 0 ? rc : (ssize_t)delivered;
}

/* Timestamp of message (topic, seq), which the state says exists. */
static int ts_at(MDB_cursor *mc, uint32_t topic, uint64_t seq, uint64_t *ts)
{
    struct chunk c;
    int rc;

    rc = chunk_seek(mc, topic, seq, &c);
    if (rc != 0)
        return store_err(rc);
    *ts = chunk_ts(&c, (uint32_t)(seq - c.first));
    return 0;
}

/*
 * First stored seq with ts >= ts_ns, or last_seq + 1 (see store.h).
 * Returns 0 or a negative code. Any thread.
 */
int store_seq_at_time(struct store *s, uint32_t topic, uint64_t ts_ns, uint64_t *seq)
{
    struct tstate st;
    MDB_cursor *mc = NULL;
    MDB_txn *txn;
    uint64_t lo, hi, mid, ts = 0;
    int rc;

    if (s == NULL || seq == NULL)
        return -EINVAL;
    rc = rtxn_begin(s, &txn);
    if (rc != 0)
        return rc;
    rc = state_get(s, txn, topic, &st);
    if (rc != 0)
        goto out;
    if (st.msgs == 0 || ts_ns > st.last_ts) {
        *seq = st.last_seq + 1;
        goto out;
    }
    if (ts_ns <= st.first_ts) {
        *seq = st.first_seq;
        goto out;
    }
    /* ts(lo) < ts_ns <= ts(hi): the answer is in (lo, hi]. */
    rc = mdb_cursor_open(txn, s->dbi[DB_MSGS], &mc);
    if (rc != 0) {
        rc = store_err(rc);
        goto out;
    }
    lo = st.first_seq;
    hi = st.last_seq;
    while (hi - lo > 1) {
        mid = lo + (hi - lo) / 2;
        rc = ts_at(mc, topic, mid, &ts);
        if (rc != 0)
            goto out;
        if (ts >= ts_ns)
            hi = mid;
        else
            lo = mid;
    }
    *seq = hi;
out:
    if (mc != NULL)
        mdb_cursor_close(mc);
    rtxn_end(s, txn);
    return rc;
}

/* The last seq ever assigned in topic (0: none). 0 or a negative code. Any thread. */
int store_last_seq(struct store *s, uint32_t topic, uint64_t *seq)
{
    struct tstate st;
    MDB_txn *txn;
    int rc;

    if (s == NULL || seq == NULL)
        return -EINVAL;
    rc = rtxn_begin(s, &txn);
    if (rc != 0)
        return rc;
    rc = state_get(s, txn, topic, &st);
    rtxn_end(s, txn);
    if (rc == 0)
        *seq = st.last_seq;
    return rc;
}
