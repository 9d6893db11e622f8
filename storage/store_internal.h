/*
 * store_internal.h - what the store_*.c files share and nothing outside
 * storage/ may include: struct store, the named databases and their key
 * and value encodings, the writer's topic cache, the write-transaction
 * context and the LMDB error mapping. See store.c for the overall layout.
 *
 * Every integer in a key or value is big-endian, so LMDB's memcmp order is
 * numeric order and the file does not depend on the host's byte order.
 */
#ifndef RMQ_STORAGE_STORE_INTERNAL_H
#define RMQ_STORAGE_STORE_INTERNAL_H

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "store.h"

/* ---- Named databases ---- */

enum store_db {
    DB_META,      /* "format" -> magic+version, "next_id" -> u32, "P"+id -> "" (purge) */
    DB_TOPICS,    /* id u32 -> topic definition record */
    DB_TNAMES,    /* name bytes -> id u32 */
    DB_TSTATE,    /* id u32 -> 6 x u64 state (msgs, bytes, first/last seq, first/last ts) */
    DB_MSGS,      /* id u32 | seq u64 -> ts u64 | payload */
    DB_DEDUP,     /* id u32 | dedup id -> ts u64 | seq u64 */
    DB_DEDUPTS,   /* id u32 | ts u64 | dedup id -> "" (expiry order) */
    DB_CONSUMERS, /* id u32 | name -> consumer record */
    DB_COUNT
};

#define STORE_FORMAT_MAGIC 0x524d5153u /* "RMQS" */
#define STORE_FORMAT_VERSION 1u

#define MSG_KEY_LEN 12 /* topic u32 | seq u64 */
#define MSG_HDR_LEN 8  /* ts u64 before the payload */
#define TSTATE_LEN 48
#define DEDUP_VAL_LEN 16 /* ts u64 | seq u64 */
#define PURGE_KEY_LEN 5  /* 'P' | topic u32 */
#define RM_CHUNK 4096    /* records store_topic_rm() deletes itself */
#define RETENTION_BUDGET_DEFAULT 4096

/* ---- Big-endian codecs ---- */

static inline void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void put_be64(uint8_t *p, uint64_t v)
{
    put_be32(p, (uint32_t)(v >> 32));
    put_be32(p + 4, (uint32_t)v);
}

static inline uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static inline uint64_t get_be64(const uint8_t *p)
{
    return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

static inline void msg_key(uint8_t k[MSG_KEY_LEN], uint32_t topic, uint64_t seq)
{
    put_be32(k, topic);
    put_be64(k + 4, seq);
}

/* ---- Topic state and the writer's cache ---- */

struct tstate {
    uint64_t msgs, bytes;
    uint64_t first_seq, last_seq; /* first_seq = last_seq + 1 when empty */
    uint64_t first_ts, last_ts;   /* first_ts = 0 when empty */
};

void tstate_encode(uint8_t v[TSTATE_LEN], const struct tstate *st);
int tstate_decode(const MDB_val *v, struct tstate *st);

/*
 * One live topic in the writer's cache (struct store.topics, sorted by id).
 * Only the writer thread touches it. During a write transaction `st` is
 * the working copy and `saved` what was committed, restored on abort.
 */
struct tmem {
    uint32_t id;
    bool touched;     /* in the current write txn's touched list */
    bool append_hint; /* the last MDB_APPEND on this topic worked */
    uint64_t max_msgs, max_bytes, max_age_ns, dedup_window_ns;
    struct tstate st, saved;
    struct tmem *touched_next;
    char name[STORE_NAME_MAX + 1];
};

struct store {
    MDB_env *env;
    MDB_dbi dbi[DB_COUNT];
    /*
     * Readers hold it shared for the length of each read txn; the writer
     * holds it exclusively only around mdb_env_set_mapsize(), which LMDB
     * allows only with no txn active in the process.
     */
    pthread_rwlock_t map_lock;
    size_t map_size; /* LMDB's map size; changed under map_lock held exclusively */
    size_t map_soft; /* growth cap for appends: map_max minus the reserve */
    size_t map_max;  /* hard cap: only deletions and consumer updates go past map_soft */
    _Atomic uint64_t map_grows;
    enum store_fsync fsync;
    int lock_fd;

    /* writer-only state */
    struct tmem *topics; /* sorted by id (ids only grow) */
    size_t ntopics, cap;
    struct tmem *last_hit;
    uint32_t next_id;
    uint32_t *purge; /* ids of removed topics with data left */
    size_t npurge, purge_cap;
    size_t rr; /* retention round-robin position */
    /*
     * A committed txn deleted records. LMDB reuses the pages a txn frees
     * only from the second txn after it on, so an append that finds the
     * map full first commits an empty-ish txn (store_bump()) and retries.
     */
    bool freed;
};

/* Writer-only: the cached topic with this id, or NULL. */
struct tmem *topic_find(struct store *s, uint32_t id);

/* ---- Errors ---- */

/* Translate an LMDB result (0, positive errno, MDB_*) to ours; see store.h. */
int store_err(int mdb_rc);

/* ---- Transactions ---- */

/* Begin a read txn under map_lock (shared). Returns 0 or a store code. */
int rtxn_begin(struct store *s, MDB_txn **txn);
/* End a txn from rtxn_begin(). */
void rtxn_end(struct store *s, MDB_txn *txn);

/*
 * A write transaction of the writer thread. Topics whose state changes are
 * put on the touched list (wtxn_touch) so that commit writes their state
 * records and abort restores their cached state.
 */
struct wtxn {
    struct store *s;
    MDB_txn *txn;
    struct tmem *touched;
};

/* Begin a write txn. Returns 0 or an LMDB code (not translated). */
int wtxn_begin(struct store *s, struct wtxn *w);
/* Save t's committed state and list it for commit/abort. */
void wtxn_touch(struct wtxn *w, struct tmem *t);
/*
 * Write the touched topics' state records and commit. On failure the txn
 * is gone and the cache restored. Returns 0 or an LMDB code (untranslated,
 * so that callers can tell MDB_MAP_FULL and MDB_TXN_FULL apart).
 */
int wtxn_commit(struct wtxn *w);
/* Abort and restore the touched topics' cached state. */
void wtxn_abort(struct wtxn *w);

/*
 * Run fn in one write txn and commit; on MDB_MAP_FULL grow the map and run
 * fn again in a new txn. With reserve (deletions, consumer updates) a txn
 * that still does not fit may use the reserve above map_soft. Returns 0
 * or a translated code.
 */
int store_write(struct store *s, int (*fn)(struct wtxn *w, void *arg), void *arg, bool reserve);

/*
 * MDB_MAP_FULL handling for the writer, called with no txn open: double
 * the map up to map_soft. Returns 0 if it grew (retry), or MDB_MAP_FULL.
 */
int store_grow(struct store *s);

/*
 * Delete the oldest message of t inside w (t must have one; touched),
 * updating t->st. mc is a cursor on DB_MSGS in w. Returns 0 or an LMDB code.
 */
int msg_delete_first(struct wtxn *w, struct tmem *t, MDB_cursor *mc);

/*
 * Commit a txn that rewrites one meta record, so that pages freed by the
 * last txn become reusable (see struct store.freed). 0 or a code. Writer.
 */
int store_bump(struct store *s);

/* Delete the dedup record (topic, id) and its expiry entry. 0 / LMDB code. */
int dedup_delete(struct wtxn *w, uint32_t topic, const uint8_t *id, size_t idlen, uint64_t ts);

/*
 * Delete up to budget records of a removed topic (messages, dedup ids and
 * their expiry entries) in w. *done is set when nothing of it is left.
 * Returns the number deleted via *deleted; 0 or an LMDB code.
 */
int topic_purge_some(struct wtxn *w, uint32_t id, size_t budget, size_t *deleted, bool *done);

/* Purge list (writer). */
int purge_add(struct store *s, uint32_t id);
void purge_remove(struct store *s, uint32_t id);

/* Name syntax: 1..STORE_NAME_MAX of [A-Za-z0-9_-], NUL-terminated within cap. */
bool store_name_ok(const char *name, size_t cap, size_t *len);

/* Topic definition record (DB_TOPICS). */
int topic_cfg_decode(const MDB_val *v, struct store_topic_cfg *cfg);

/* Load the topic table and the purge list at open (in txn). Returns 0 or an LMDB/store code. */
int topics_load(struct store *s, MDB_txn *txn);

#endif
