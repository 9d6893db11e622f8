/*
 * store.c - the LMDB environment behind durable topics: opening (and
 * refusing damaged data dirs), the error mapping, map growth, and the
 * read/write transaction helpers the other store_*.c files share.
 *
 * One environment, eight named databases. Integers are big-endian, so a
 * cursor walks keys in numeric order:
 *
 *   meta       "format"            -> magic "RMQS" u32 | version u32
 *              "next_id"           -> u32 (topic ids are never reused)
 *              'P' | id u32        -> ""  (removed topic, data still to purge)
 *   topics     id u32              -> definition (see store_topic.c)
 *   tnames     name                -> id u32
 *   tstate     id u32              -> msgs | bytes | first_seq | last_seq | first_ts | last_ts
 *   msgs       id u32 | seq u64    -> chunk: count u32 | {ts u64 | end u32} x count | payloads
 *   dedup      id u32 | dedup id   -> ts u64 | seq u64
 *   dedupts    id u32 | ts u64 | dedup id -> ""   (dedup ids in expiry order)
 *   consumers  id u32 | name       -> consumer record (see store_consumer.c)
 *
 *   msgs of topic 7:   [7|1: 1..256][7|257: 257..300][7|301: 301] ...
 *                             ^first_seq (may be inside a chunk)  ^last_seq
 *
 * A chunk holds the consecutive messages of one topic from one append
 * batch (at most 256 and 1 MiB of payload; see store_internal.h). Seqs
 * first_seq..last_seq are contiguous: only the head is ever dropped, by
 * advancing first_seq, and a chunk is deleted once none of it is live.
 *
 * There is no separate time index: timestamps are non-decreasing within a
 * topic (store_append.c raises a lower one), and seqs are contiguous, so
 * store_seq_at_time() binary-searches the seqs (each probe: one chunk
 * seek, then the chunk's index).
 *
 * Threads: the writer thread owns the topic cache (struct tmem) and runs
 * every write txn; readers on any thread open short read txns under
 * map_lock held shared. The writer takes map_lock exclusively only to
 * resize the map, which LMDB allows only with no txn active in the process.
 *
 * Before LMDB sees data.mdb, file_check() reads its two meta pages (LMDB
 * 0.9 format 1: magic, version, page size, last page, roots) so that a
 * truncated file is refused instead of faulting (SIGBUS) on a page past
 * its end, and garbage gets a precise message.
 */
#include "store_internal.h"

#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define MIB ((size_t)1 << 20)
#define MAP_SIZE_DEFAULT (256 * MIB)
#define MAP_MAX_DEFAULT ((size_t)16 << 30)
#define MAP_ROUND (64 * 1024)
#define MAP_MIN (64 * 1024) /* smallest initial map */
#define MAP_MAX_MIN MIB     /* smallest growth cap: room for the reserve */
#define READERS_DEFAULT 126
#define RESERVE_MIN (128 * 1024)
#define RESERVE_MAX (64 * MIB)

static const char *const db_names[DB_COUNT] = {
    [DB_META] = "meta",       [DB_TOPICS] = "topics",       [DB_TNAMES] = "tnames",
    [DB_TSTATE] = "tstate",   [DB_MSGS] = "msgs",           [DB_DEDUP] = "dedup",
    [DB_DEDUPTS] = "dedupts", [DB_CONSUMERS] = "consumers",
};

/* ---- Errors ---- */

/*
 * Translate an LMDB result into the rmq_error.h convention (table in
 * store.h). Codes that are ours already (-errno, RMQ_*) pass through, so
 * internal helpers may return either kind. Any thread.
 */
int store_err(int rc)
{
    if (rc == 0)
        return 0;
    if (rc > 0)
        return -rc;
    if (rc < MDB_KEYEXIST || rc > MDB_LAST_ERRCODE)
        return rc; /* ours already */
    switch (rc) {
    case MDB_NOTFOUND:
        return RMQ_ENOTFOUND;
    case MDB_MAP_FULL:
        return RMQ_ESTOREFULL;
    case MDB_KEYEXIST:
        return -EEXIST;
    case MDB_TXN_FULL:
        return -E2BIG;
    case MDB_READERS_FULL:
    case MDB_MAP_RESIZED:
        return -EAGAIN;
    case MDB_VERSION_MISMATCH:
        return STORE_EVERSION;
    case MDB_INVALID:
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INCOMPATIBLE:
    case MDB_BAD_RSLOT:
    case MDB_BAD_TXN:
    case MDB_BAD_VALSIZE:
    case MDB_BAD_DBI:
        return STORE_ECORRUPT;
    case MDB_PANIC:
    default:
        return -EIO;
    }
}

static void errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Text for a negative code; strerror() is not thread-safe, store_open() may run anywhere. */
static const char *errstr(int rc)
{
    const char *d;

    if (rc == STORE_ECORRUPT)
        return "damaged records";
    if (rc == STORE_EVERSION)
        return "unknown format version";
    d = rc < 0 && rc > -4096 ? strerrordesc_np(-rc) : NULL;
    return d != NULL ? d : "unknown error";
}

static void errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- Topic state record ---- */

/* Encode st as the 48-byte tstate value. Any thread. */
void tstate_encode(uint8_t v[TSTATE_LEN], const struct tstate *st)
{
    put_be64(v, st->msgs);
    put_be64(v + 8, st->bytes);
    put_be64(v + 16, st->first_seq);
    put_be64(v + 24, st->last_seq);
    put_be64(v + 32, st->first_ts);
    put_be64(v + 40, st->last_ts);
}

/* Decode a tstate value; STORE_ECORRUPT if it is not one. Any thread. */
int tstate_decode(const MDB_val *v, struct tstate *st)
{
    const uint8_t *p = v->mv_data;

    if (v->mv_size != TSTATE_LEN)
        return STORE_ECORRUPT;
    st->msgs = get_be64(p);
    st->bytes = get_be64(p + 8);
    st->first_seq = get_be64(p + 16);
    st->last_seq = get_be64(p + 24);
    st->first_ts = get_be64(p + 32);
    st->last_ts = get_be64(p + 40);
    if (st->msgs != 0 && st->last_seq - st->first_seq + 1 != st->msgs)
        return STORE_ECORRUPT;
    return 0;
}

/* ---- Transactions ---- */

/*
 * Begin a read txn for a reader call, holding map_lock shared until
 * rtxn_end(). Returns 0 or a translated code. Any thread.
 */
int rtxn_begin(struct store *s, MDB_txn **txn)
{
    int rc;

    if (pthread_rwlock_rdlock(&s->map_lock) != 0)
        return -EAGAIN;
    rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn);
    if (rc != 0) {
        pthread_rwlock_unlock(&s->map_lock);
        return store_err(rc);
    }
    return 0;
}

/* End a read txn from rtxn_begin(). Any thread (the one that began it). */
void rtxn_end(struct store *s, MDB_txn *txn)
{
    mdb_txn_abort(txn);
    pthread_rwlock_unlock(&s->map_lock);
}

/* Begin a write txn; returns an untranslated LMDB code. Writer thread. */
int wtxn_begin(struct store *s, struct wtxn *w)
{
    w->s = s;
    w->touched = NULL;
    return mdb_txn_begin(s->env, NULL, 0, &w->txn);
}

/* List t as changed by w (first time only) after saving its state. Writer. */
void wtxn_touch(struct wtxn *w, struct tmem *t)
{
    if (t->touched)
        return;
    t->touched = true;
    t->saved = t->st;
    t->touched_next = w->touched;
    w->touched = t;
}

static void wtxn_restore(struct wtxn *w)
{
    struct tmem *t, *next;

    for (t = w->touched; t != NULL; t = next) {
        next = t->touched_next;
        t->st = t->saved;
        t->touched = false;
        t->touched_next = NULL;
    }
    w->touched = NULL;
}

/* Abort w and restore the cache. Writer thread. */
void wtxn_abort(struct wtxn *w)
{
    mdb_txn_abort(w->txn);
    w->txn = NULL;
    wtxn_restore(w);
}

/*
 * Write the state of the touched topics and commit. Returns 0 or an
 * untranslated LMDB code; on failure the txn is gone and the cache
 * restored. Writer thread.
 */
int wtxn_commit(struct wtxn *w)
{
    uint8_t kb[4], vb[TSTATE_LEN];
    MDB_val k = {sizeof(kb), kb}, v = {sizeof(vb), vb};
    struct tmem *t, *next;
    int rc;

    for (t = w->touched; t != NULL; t = t->touched_next) {
        put_be32(kb, t->id);
        tstate_encode(vb, &t->st);
        rc = mdb_put(w->txn, w->s->dbi[DB_TSTATE], &k, &v, 0);
        if (rc != 0) {
            wtxn_abort(w);
            return rc;
        }
    }
    rc = mdb_txn_commit(w->txn);
    w->txn = NULL;
    if (rc != 0) {
        wtxn_restore(w);
        return rc;
    }
    for (t = w->touched; t != NULL; t = next) {
        next = t->touched_next;
        t->touched = false;
        t->touched_next = NULL;
    }
    w->touched = NULL;
    return 0;
}

/* Resize the map with every reader held off (LMDB: no txn may be active). */
static int map_set(struct store *s, size_t size)
{
    MDB_envinfo ei;
    int rc;

    if (pthread_rwlock_wrlock(&s->map_lock) != 0)
        return EAGAIN;
    rc = mdb_env_set_mapsize(s->env, size);
    if (rc == 0 && mdb_env_info(s->env, &ei) == 0)
        s->map_size = ei.me_mapsize;
    pthread_rwlock_unlock(&s->map_lock);
    return rc;
}

/*
 * Double the map (up to map_soft) after MDB_MAP_FULL, with no txn open in
 * the writer. Returns 0 when grown, MDB_MAP_FULL at map_soft, or another
 * LMDB code. Writer thread.
 */
int store_grow(struct store *s)
{
    size_t next;
    int rc;

    if (s->map_size >= s->map_soft)
        return MDB_MAP_FULL;
    next = s->map_size > s->map_soft / 2 ? s->map_soft : s->map_size * 2;
    rc = map_set(s, next);
    if (rc != 0)
        return rc;
    atomic_fetch_add_explicit(&s->map_grows, 1, memory_order_relaxed);
    return 0;
}

static int bump_txn(struct wtxn *w, void *arg);

/*
 * Run fn in a write txn and commit, growing the map (or, at the cap,
 * committing store_bump() after a deletion) and rerunning fn on
 * MDB_MAP_FULL. fn must leave no trace outside the txn (it may run more
 * than once). Returns 0 or a translated code. Writer thread.
 */
int store_write(struct store *s, int (*fn)(struct wtxn *w, void *arg), void *arg, bool reserve)
{
    size_t before = s->map_size;
    bool in_reserve = false;
    struct wtxn w;
    int rc;

    for (;;) {
        rc = wtxn_begin(s, &w);
        if (rc != 0)
            break;
        rc = fn(&w, arg);
        if (rc == 0)
            rc = wtxn_commit(&w);
        else
            wtxn_abort(&w);
        if (rc == MDB_MAP_FULL && store_grow(s) == 0) {
            before = s->map_size;
            continue;
        }
        /* Pages the last txn freed become reusable after one more commit. */
        if (rc == MDB_MAP_FULL && s->freed && fn != bump_txn && store_bump(s) == 0)
            continue;
        if (rc == MDB_MAP_FULL && reserve && !in_reserve && s->map_size < s->map_max &&
            map_set(s, s->map_max) == 0) {
            in_reserve = true;
            continue;
        }
        break;
    }
    /* Back to the soft cap: LMDB keeps it at least as large as the pages in use. */
    if (in_reserve)
        map_set(s, before);
    return store_err(rc);
}

static int bump_txn(struct wtxn *w, void *arg)
{
    MDB_val k = {7, "next_id"}, v;
    uint8_t b[4];
    int rc;

    (void)arg;
    rc = mdb_get(w->txn, w->s->dbi[DB_META], &k, &v);
    if (rc != 0 || v.mv_size != sizeof(b))
        return rc != 0 ? rc : STORE_ECORRUPT;
    memcpy(b, v.mv_data, sizeof(b));
    v.mv_data = b;
    return mdb_put(w->txn, w->s->dbi[DB_META], &k, &v, 0);
}

/*
 * Commit a txn that rewrites meta "next_id" unchanged, so that pages the
 * last txn freed become reusable (LMDB reuses a txn's freed pages only
 * from the second txn after it). May use the reserve. Returns 0 or a
 * translated code. Writer thread.
 */
int store_bump(struct store *s)
{
    s->freed = false;
    return store_write(s, bump_txn, NULL, true);
}

/* ---- Opening ---- */

/* mkdir -p with mode 0700 for the missing components. Returns 0 or -errno. */
static int mkdir_p(const char *dir)
{
    char path[PATH_MAX];
    size_t len = strlen(dir), i;

    if (len >= sizeof(path))
        return -ENAMETOOLONG;
    memcpy(path, dir, len + 1);
    for (i = 1; i <= len; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        if (path[i - 1] == '/')
            continue;
        path[i] = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            return -errno;
        if (i < len)
            path[i] = '/';
    }
    return 0;
}

/*
 * LMDB 0.9 meta page (data format 1), at the start of pages 0 and 1:
 *
 *   off  0  page header (pgno u64, pad u16, flags u16, lower/upper u16 x2)
 *   off 16  magic u32 0xBEEFC0DE | version u32 | address ptr | mapsize size_t
 *   off 40  free db:  pad u32 (= page size) | flags u16 | depth u16 |
 *                     branch | leaf | overflow | entries | root   (u64 each)
 *   off 88  main db:  the same 48 bytes
 *   off 136 last_pg u64 | txnid u64
 */
#define LMDB_MAGIC 0xBEEFC0DEu
#define LMDB_DATA_VERSION 1u
#define META_OFF_MAGIC 16
#define META_OFF_VERSION 20
#define META_OFF_PSIZE 40
#define META_OFF_FREE_ROOT 80
#define META_OFF_MAIN_ROOT 128
#define META_OFF_LAST_PG 136
#define META_OFF_TXNID 144
#define META_LEN 152

struct meta_view {
    uint32_t psize;
    uint64_t last_pg, txnid, roots[2];
};

static uint32_t ld32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static uint64_t ld64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static int meta_parse(const uint8_t *b, const char *path, int which, struct meta_view *m, char *err,
                      size_t errlen)
{
    uint32_t magic = ld32(b + META_OFF_MAGIC), version = ld32(b + META_OFF_VERSION);

    if (magic != LMDB_MAGIC) {
        errf(err, errlen, "%s: meta page %d has no LMDB magic: not an LMDB data file", path, which);
        return STORE_ECORRUPT;
    }
    if (version != LMDB_DATA_VERSION) {
        errf(err, errlen, "%s: LMDB data format %u, this build reads format %u", path, version,
             LMDB_DATA_VERSION);
        return STORE_EVERSION;
    }
    m->psize = ld32(b + META_OFF_PSIZE);
    m->roots[0] = ld64(b + META_OFF_FREE_ROOT);
    m->roots[1] = ld64(b + META_OFF_MAIN_ROOT);
    m->last_pg = ld64(b + META_OFF_LAST_PG);
    m->txnid = ld64(b + META_OFF_TXNID);
    if (m->psize < 512 || m->psize > 65536 || (m->psize & (m->psize - 1)) != 0) {
        errf(err, errlen, "%s: meta page %d has an invalid page size %u", path, which, m->psize);
        return STORE_ECORRUPT;
    }
    return 0;
}

/*
 * Check data.mdb before LMDB maps it (see the file comment). A missing or
 * empty file is fine: LMDB creates a new environment.
 */
static int file_check(const char *dir, char *err, size_t errlen)
{
    char path[PATH_MAX];
    uint8_t b[META_LEN];
    struct meta_view m[2], *cur;
    struct stat st;
    uint64_t need;
    int fd, rc, i;

    if ((size_t)snprintf(path, sizeof(path), "%s/data.mdb", dir) >= sizeof(path))
        return -ENAMETOOLONG;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT)
            return 0;
        rc = -errno;
        errf(err, errlen, "%s: %s", path, errstr(rc));
        return rc;
    }
    if (!S_ISREG(st.st_mode)) {
        errf(err, errlen, "%s: not a regular file", path);
        return STORE_ECORRUPT;
    }
    if (st.st_size == 0)
        return 0;
    fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        errf(err, errlen, "%s: cannot open for reading and writing: %s", path, errstr(rc));
        return rc;
    }
    rc = 0;
    for (i = 0; i < 2 && rc == 0; i++) {
        off_t off = i == 0 ? 0 : (off_t)m[0].psize;
        ssize_t got = pread(fd, b, sizeof(b), off);
        if (got < 0) {
            rc = -errno;
            errf(err, errlen, "%s: read: %s", path, errstr(rc));
        } else if ((size_t)got < sizeof(b)) {
            errf(err, errlen, "%s: truncated (%lld bytes): meta page %d missing", path,
                 (long long)st.st_size, i);
            rc = STORE_ECORRUPT;
        } else {
            rc = meta_parse(b, path, i, &m[i], err, errlen);
        }
    }
    close(fd);
    if (rc != 0)
        return rc;
    if (m[0].psize != m[1].psize) {
        errf(err, errlen, "%s: the meta pages disagree on the page size", path);
        return STORE_ECORRUPT;
    }
    cur = m[1].txnid > m[0].txnid ? &m[1] : &m[0];
    if (cur->last_pg >= (uint64_t)1 << 40) {
        errf(err, errlen, "%s: meta page claims %llu pages", path,
             (unsigned long long)cur->last_pg);
        return STORE_ECORRUPT;
    }
    need = (cur->last_pg + 1) * cur->psize;
    if ((uint64_t)st.st_size < need) {
        errf(err, errlen, "%s: truncated: the store needs %llu bytes, the file has %lld", path,
             (unsigned long long)need, (long long)st.st_size);
        return STORE_ECORRUPT;
    }
    for (i = 0; i < 2; i++) {
        if (cur->roots[i] != ~(uint64_t)0 && (cur->roots[i] < 2 || cur->roots[i] > cur->last_pg)) {
            errf(err, errlen, "%s: meta page points at page %llu beyond the last page %llu", path,
                 (unsigned long long)cur->roots[i], (unsigned long long)cur->last_pg);
            return STORE_ECORRUPT;
        }
    }
    return 0;
}

static int lock_dir(struct store *s, const char *dir, char *err, size_t errlen)
{
    char path[PATH_MAX];
    int rc;

    if ((size_t)snprintf(path, sizeof(path), "%s/ringmq.lock", dir) >= sizeof(path))
        return -ENAMETOOLONG;
    s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->lock_fd < 0) {
        rc = -errno;
        errf(err, errlen, "%s: %s", path, errstr(rc));
        return rc;
    }
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
        if (rc == -EBUSY)
            errf(err, errlen, "%s: the data dir is already open (this or another process)", dir);
        else
            errf(err, errlen, "%s: flock: %s", path, errstr(rc));
        return rc;
    }
    return 0;
}

/* Open the named databases; create and stamp a fresh store. LMDB code or store code. */
static int dbs_open(struct store *s, MDB_txn *txn, char *err, size_t errlen)
{
    uint8_t fmt[8], idb[4];
    MDB_val k, v;
    MDB_stat ms;
    MDB_dbi main_dbi;
    bool fresh = false;
    int rc, i;

    rc = mdb_dbi_open(txn, db_names[DB_META], 0, &s->dbi[DB_META]);
    if (rc == MDB_NOTFOUND) {
        rc = mdb_dbi_open(txn, NULL, 0, &main_dbi);
        if (rc == 0)
            rc = mdb_stat(txn, main_dbi, &ms);
        if (rc != 0)
            return rc;
        if (ms.ms_entries != 0) {
            errf(err, errlen, "data.mdb holds an LMDB environment that is not a ringmq store");
            return STORE_ECORRUPT;
        }
        fresh = true;
        rc = mdb_dbi_open(txn, db_names[DB_META], MDB_CREATE, &s->dbi[DB_META]);
    }
    if (rc == MDB_INCOMPATIBLE) {
        errf(err, errlen, "data.mdb is not a ringmq store (\"meta\" is not a database)");
        return STORE_ECORRUPT;
    }
    if (rc != 0)
        return rc;

    k.mv_data = "format";
    k.mv_size = 6;
    if (fresh) {
        put_be32(fmt, STORE_FORMAT_MAGIC);
        put_be32(fmt + 4, STORE_FORMAT_VERSION);
        v.mv_data = fmt;
        v.mv_size = sizeof(fmt);
        rc = mdb_put(txn, s->dbi[DB_META], &k, &v, 0);
        if (rc == 0) {
            put_be32(idb, 1);
            k.mv_data = "next_id";
            k.mv_size = 7;
            v.mv_data = idb;
            v.mv_size = sizeof(idb);
            rc = mdb_put(txn, s->dbi[DB_META], &k, &v, 0);
        }
        if (rc != 0)
            return rc;
    } else {
        rc = mdb_get(txn, s->dbi[DB_META], &k, &v);
        if (rc == MDB_NOTFOUND ||
            (rc == 0 && (v.mv_size != 8 || get_be32(v.mv_data) != STORE_FORMAT_MAGIC))) {
            errf(err, errlen, "data.mdb is not a ringmq store (no format stamp)");
            return STORE_ECORRUPT;
        }
        if (rc != 0)
            return rc;
        if (get_be32((const uint8_t *)v.mv_data + 4) != STORE_FORMAT_VERSION) {
            errf(err, errlen, "store format version %u, this build reads version %u",
                 get_be32((const uint8_t *)v.mv_data + 4), STORE_FORMAT_VERSION);
            return STORE_EVERSION;
        }
    }
    for (i = DB_META + 1; i < DB_COUNT; i++) {
        rc = mdb_dbi_open(txn, db_names[i], MDB_CREATE, &s->dbi[i]);
        if (rc == MDB_INCOMPATIBLE) {
            errf(err, errlen, "data.mdb: \"%s\" is not a database of a ringmq store", db_names[i]);
            return STORE_ECORRUPT;
        }
        if (rc != 0)
            return rc;
    }
    return 0;
}

static void store_free(struct store *s)
{
    if (s->env != NULL)
        mdb_env_close(s->env);
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    pthread_rwlock_destroy(&s->map_lock);
    free(s->topics);
    free(s->purge);
    free(s->pend);
    free(s);
}

/* map_max minus the reserve for deletions: 1/32 of it, 128 KiB..64 MiB. */
static size_t soft_cap(size_t map_max)
{
    size_t r = map_max / 32;

    if (r < RESERVE_MIN)
        r = RESERVE_MIN;
    if (r > RESERVE_MAX)
        r = RESERVE_MAX;
    r = (r + MAP_ROUND - 1) / MAP_ROUND * MAP_ROUND;
    return map_max > 2 * r ? map_max - r : map_max / 2 / MAP_ROUND * MAP_ROUND;
}

static size_t round_map(size_t v)
{
    if (v > SIZE_MAX - MAP_ROUND)
        return SIZE_MAX / MAP_ROUND * MAP_ROUND;
    return (v + MAP_ROUND - 1) / MAP_ROUND * MAP_ROUND;
}

/*
 * Open the store (see store.h): check the dir, lock it, check data.mdb,
 * open the env and its databases, load the topic table. Returns 0 or a
 * negative code with a message in err. Any thread; *out is the caller's.
 */
int store_open(const struct store_opts *o, struct store **out, char *err, size_t errlen)
{
    pthread_rwlockattr_t ra;
    struct store *s;
    struct stat st;
    MDB_envinfo ei;
    MDB_stat ms;
    MDB_txn *txn;
    unsigned flags = MDB_NOTLS;
    int rc;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (out == NULL)
        return -EINVAL;
    *out = NULL;
    if (o == NULL || o->dir == NULL || o->dir[0] == '\0') {
        errf(err, errlen, "no data dir given");
        return -EINVAL;
    }
    if (strlen(o->dir) > PATH_MAX - 32) {
        errf(err, errlen, "data dir path too long");
        return -ENAMETOOLONG;
    }
    if (o->fsync != STORE_FSYNC_ALWAYS && o->fsync != STORE_FSYNC_INTERVAL &&
        o->fsync != STORE_FSYNC_NEVER) {
        errf(err, errlen, "unknown fsync mode %d", (int)o->fsync);
        return -EINVAL;
    }

    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->lock_fd = -1;
    s->fsync = o->fsync;
    s->map_size = round_map(o->map_size != 0 ? o->map_size : MAP_SIZE_DEFAULT);
    if (s->map_size < MAP_MIN)
        s->map_size = MAP_MIN;
    s->map_max = o->map_max != 0                 ? round_map(o->map_max)
                 : s->map_size > MAP_MAX_DEFAULT ? s->map_size
                                                 : MAP_MAX_DEFAULT;
    if (s->map_max < s->map_size)
        s->map_max = s->map_size;
    if (s->map_max < MAP_MAX_MIN)
        s->map_max = MAP_MAX_MIN;
    s->map_soft = soft_cap(s->map_max);
    if (s->map_size > s->map_soft)
        s->map_size = s->map_soft;
    atomic_init(&s->map_grows, 0);
    pthread_rwlockattr_init(&ra);
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    rc = pthread_rwlock_init(&s->map_lock, &ra);
    pthread_rwlockattr_destroy(&ra);
    if (rc != 0) {
        free(s);
        return -rc;
    }

    rc = mkdir_p(o->dir);
    if (rc == 0 && stat(o->dir, &st) != 0)
        rc = -errno;
    if (rc == 0 && !S_ISDIR(st.st_mode))
        rc = -ENOTDIR;
    if (rc == -ENOTDIR) {
        errf(err, errlen, "%s: not a directory (or a parent is not)", o->dir);
        goto err_free;
    }
    if (rc != 0) {
        errf(err, errlen, "%s: cannot create the data dir: %s", o->dir, errstr(rc));
        goto err_free;
    }
    if (faccessat(AT_FDCWD, o->dir, R_OK | W_OK | X_OK, AT_EACCESS) != 0) {
        rc = -errno;
        errf(err, errlen, "%s: no read/write access to the data dir: %s", o->dir, errstr(rc));
        goto err_free;
    }
    rc = lock_dir(s, o->dir, err, errlen);
    if (rc != 0)
        goto err_free;
    rc = file_check(o->dir, err, errlen);
    if (rc != 0)
        goto err_free;

    if (o->fsync == STORE_FSYNC_INTERVAL)
        flags |= MDB_NOSYNC;
    else if (o->fsync == STORE_FSYNC_NEVER)
        flags |= MDB_NOSYNC | MDB_NOMETASYNC;
    rc = mdb_env_create(&s->env);
    if (rc == 0)
        rc = mdb_env_set_maxdbs(s->env, DB_COUNT + 4);
    if (rc == 0)
        rc = mdb_env_set_mapsize(s->env, s->map_size);
    if (rc == 0)
        rc = mdb_env_set_maxreaders(s->env, o->max_readers != 0 ? o->max_readers : READERS_DEFAULT);
    if (rc == 0)
        rc = mdb_env_open(s->env, o->dir, flags, 0600);
    if (rc != 0) {
        errf(err, errlen, "%s: cannot open the LMDB environment: %s", o->dir, mdb_strerror(rc));
        rc = store_err(rc);
        goto err_free;
    }
    if (mdb_env_info(s->env, &ei) == 0 && ei.me_mapsize > s->map_size)
        s->map_size = ei.me_mapsize;
    s->psize = 4096;
    if (mdb_env_stat(s->env, &ms) == 0 && ms.ms_psize >= 512)
        s->psize = ms.ms_psize;
    /* LMDB 0.9 me_nodemax, less the leaf node header and our key. */
    s->inline_max =
        (((s->psize - LMDB_PAGE_HDR) / 2) & ~(size_t)1) - 2 - LMDB_LEAF_NODE - MSG_KEY_LEN;
    s->inline_cap = s->psize / 4 - LMDB_LEAF_NODE - MSG_KEY_LEN - 2;
    if (s->map_soft < s->map_size)
        s->map_soft = s->map_size;
    if (s->map_max < s->map_soft)
        s->map_max = s->map_soft;

    rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0) {
        errf(err, errlen, "%s: %s", o->dir, mdb_strerror(rc));
        rc = store_err(rc);
        goto err_free;
    }
    rc = dbs_open(s, txn, err, errlen);
    if (rc == 0)
        rc = topics_load(s, txn);
    if (rc == 0) {
        rc = mdb_txn_commit(txn);
    } else {
        mdb_txn_abort(txn);
    }
    if (rc != 0) {
        if (err != NULL && errlen > 0 && err[0] == '\0')
            errf(err, errlen, "%s: cannot read the store: %s", o->dir,
                 store_err(rc) != rc ? mdb_strerror(rc) : errstr(rc));
        rc = store_err(rc);
        goto err_free;
    }
    *out = s;
    return 0;

err_free:
    store_free(s);
    return rc;
}

/*
 * Flush (every mode: an orderly shutdown loses nothing), close the env,
 * unlock the dir and free s. Any thread, with no other call in flight.
 */
void store_close(struct store *s)
{
    if (s == NULL)
        return;
    if (s->fsync != STORE_FSYNC_ALWAYS)
        mdb_env_sync(s->env, 1);
    store_free(s);
}

/* fdatasync the data file. Returns 0 or -errno. Writer thread. */
int store_sync(struct store *s)
{
    if (s == NULL)
        return -EINVAL;
    return store_err(mdb_env_sync(s->env, 1));
}

/*
 * Fill *info from the env and one read txn. Any thread. Returns 0 or a
 * store code.
 */
int store_env_info(struct store *s, struct store_env_info *info)
{
    MDB_envinfo ei;
    MDB_stat ms;
    MDB_cursor *mc;
    MDB_txn *txn;
    MDB_val k, v;
    int rc;

    if (s == NULL || info == NULL)
        return -EINVAL;
    memset(info, 0, sizeof(*info));
    rc = rtxn_begin(s, &txn);
    if (rc != 0)
        return rc;
    mdb_env_info(s->env, &ei);
    mdb_env_stat(s->env, &ms);
    info->map_size = ei.me_mapsize;
    info->map_max = s->map_max;
    info->used_bytes = (ei.me_last_pgno + 1) * (size_t)ms.ms_psize;
    info->map_grows = atomic_load_explicit(&s->map_grows, memory_order_relaxed);
    info->txn_id = ei.me_last_txnid;
    rc = mdb_stat(txn, s->dbi[DB_TOPICS], &ms);
    if (rc == 0) {
        info->topics = (uint32_t)ms.ms_entries;
        rc = mdb_cursor_open(txn, s->dbi[DB_META], &mc);
    }
    if (rc == 0) {
        k.mv_data = "P";
        k.mv_size = 1;
        rc = mdb_cursor_get(mc, &k, &v, MDB_SET_RANGE);
        while (rc == 0 && k.mv_size == PURGE_KEY_LEN && ((const uint8_t *)k.mv_data)[0] == 'P') {
            info->purging++;
            rc = mdb_cursor_get(mc, &k, &v, MDB_NEXT);
        }
        mdb_cursor_close(mc);
        if (rc == MDB_NOTFOUND || rc == 0)
            rc = 0;
    }
    rtxn_end(s, txn);
    return store_err(rc);
}
