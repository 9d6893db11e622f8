/*
 * store_topic.c - topic definitions: validation, the definition record,
 * the writer's topic cache, add/remove/get/list/info, and the purge of a
 * removed topic's data.
 *
 * Definition record (DB_TOPICS, key = id u32):
 *
 *   +---------+----------+-----------+------------+--------------+
 *   | ver u32 | max_msgs | max_bytes | max_age_ns | dedup_window |  (u64 each)
 *   +---------+----------+-----------+------------+--------------+
 *   | name_len u8 | name ... | npatterns u8 | { len u16 | pattern } x n |
 *   +-------------+----------+--------------+------------------------------+
 *
 * A topic is written as four records in one txn: tnames (name -> id),
 * topics (id -> definition), tstate (id -> counters, see store.c) and
 * meta "next_id". Ids grow by one and are never reused, so stale data of a
 * removed topic (purged in the background) can never appear under a new
 * topic of the same name.
 *
 * The cache (struct store.topics) holds one struct tmem per live topic,
 * sorted by id (new ids are the largest, so adding appends); it is the
 * writer thread's, and is changed only after a successful commit. Reader
 * calls never look at it: they read the records in their own read txn.
 */
#include "store_internal.h"

#include <stdlib.h>

#define TOPIC_REC_VERSION 1u
#define TOPIC_REC_FIXED (4 + 4 * 8)
#define TOPIC_REC_MAX                                                                              \
    (TOPIC_REC_FIXED + 1 + STORE_NAME_MAX + 1 + STORE_PATTERNS_MAX * (2 + STORE_PATTERN_MAX))

/* ---- Validation ---- */

/* True if name[0..cap) holds a valid name and its NUL; *len gets its length. Any thread. */
bool store_name_ok(const char *name, size_t cap, size_t *len)
{
    size_t n, i;

    if (name == NULL)
        return false;
    n = strnlen(name, cap < STORE_NAME_MAX + 1 ? cap : STORE_NAME_MAX + 1);
    if (n == 0 || n > STORE_NAME_MAX || n == cap)
        return false;
    for (i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    if (len != NULL)
        *len = n;
    return true;
}

static int cfg_check(const struct store_topic_cfg *cfg)
{
    uint32_t i;
    size_t n;

    if (!store_name_ok(cfg->name, sizeof(cfg->name), NULL))
        return -EINVAL;
    if (cfg->npatterns < 1 || cfg->npatterns > STORE_PATTERNS_MAX)
        return -EINVAL;
    for (i = 0; i < cfg->npatterns; i++) {
        n = strnlen(cfg->patterns[i], sizeof(cfg->patterns[i]));
        if (n == 0 || n > STORE_PATTERN_MAX)
            return -EINVAL;
    }
    return 0;
}

/* ---- Definition record ---- */

static size_t cfg_encode(uint8_t *b, const struct store_topic_cfg *cfg)
{
    size_t off = TOPIC_REC_FIXED, n;
    uint32_t i;

    put_be32(b, TOPIC_REC_VERSION);
    put_be64(b + 4, cfg->max_msgs);
    put_be64(b + 12, cfg->max_bytes);
    put_be64(b + 20, cfg->max_age_ns);
    put_be64(b + 28, cfg->dedup_window_ns);
    n = strlen(cfg->name);
    b[off++] = (uint8_t)n;
    memcpy(b + off, cfg->name, n);
    off += n;
    b[off++] = (uint8_t)cfg->npatterns;
    for (i = 0; i < cfg->npatterns; i++) {
        n = strlen(cfg->patterns[i]);
        b[off] = (uint8_t)(n >> 8);
        b[off + 1] = (uint8_t)n;
        memcpy(b + off + 2, cfg->patterns[i], n);
        off += 2 + n;
    }
    return off;
}

/* Decode a definition record into *cfg; STORE_ECORRUPT if malformed. Any thread. */
int topic_cfg_decode(const MDB_val *v, struct store_topic_cfg *cfg)
{
    const uint8_t *b = v->mv_data;
    size_t len = v->mv_size, off = TOPIC_REC_FIXED, n;
    uint32_t i;

    memset(cfg, 0, sizeof(*cfg));
    if (len < TOPIC_REC_FIXED + 2 || get_be32(b) != TOPIC_REC_VERSION)
        return STORE_ECORRUPT;
    cfg->max_msgs = get_be64(b + 4);
    cfg->max_bytes = get_be64(b + 12);
    cfg->max_age_ns = get_be64(b + 20);
    cfg->dedup_window_ns = get_be64(b + 28);
    n = b[off++];
    if (n == 0 || n > STORE_NAME_MAX || off + n + 1 > len)
        return STORE_ECORRUPT;
    memcpy(cfg->name, b + off, n);
    off += n;
    cfg->npatterns = b[off++];
    if (cfg->npatterns < 1 || cfg->npatterns > STORE_PATTERNS_MAX)
        return STORE_ECORRUPT;
    for (i = 0; i < cfg->npatterns; i++) {
        if (off + 2 > len)
            return STORE_ECORRUPT;
        n = (size_t)b[off] << 8 | b[off + 1];
        off += 2;
        if (n == 0 || n > STORE_PATTERN_MAX || off + n > len)
            return STORE_ECORRUPT;
        memcpy(cfg->patterns[i], b + off, n);
        off += n;
    }
    return off == len ? 0 : STORE_ECORRUPT;
}

/* ---- The writer's cache ---- */

/* The cached live topic with this id, or NULL. Writer thread. */
struct tmem *topic_find(struct store *s, uint32_t id)
{
    size_t lo = 0, hi = s->ntopics;

    if (s->last_hit != NULL && s->last_hit->id == id)
        return s->last_hit;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->topics[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < s->ntopics && s->topics[lo].id == id) {
        s->last_hit = &s->topics[lo];
        return s->last_hit;
    }
    return NULL;
}

/* Room for one more topic; done before a commit so the insert after it cannot fail. */
static int cache_reserve(struct store *s)
{
    struct tmem *nt;
    size_t cap;

    if (s->ntopics < s->cap)
        return 0;
    cap = s->cap != 0 ? s->cap * 2 : 16;
    nt = realloc(s->topics, cap * sizeof(*nt));
    if (nt == NULL)
        return -ENOMEM;
    s->topics = nt;
    s->cap = cap;
    s->last_hit = NULL;
    return 0;
}

static void cache_fill(struct tmem *t, uint32_t id, const struct store_topic_cfg *cfg,
                       const struct tstate *st)
{
    memset(t, 0, sizeof(*t));
    t->id = id;
    t->append_hint = true;
    t->pend_first = SIZE_MAX;
    t->pend_last = SIZE_MAX;
    t->max_msgs = cfg->max_msgs;
    t->max_bytes = cfg->max_bytes;
    t->max_age_ns = cfg->max_age_ns;
    t->dedup_window_ns = cfg->dedup_window_ns;
    t->st = *st;
    memcpy(t->name, cfg->name, sizeof(t->name));
}

/* Append a topic whose id is larger than every cached one (room reserved). */
static void cache_push(struct store *s, uint32_t id, const struct store_topic_cfg *cfg,
                       const struct tstate *st)
{
    cache_fill(&s->topics[s->ntopics++], id, cfg, st);
}

static void cache_remove(struct store *s, struct tmem *t)
{
    size_t i = (size_t)(t - s->topics);

    memmove(&s->topics[i], &s->topics[i + 1], (s->ntopics - i - 1) * sizeof(*t));
    s->ntopics--;
    s->last_hit = NULL;
}

/* ---- Purge list ---- */

/* Remember that removed topic id still has data. 0 or -ENOMEM. Writer thread. */
int purge_add(struct store *s, uint32_t id)
{
    uint32_t *np;
    size_t cap;

    if (s->npurge == s->purge_cap) {
        cap = s->purge_cap != 0 ? s->purge_cap * 2 : 8;
        np = realloc(s->purge, cap * sizeof(*np));
        if (np == NULL)
            return -ENOMEM;
        s->purge = np;
        s->purge_cap = cap;
    }
    s->purge[s->npurge++] = id;
    return 0;
}

/* Forget purge entry id (its data is gone). Writer thread. */
void purge_remove(struct store *s, uint32_t id)
{
    size_t i;

    for (i = 0; i < s->npurge; i++) {
        if (s->purge[i] == id) {
            s->purge[i] = s->purge[--s->npurge];
            return;
        }
    }
}

/* ---- Loading at open ---- */

/*
 * Fill the cache and the purge list from the records (txn is store_open's
 * write txn). Returns 0, STORE_ECORRUPT, -ENOMEM or an LMDB code.
 */
int topics_load(struct store *s, MDB_txn *txn)
{
    struct store_topic_cfg cfg;
    struct tstate st;
    MDB_cursor *mc;
    MDB_val k, v, sv;
    uint32_t id, max_id = 0;
    int rc;

    rc = mdb_cursor_open(txn, s->dbi[DB_TOPICS], &mc);
    if (rc != 0)
        return rc;
    for (rc = mdb_cursor_get(mc, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(mc, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 4) {
            rc = STORE_ECORRUPT;
            break;
        }
        id = get_be32(k.mv_data);
        rc = topic_cfg_decode(&v, &cfg);
        if (rc == 0) {
            rc = mdb_get(txn, s->dbi[DB_TSTATE], &k, &sv);
            if (rc == MDB_NOTFOUND)
                rc = STORE_ECORRUPT;
        }
        if (rc == 0)
            rc = tstate_decode(&sv, &st);
        if (rc == 0)
            rc = cache_reserve(s);
        if (rc != 0)
            break;
        cache_push(s, id, &cfg, &st);
        max_id = id;
    }
    mdb_cursor_close(mc);
    if (rc != MDB_NOTFOUND)
        return rc;

    k.mv_data = "next_id";
    k.mv_size = 7;
    rc = mdb_get(txn, s->dbi[DB_META], &k, &v);
    if (rc != 0 || v.mv_size != 4)
        return rc == 0 || rc == MDB_NOTFOUND ? STORE_ECORRUPT : rc;
    s->next_id = get_be32(v.mv_data);
    if (s->next_id <= max_id)
        return STORE_ECORRUPT;

    rc = mdb_cursor_open(txn, s->dbi[DB_META], &mc);
    if (rc != 0)
        return rc;
    k.mv_data = "P";
    k.mv_size = 1;
    for (rc = mdb_cursor_get(mc, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(mc, &k, &v, MDB_NEXT)) {
        if (k.mv_size != PURGE_KEY_LEN || ((const uint8_t *)k.mv_data)[0] != 'P')
            break;
        rc = purge_add(s, get_be32((const uint8_t *)k.mv_data + 1));
        if (rc != 0)
            break;
    }
    mdb_cursor_close(mc);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* ---- Add ---- */

struct add_ctx {
    const struct store_topic_cfg *cfg;
    uint32_t id;
};

static int topic_add_txn(struct wtxn *w, void *arg)
{
    struct add_ctx *c = arg;
    struct store *s = w->s;
    uint8_t rec[TOPIC_REC_MAX], idb[4], nextb[4], stb[TSTATE_LEN];
    struct tstate st = {.first_seq = 1};
    MDB_val k, v;
    int rc;

    put_be32(idb, c->id);
    k.mv_data = (void *)c->cfg->name;
    k.mv_size = strlen(c->cfg->name);
    v.mv_data = idb;
    v.mv_size = 4;
    rc = mdb_put(w->txn, s->dbi[DB_TNAMES], &k, &v, MDB_NOOVERWRITE);
    if (rc != 0)
        return rc;
    k.mv_data = idb;
    k.mv_size = 4;
    v.mv_data = rec;
    v.mv_size = cfg_encode(rec, c->cfg);
    rc = mdb_put(w->txn, s->dbi[DB_TOPICS], &k, &v, MDB_NOOVERWRITE);
    if (rc != 0)
        return rc == MDB_KEYEXIST ? STORE_ECORRUPT : rc;
    tstate_encode(stb, &st);
    v.mv_data = stb;
    v.mv_size = TSTATE_LEN;
    rc = mdb_put(w->txn, s->dbi[DB_TSTATE], &k, &v, 0);
    if (rc != 0)
        return rc;
    put_be32(nextb, c->id + 1);
    k.mv_data = "next_id";
    k.mv_size = 7;
    v.mv_data = nextb;
    v.mv_size = 4;
    return mdb_put(w->txn, s->dbi[DB_META], &k, &v, 0);
}

/*
 * Define a topic (see store.h); on success *id is its id and the cache has
 * it. Returns 0 or a negative code. Writer thread; cfg is borrowed.
 */
int store_topic_add(struct store *s, const struct store_topic_cfg *cfg, uint32_t *id)
{
    struct tstate st = {.first_seq = 1};
    struct add_ctx c;
    int rc;

    if (s == NULL || cfg == NULL)
        return -EINVAL;
    rc = cfg_check(cfg);
    if (rc != 0)
        return rc;
    if (s->next_id == UINT32_MAX)
        return -ENOSPC;
    rc = cache_reserve(s);
    if (rc != 0)
        return rc;
    c.cfg = cfg;
    c.id = s->next_id;
    rc = store_write(s, topic_add_txn, &c, false);
    if (rc != 0)
        return rc;
    s->next_id = c.id + 1;
    cache_push(s, c.id, cfg, &st);
    if (id != NULL)
        *id = c.id;
    return 0;
}

/* ---- Remove and purge ---- */

/*
 * Replace chunk (k, v) of topic id, under mc, by its entries r.. (r <
 * count) keyed by first + r: the head of a purge that the budget cuts
 * inside a chunk. 0, -ENOMEM or an LMDB/store code.
 */
static int chunk_cut_head(MDB_cursor *mc, uint32_t id, const MDB_val *k, const MDB_val *v,
                          uint32_t r)
{
    uint8_t key[MSG_KEY_LEN], *p, *q;
    MDB_val nk = {sizeof(key), key}, nv;
    struct chunk c;
    uint32_t j, base;
    size_t tail;
    int rc;

    rc = chunk_decode(id, k, v, &c);
    if (rc != 0 || r == 0 || r >= c.count)
        return STORE_ECORRUPT;
    base = chunk_start(&c, r);
    tail = chunk_end(&c, c.count - 1) - base;
    nv.mv_size = CHUNK_HDR_LEN + (size_t)(c.count - r) * CHUNK_IDX_LEN + tail;
    p = malloc(nv.mv_size);
    if (p == NULL)
        return -ENOMEM;
    put_be32(p, c.count - r);
    for (j = r, q = p + CHUNK_HDR_LEN; j < c.count; j++, q += CHUNK_IDX_LEN) {
        put_be64(q, chunk_ts(&c, j));
        put_be32(q + 8, chunk_end(&c, j) - base);
    }
    memcpy(q, c.data + base, tail);
    nv.mv_data = p;
    msg_key(key, id, c.first + r);
    rc = mdb_cursor_del(mc, 0);
    if (rc == 0)
        rc = mdb_cursor_put(mc, &nk, &nv, 0);
    free(p);
    return rc;
}

/*
 * Delete records of DB dbi whose key starts with the 4-byte topic id, at
 * most budget. In DB_MSGS a chunk counts as its messages; one that would
 * pass the budget loses only its head (chunk_cut_head()), so the count is
 * exact and *deleted == budget whenever something is left.
 */
static int delete_prefix(struct wtxn *w, MDB_dbi dbi, uint32_t id, size_t budget, size_t *deleted,
                         bool *left)
{
    bool chunks = dbi == w->s->dbi[DB_MSGS];
    size_t cost = 1;
    uint8_t pfx[4];
    MDB_cursor *mc;
    MDB_val k, v;
    int rc;

    put_be32(pfx, id);
    *left = false;
    rc = mdb_cursor_open(w->txn, dbi, &mc);
    if (rc != 0)
        return rc;
    for (;;) {
        k.mv_data = pfx;
        k.mv_size = 4;
        rc = mdb_cursor_get(mc, &k, &v, MDB_SET_RANGE);
        if (rc == MDB_NOTFOUND) {
            rc = 0;
            break;
        }
        if (rc != 0)
            break;
        if (k.mv_size < 4 || memcmp(k.mv_data, pfx, 4) != 0)
            break;
        if (*deleted >= budget) {
            *left = true;
            break;
        }
        if (chunks) {
            /* A damaged chunk of a removed topic is deleted all the same. */
            cost = v.mv_size >= CHUNK_HDR_LEN && get_be32(v.mv_data) > 0 ? get_be32(v.mv_data) : 1;
            if (cost > budget - *deleted) {
                rc = chunk_cut_head(mc, id, &k, &v, (uint32_t)(budget - *deleted));
                if (rc == STORE_ECORRUPT)
                    rc = mdb_cursor_del(mc, 0);
                if (rc == 0)
                    *deleted = budget;
                *left = true;
                break;
            }
        }
        rc = mdb_cursor_del(mc, 0);
        if (rc != 0)
            break;
        *deleted += cost;
    }
    mdb_cursor_close(mc);
    return rc;
}

/*
 * Delete up to budget records of removed topic id: messages (a chunk
 * counts as its messages), dedup ids and their expiry entries; *done when
 * none is left. 0 or LMDB code. Writer.
 */
int topic_purge_some(struct wtxn *w, uint32_t id, size_t budget, size_t *deleted, bool *done)
{
    static const enum store_db dbs[] = {DB_MSGS, DB_DEDUP, DB_DEDUPTS};
    bool left = false;
    size_t i;
    int rc;

    *done = false;
    for (i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++) {
        rc = delete_prefix(w, w->s->dbi[dbs[i]], id, budget, deleted, &left);
        if (rc != 0)
            return rc;
        if (left)
            return 0;
    }
    *done = true;
    return 0;
}

struct rm_ctx {
    struct tmem *t;
    size_t chunk;
    size_t deleted;
    bool done;
};

static int topic_rm_txn(struct wtxn *w, void *arg)
{
    struct rm_ctx *c = arg;
    struct store *s = w->s;
    uint8_t idb[4], pk[PURGE_KEY_LEN];
    size_t n = 0;
    bool left;
    MDB_val k, v;
    int rc;

    c->deleted = 0;
    put_be32(idb, c->t->id);
    k.mv_data = c->t->name;
    k.mv_size = strlen(c->t->name);
    rc = mdb_del(w->txn, s->dbi[DB_TNAMES], &k, NULL);
    if (rc != 0)
        return rc == MDB_NOTFOUND ? STORE_ECORRUPT : rc;
    k.mv_data = idb;
    k.mv_size = 4;
    rc = mdb_del(w->txn, s->dbi[DB_TOPICS], &k, NULL);
    if (rc == 0)
        rc = mdb_del(w->txn, s->dbi[DB_TSTATE], &k, NULL);
    if (rc != 0)
        return rc == MDB_NOTFOUND ? STORE_ECORRUPT : rc;
    /* Consumers go in this txn whatever their number: they are small. */
    rc = delete_prefix(w, s->dbi[DB_CONSUMERS], c->t->id, SIZE_MAX, &n, &left);
    if (rc != 0)
        return rc;
    rc = topic_purge_some(w, c->t->id, c->chunk, &c->deleted, &c->done);
    if (rc != 0 || c->done)
        return rc;
    pk[0] = 'P';
    put_be32(pk + 1, c->t->id);
    k.mv_data = pk;
    k.mv_size = sizeof(pk);
    v.mv_data = NULL;
    v.mv_size = 0;
    return mdb_put(w->txn, s->dbi[DB_META], &k, &v, 0);
}

/*
 * Remove topic id (see store.h for the chunking). Returns 0 or a negative
 * code. Writer thread.
 */
int store_topic_rm(struct store *s, uint32_t id)
{
    struct rm_ctx c = {0};
    int rc;

    if (s == NULL)
        return -EINVAL;
    c.t = topic_find(s, id);
    if (c.t == NULL)
        return RMQ_ENOTFOUND;
    /* Room in the purge list first: after the commit nothing may fail. */
    rc = purge_add(s, id);
    if (rc != 0)
        return rc;
    purge_remove(s, id);
    c.chunk = RM_CHUNK;
    rc = store_write(s, topic_rm_txn, &c, true);
    if (rc == RMQ_ESTOREFULL) {
        /* Too full to delete a chunk now: drop the definition, purge it all later. */
        c.chunk = 0;
        rc = store_write(s, topic_rm_txn, &c, true);
    }
    if (rc != 0)
        return rc;
    if (!c.done)
        purge_add(s, id);
    s->freed = true;
    cache_remove(s, c.t);
    return 0;
}

/* ---- Readers ---- */

/*
 * Look up topic name: id and a copy of its definition (both optional).
 * Returns 0, RMQ_ENOTFOUND, -EINVAL or a store code. Any thread.
 */
int store_topic_get(struct store *s, const char *name, uint32_t *id, struct store_topic_cfg *cfg)
{
    MDB_txn *txn;
    MDB_val k, v;
    size_t n;
    int rc;

    if (s == NULL || !store_name_ok(name, STORE_NAME_MAX + 1, &n))
        return -EINVAL;
    rc = rtxn_begin(s, &txn);
    if (rc != 0)
        return rc;
    k.mv_data = (void *)name;
    k.mv_size = n;
    rc = mdb_get(txn, s->dbi[DB_TNAMES], &k, &v);
    if (rc == 0 && v.mv_size != 4)
        rc = STORE_ECORRUPT;
    if (rc == 0) {
        if (id != NULL)
            *id = get_be32(v.mv_data);
        if (cfg != NULL) {
            k = v;
            rc = mdb_get(txn, s->dbi[DB_TOPICS], &k, &v);
            if (rc == 0)
                rc = topic_cfg_decode(&v, cfg);
            else if (rc == MDB_NOTFOUND)
                rc = STORE_ECORRUPT;
        }
    }
    rtxn_end(s, txn);
    return store_err(rc);
}

/*
 * Call fn(arg, id, cfg) for each topic in id order from one read txn.
 * Returns the count, fn's non-zero value, or a negative code. Any thread.
 */
ssize_t store_topic_list(struct store *s, store_topic_fn fn, void *arg)
{
    struct store_topic_cfg cfg;
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
    rc = mdb_cursor_open(txn, s->dbi[DB_TOPICS], &mc);
    if (rc == 0) {
        for (rc = mdb_cursor_get(mc, &k, &v, MDB_FIRST); rc == 0;
             rc = mdb_cursor_get(mc, &k, &v, MDB_NEXT)) {
            if (k.mv_size != 4) {
                rc = STORE_ECORRUPT;
                break;
            }
            rc = topic_cfg_decode(&v, &cfg);
            if (rc != 0)
                break;
            n++;
            frc = fn(arg, get_be32(k.mv_data), &cfg);
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

/* Read the committed state of topic id. 0, RMQ_ENOTFOUND or a store code. Any thread. */
int store_topic_info(struct store *s, uint32_t id, struct store_topic_info *info)
{
    struct tstate st;
    MDB_txn *txn;
    MDB_val k, v;
    uint8_t idb[4];
    int rc;

    if (s == NULL || info == NULL)
        return -EINVAL;
    rc = rtxn_begin(s, &txn);
    if (rc != 0)
        return rc;
    put_be32(idb, id);
    k.mv_data = idb;
    k.mv_size = 4;
    rc = mdb_get(txn, s->dbi[DB_TSTATE], &k, &v);
    if (rc == 0)
        rc = tstate_decode(&v, &st);
    rtxn_end(s, txn);
    if (rc != 0)
        return store_err(rc);
    info->id = id;
    info->msgs = st.msgs;
    info->bytes = st.bytes;
    info->first_seq = st.first_seq;
    info->last_seq = st.last_seq;
    info->first_ts_ns = st.msgs != 0 ? st.first_ts : 0;
    info->last_ts_ns = st.last_ts;
    return 0;
}
