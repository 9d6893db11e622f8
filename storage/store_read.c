/*
 * store_read.c - replay: reading a topic's messages in seq order, finding
 * the first seq at or after a time, and the last seq. Every call is one
 * short read txn on the caller's thread (any thread), so it sees one
 * committed snapshot: the topic's tstate record and its messages agree.
 *
 * A cursor walks one topic's keys in order:
 *
 *   msgs:  ... [6|912] | [7|40] [7|41] [7|42] ... [7|97] | [8|1] ...
 *                        ^ SET_RANGE (7|from)       ^ last_seq of 7: stop
 *
 * Time lookup: timestamps never decrease within a topic and the stored
 * seqs are contiguous (first_seq..last_seq), so a binary search over seq
 * with one point lookup per step finds the first ts >= T:
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

static int walk(struct store *s, MDB_txn *txn, uint32_t topic, const struct tstate *st,
                uint64_t from, size_t max_msgs, size_t max_bytes, store_read_fn fn, void *arg,
                uint64_t *next, size_t *delivered)
{
    uint8_t key[MSG_KEY_LEN];
    MDB_cursor *mc;
    MDB_val k = {sizeof(key), key}, v;
    struct store_msg m;
    size_t bytes = 0;
    int rc, frc;

    rc = mdb_cursor_open(txn, s->dbi[DB_MSGS], &mc);
    if (rc != 0)
        return store_err(rc);
    msg_key(key, topic, from);
    for (rc = mdb_cursor_get(mc, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(mc, &k, &v, MDB_NEXT)) {
        if (k.mv_size != MSG_KEY_LEN || get_be32(k.mv_data) != topic)
            break;
        if (v.mv_size < MSG_HDR_LEN) {
            rc = STORE_ECORRUPT;
            break;
        }
        m.seq = get_be64((const uint8_t *)k.mv_data + 4);
        if (m.seq > st->last_seq)
            break;
        m.ts_ns = get_be64(v.mv_data);
        m.data = (const uint8_t *)v.mv_data + MSG_HDR_LEN;
        m.len = v.mv_size - MSG_HDR_LEN;
        if (*delivered > 0 && max_bytes != 0 && bytes + m.len > max_bytes)
            break;
        frc = fn(arg, &m);
        if (frc < 0) {
            *next = m.seq;
            rc = frc;
            break;
        }
        (*delivered)++;
        bytes += m.len;
        *next = m.seq + 1;
        if (frc > 0 || *delivered == max_msgs || m.seq == st->last_seq)
            break;
    }
    mdb_cursor_close(mc);
    return rc == MDB_NOTFOUND ? 0 : store_err(rc);
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
static int ts_at(struct store *s, MDB_txn *txn, uint32_t topic, uint64_t seq, uint64_t *ts)
{
    uint8_t key[MSG_KEY_LEN];
    MDB_val k = {sizeof(key), key}, v;
    int rc;

    msg_key(key, topic, seq);
    rc = mdb_get(txn, s->dbi[DB_MSGS], &k, &v);
    if (rc == MDB_NOTFOUND || (rc == 0 && v.mv_size < MSG_HDR_LEN))
        return STORE_ECORRUPT; /* seqs first..last must all be there */
    if (rc != 0)
        return store_err(rc);
    *ts = get_be64(v.mv_data);
    return 0;
}

/*
 * First stored seq with ts >= ts_ns, or last_seq + 1 (see store.h).
 * Returns 0 or a negative code. Any thread.
 */
int store_seq_at_time(struct store *s, uint32_t topic, uint64_t ts_ns, uint64_t *seq)
{
    struct tstate st;
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
    lo = st.first_seq;
    hi = st.last_seq;
    while (hi - lo > 1) {
        mid = lo + (hi - lo) / 2;
        rc = ts_at(s, txn, topic, mid, &ts);
        if (rc != 0)
            goto out;
        if (ts >= ts_ns)
            hi = mid;
        else
            lo = mid;
    }
    *seq = hi;
out:
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
