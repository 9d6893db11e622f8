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
    DB_MSGS,      /* id u32 | first seq u64 -> chunk of messages (see below) */
    DB_DEDUP,     /* id u32 | dedup id -> ts u64 | seq u64 */
    DB_DEDUPTS,   /* id u32 | ts u64 | dedup id -> "" (expiry order) */
    DB_CONSUMERS, /* id u32 | name -> consumer record */
    DB_COUNT
};

#define STORE_FORMAT_MAGIC 0x524d5153u /* "RMQS" */
#define STORE_FORMAT_VERSION 2u        /* 1: one record per message; 2: chunks */

#define MSG_KEY_LEN 12 /* topic u32 | first seq of the chunk u64 */
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

/* ---- Message chunks (DB_MSGS) ----
 *
 * The messages of one topic appended by one store_append_batch() are
 * packed into chunk records, keyed by (topic, seq of the chunk's first
 * entry). Entry j of a chunk has seq first + j:
 *
 *   +-----------+-------------------------------+---------------------------+
 *   | count u32 | { ts u64 | end u32 } x count  | data 0 | data 1 | ...      |
 *   +-----------+-------------------------------+---------------------------+
 *     header      index: 12 bytes per entry       payloads, back to back
 *
 * end is the offset just past entry j's payload in the data area, so
 * entry j is data[end(j-1) .. end(j)) (end(-1) = 0) and the record is
 * exactly 4 + 12 * count + end(count-1) bytes. A chunk holds at most
 * CHUNK_MSGS_MAX entries and CHUNK_DATA_MAX payload bytes; a single
 * larger message gets a chunk of its own.
 *
 * Within those bounds chunks are cut to suit LMDB's pages: a value up to
 * inline_max (2018 bytes with 4 KiB pages) lives in a leaf page; a larger
 * one takes whole overflow pages (16-byte header), so a 2.2 KiB chunk
 * would waste half a page. Chunks smaller than a page are cut at
 * inline_cap (a quarter page, 1002 bytes), so that MDB_APPEND fills leaf
 * pages well; a larger run that would end just past a page boundary is
 * cut where its first part fills whole pages, if the rest then costs less
 * on its own (store_append.c chunk_cut()).
 *
 * Retention never rewrites a chunk: the live messages of a topic are
 * tstate first_seq..last_seq, so dropping the head only advances
 * first_seq (exact msgs/bytes in tstate), and a chunk is deleted once
 * all of its entries are below first_seq. (Only the purge of a removed
 * topic rewrites one, when its budget ends inside a chunk.) Chunk keys of
 * a topic are contiguous: each chunk starts where the previous one ends.
 */
#define CHUNK_HDR_LEN 4
#define CHUNK_IDX_LEN 12
#define CHUNK_MSGS_MAX 256
#define CHUNK_DATA_MAX ((size_t)1 << 20)
/* LMDB 0.9 page layout, only to size chunks well (correctness does not depend on it). */
#define LMDB_PAGE_HDR 16 /* page header, also in front of an overflow run */
#define LMDB_LEAF_NODE 8 /* leaf node header, before the key */

/* A decoded view of one chunk record; pointers into the map (or a dirty page). */
struct chunk {
    uint64_t first; /* seq of entry 0 */
    uint32_t count;
    const uint8_t *idx, *data;
};

static inline uint64_t chunk_ts(const struct chunk *c, uint32_t j)
{
    return get_be64(c->idx + (size_t)j * CHUNK_IDX_LEN);
}

static inline uint32_t chunk_end(const struct chunk *c, uint32_t j)
{
    return get_be32(c->idx + (size_t)j * CHUNK_IDX_LEN + 8);
}

static inline uint32_t chunk_start(const struct chunk *c, uint32_t j)
{
    return j == 0 ? 0 : chunk_end(c, j - 1);
}

/*
 * Decode and check a DB_MSGS record of topic: key size and topic, count,
 * index ends non-decreasing and the record size. 0, RMQ_ENOTFOUND (the
 * key is another topic's) or STORE_ECORRUPT. Any thread.
 */
int chunk_decode(uint32_t topic, const MDB_val *k, const MDB_val *v, struct chunk *c);

/*
 * Position mc on the chunk of topic that holds seq (which the caller's
 * tstate says is stored) and decode it into *c. 0, STORE_ECORRUPT (no
 * such chunk) or an LMDB code. Any thread (mc of the caller's txn).
 */
int chunk_seek(MDB_cursor *mc, uint32_t topic, uint64_t seq, struct chunk *c);

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
    bool touched;                 /* in the current write txn's touched list */
    bool append_hint;             /* the last MDB_APPEND on this topic worked */
    uint32_t append_misses;       /* plain puts since append_hint was cleared */
    size_t pend_first, pend_last; /* this attempt's entries to chunk (SIZE_MAX: none) */
    uint64_t max_msgs, max_bytes, max_age_ns, dedup_window_ns;
    struct tstate st, saved;
    struct tmem *touched_next;
    char name[STORE_NAME_MAX + 1];
};

/* An accepted entry of the append attempt, waiting to be packed into a chunk. */
struct pend_ent {
    size_t next; /* next accepted entry of the same topic, or SIZE_MAX */
    uint64_t ts; /* its stored (non-decreasing) timestamp */
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
    size_t map_size;   /* LMDB's map size; changed under map_lock held exclusively */
    size_t map_soft;   /* growth cap for appends: map_max minus the reserve */
    size_t map_max;    /* hard cap: only deletions and consumer updates go past map_soft */
    size_t psize;      /* LMDB page size */
    size_t inline_max; /* largest msgs value LMDB keeps in a leaf page (else overflow pages) */
    size_t inline_cap; /* chunks kept in leaf pages stay this small: a quarter page */
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
    size_t rr;             /* retention round-robin position */
    struct pend_ent *pend; /* store_append_batch() scratch, one per entry */
    size_t pend_cap;
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
 * Drop messages from the head of t inside w (t touched by the caller)
 * while limits is set and t is over max_msgs/max_bytes, or its first
 * message is older than age_cutoff (0: no age limit), and *dropped <
 * budget; each message adds one to *dropped. Updates t->st; chunks left
 * without live entries are deleted (*freed set). mc is a DB_MSGS cursor
 * of w. Returns 0 or an LMDB/store code.
 */
int msgs_trim(struct wtxn *w, struct tmem *t, MDB_cursor *mc, uint64_t age_cutoff, bool limits,
              size_t budget, size_t *dropped, bool *freed);

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
 * A chunk counts as its messages; one that would pass the budget is cut
 * (its head deleted, the rest rewritten under its new first seq).
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
