/*
 * store.h - durable topics on LMDB: topic definitions, messages keyed by
 * (topic, sequence), deduplication ids, retention and durable consumer
 * cursors. The storage thread of the broker owns a struct store; replay
 * readers on other threads use it too. No MDB_* type or code leaves this
 * module: errors follow proto/rmq_error.h (0, -errno, RMQ_*).
 *
 * @section threads Threads
 *
 * A store has ONE writer thread. The calls marked "Thread: writer" below
 * (store_topic_add, store_topic_rm, store_append_batch, store_retention_run,
 * store_consumer_put, store_consumer_del, store_consumer_ack_batch,
 * store_sync) keep unlocked in-memory state and must be made from one
 * thread at a time, never concurrently with each other. The calls marked
 * "Thread: any" (store_read, store_seq_at_time, store_last_seq,
 * store_topic_get, store_topic_list, store_topic_info, store_consumer_get,
 * store_consumer_list, store_env_info) may run on any number of threads at
 * once, concurrently with the writer: each opens its own short LMDB read
 * transaction (the env is opened with MDB_NOTLS) and sees the last
 * committed state, never a half-applied batch. store_open() and
 * store_close() must not overlap any other call on the same store.
 *
 * Growing the map (MDB_MAP_FULL, see store_opts.map_max) needs no LMDB
 * transaction active in the process, so readers hold a read lock for the
 * length of their transaction and the writer takes it exclusively for the
 * resize only. Callbacks run inside a reader's transaction: they must be
 * short and must not call any store_* function (that may deadlock).
 *
 * @section fork Fork
 *
 * As with LMDB, use a store only in the process that opened it. A child
 * created by fork() must not touch its parent's store (not even close it);
 * it may open the data dir itself once the parent has closed it. One data
 * dir can be open once at a time: a second store_open() on the same dir,
 * from this or another process, fails with -EBUSY.
 *
 * @section layout Data dir
 *
 *     <dir>/data.mdb      LMDB data file (all named databases)
 *     <dir>/lock.mdb      LMDB reader table
 *     <dir>/ringmq.lock   flock()ed while a store has the dir open
 */
#ifndef RMQ_STORAGE_STORE_H
#define RMQ_STORAGE_STORE_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "rmq_error.h"

/** @defgroup limits Limits */
#define STORE_NAME_MAX 64         /**< topic and consumer names: 1..64 of [A-Za-z0-9_-] */
#define STORE_PATTERNS_MAX 16     /**< subject patterns per topic: 1..16 */
#define STORE_PATTERN_MAX 256     /**< bytes per pattern, as SUBJECT_MAX_LEN */
#define STORE_DEDUP_ID_MAX 128    /**< bytes per dedup id: 1..128 */
#define STORE_MSG_MAX (64u << 20) /**< bytes per message */
#define STORE_ERR_LEN 256         /**< a store_open() error buffer this big is never cut */

/** @defgroup errors Error codes of this module (beyond rmq_error.h)
 *
 * Every call returns 0 (or a count) on success and a negative code on
 * failure. LMDB results are translated here, at the module boundary:
 *
 *     MDB_NOTFOUND             RMQ_ENOTFOUND
 *     MDB_MAP_FULL             RMQ_ESTOREFULL (only once the map cannot grow)
 *     MDB_KEYEXIST             -EEXIST
 *     MDB_TXN_FULL             -E2BIG   (a transaction dirtied too many pages)
 *     MDB_READERS_FULL         -EAGAIN  (all reader slots busy; retry)
 *     MDB_MAP_RESIZED          -EAGAIN  (cannot happen: the dir is locked)
 *     MDB_INVALID, MDB_CORRUPTED, MDB_PAGE_NOTFOUND, MDB_INCOMPATIBLE, MDB_BAD_*
 *                              STORE_ECORRUPT
 *     MDB_VERSION_MISMATCH     STORE_EVERSION
 *     MDB_PANIC                -EIO     (close the store and reopen it)
 *     MDB_TLS_FULL, MDB_CURSOR_FULL, MDB_PAGE_FULL, MDB_DBS_FULL
 *                              -EIO     (internal limits: a bug here)
 *     positive errno e         -e
 */
#ifdef RMQ_ECORRUPT
#define STORE_ECORRUPT RMQ_ECORRUPT /**< the data dir is damaged or not a store */
#else
#define STORE_ECORRUPT (-EUCLEAN) /**< until rmq_error.h has RMQ_ECORRUPT */
#endif
#define STORE_EVERSION (-EPROTO) /**< data dir written by an unknown format/LMDB version */

/** Opaque store handle: one LMDB environment with its named databases. */
struct store;

/**
 * What a commit guarantees. All three modes survive a crash of the process
 * (kill -9, abort, a segfault elsewhere in the broker) with every committed
 * batch intact: LMDB writes a transaction's pages to the file (the OS page
 * cache) before mdb_txn_commit() returns. They differ on a crash of the
 * machine (power loss, kernel panic, VM reset):
 */
enum store_fsync {
    /**
     * fdatasync() in every commit (LMDB default: data pages, then the meta
     * page). store_append_batch() returns only after its batch is on disk.
     * Power loss loses nothing that was acknowledged (given a disk that
     * honours flushes). Throughput is bounded by the disk's flush latency,
     * which group commit amortises over a batch.
     */
    STORE_FSYNC_ALWAYS = 0,
    /**
     * MDB_NOSYNC: commits do not flush; the owner calls store_sync() every
     * N ms (the broker's --fsync-interval). Power loss loses the batches
     * committed since the last completed store_sync(), so at most about N ms
     * of acknowledged messages. On a filesystem that preserves write order
     * (ext4 data=ordered, xfs) the database stays consistent: a crash only
     * undoes the final transactions (LMDB: "ACI, not D"). Elsewhere the
     * file may be corrupt after power loss; store_open() then fails with
     * STORE_ECORRUPT rather than serve damaged data where it can tell.
     */
    STORE_FSYNC_INTERVAL = 1,
    /**
     * MDB_NOSYNC | MDB_NOMETASYNC: nothing is flushed until store_close()
     * or an explicit store_sync(); the kernel writes dirty pages back when
     * it likes (vm.dirty_expire_centisecs, 30 s by default). Power loss can
     * lose everything written since the last write-back, and the same
     * consistency caveat as STORE_FSYNC_INTERVAL applies.
     */
    STORE_FSYNC_NEVER = 2,
};

/** Options for store_open(); copied, the caller keeps ownership. */
struct store_opts {
    const char *dir; /**< data dir; created (with parents, mode 0700) if missing */
    size_t map_size; /**< initial map size; 0: 256 MiB; rounded up to 64 KiB */
    /**
     * Hard cap of the map, so of data.mdb; 0: max(16 GiB, map_size); at
     * least max(map_size, 1 MiB). The map doubles on MDB_MAP_FULL up to
     * map_max minus a reserve (1/32 of map_max, 128 KiB..64 MiB) that
     * only deletions (retention, store_topic_rm()) and consumer updates
     * may use: LMDB needs fresh pages to delete (copy-on-write), so a
     * store that appends filled to the brim could not free itself.
     */
    size_t map_max;
    enum store_fsync fsync; /**< see enum store_fsync */
    unsigned max_readers;   /**< concurrent read transactions; 0: 126 */
};

/**
 * A topic definition. The same struct is used to define a topic (input of
 * store_topic_add()) and to read it back; strings are NUL-terminated
 * inside the arrays. Patterns are stored as given; the broker validates
 * their syntax. A limit of 0 means unlimited.
 */
struct store_topic_cfg {
    char name[STORE_NAME_MAX + 1];                            /**< 1..64 of [A-Za-z0-9_-] */
    uint32_t npatterns;                                       /**< 1..STORE_PATTERNS_MAX */
    char patterns[STORE_PATTERNS_MAX][STORE_PATTERN_MAX + 1]; /**< each 1..256 bytes */
    uint64_t max_msgs;        /**< keep at most this many messages (oldest go first) */
    uint64_t max_bytes;       /**< keep at most this many payload bytes (oldest go first) */
    uint64_t max_age_ns;      /**< store_retention_run() drops messages older than this */
    uint64_t dedup_window_ns; /**< dedup ids are remembered this long; 0: ids are ignored */
};

/** State of one topic, as of the last commit. */
struct store_topic_info {
    uint32_t id;
    uint64_t msgs;        /**< messages stored */
    uint64_t bytes;       /**< sum of their payload lengths (keys and overhead excluded) */
    uint64_t first_seq;   /**< oldest stored seq; last_seq + 1 when empty */
    uint64_t last_seq;    /**< last seq ever assigned (kept when retention empties it); 0: none */
    uint64_t first_ts_ns; /**< timestamp of first_seq; 0 when empty */
    uint64_t last_ts_ns;  /**< timestamp of the last seq ever assigned; 0: none */
};

/**
 * One entry of store_append_batch(). Inputs are borrowed for the call
 * only (the bytes are copied into the store); outputs are written by it.
 */
struct store_append {
    /* in */
    uint32_t topic;       /**< topic id from store_topic_add()/store_topic_get() */
    uint64_t ts_ns;       /**< message time; raised to the topic's last timestamp if lower */
    const void *dedup_id; /**< optional dedup id (NULL / 0: none) */
    size_t dedup_len;     /**< 0..STORE_DEDUP_ID_MAX */
    const void *data;     /**< opaque message bytes (may be NULL when len is 0) */
    size_t len;           /**< 0..STORE_MSG_MAX, and at most the topic's max_bytes */
    /* out */
    int rc;         /**< 0, or why this entry was not stored */
    bool duplicate; /**< rc 0, dedup id seen within the window: nothing stored */
    uint64_t seq;   /**< rc 0: seq assigned (or the original's, if duplicate) */
};

/**
 * A stored message passed to a store_read_fn. data points into the LMDB
 * map: it is owned by the store, must not be modified, and is valid only
 * until the callback returns (the read transaction ends after the call).
 * Copy what you keep (the broker copies it into a msgbuf).
 */
struct store_msg {
    uint64_t seq;
    uint64_t ts_ns; /**< the stored timestamp (see store_append.ts_ns) */
    const void *data;
    size_t len;
};

/**
 * Callback of store_read(). Return 0 to go on, > 0 to stop after this
 * message (it counts as delivered), < 0 to stop before it: store_read()
 * then returns that value and *next_seq is this message's seq.
 */
typedef int (*store_read_fn)(void *arg, const struct store_msg *m);

/** Callback of store_topic_list(); cfg is borrowed for the call. Return 0 to go on. */
typedef int (*store_topic_fn)(void *arg, uint32_t id, const struct store_topic_cfg *cfg);

/**
 * A durable consumer: a named cursor on one topic. Delivery counts and the
 * in-flight set live in the broker's memory; the store keeps the ack floor
 * (every seq <= ack_floor is acknowledged) and the configuration.
 */
struct store_consumer {
    char name[STORE_NAME_MAX + 1]; /**< 1..64 of [A-Za-z0-9_-], unique per topic */
    uint32_t topic;                /**< topic id */
    uint64_t ack_floor;            /**< every seq <= ack_floor is acknowledged */
    uint32_t max_inflight;         /**< unacked deliveries allowed at once; 0: broker default */
    uint32_t max_deliver;          /**< delivery attempts per message; 0: unlimited */
    uint64_t ack_wait_ns;          /**< redeliver after this long without an ack */
    uint32_t flags;                /**< the broker's; stored as given */
};

/** Callback of store_consumer_list(); c is borrowed for the call. Return 0 to go on. */
typedef int (*store_consumer_fn)(void *arg, const struct store_consumer *c);

/** One entry of store_consumer_ack_batch(). */
struct store_ack {
    uint32_t topic;   /**< in */
    const char *name; /**< in, borrowed: consumer name */
    uint64_t floor;   /**< in: new ack floor; a value below the stored one is ignored */
    int rc;           /**< out: 0, RMQ_ENOTFOUND, -EINVAL, ... */
};

/** Environment figures for store_env_info(). */
struct store_env_info {
    size_t map_size;    /**< current map size (grows by doubling) */
    size_t map_max;     /**< growth cap */
    size_t used_bytes;  /**< high-water mark of the data file (pages * page size) */
    uint64_t map_grows; /**< map doublings since store_open() */
    uint64_t txn_id;    /**< id of the last committed write transaction (+1 per commit) */
    uint32_t topics;    /**< live topics */
    uint32_t purging;   /**< removed topics whose data is still being deleted */
};

/**
 * @brief Open (or create) the store in o->dir.
 *
 * Creates the dir (mode 0700) and the LMDB files if missing, checks that
 * the files are a ringmq store of a known format, loads the topic table
 * and locks the dir against a second opener. A damaged, foreign or
 * unreadable data dir is reported, never crashed on: the checks cover
 * garbage or truncated data.mdb, bad LMDB meta pages, unknown LMDB or store
 * format versions, missing permissions and non-directories. They cannot
 * catch damage inside B-tree pages (LMDB keeps no checksums).
 * @note Thread: any, but no other call on this store may overlap it.
 * @param[in] o      Options; copied (o->dir too).
 * @param[out] out   The new store, to be freed with store_close(); NULL on error.
 * @param[out] err   Buffer for a NUL-terminated message on failure (may be
 *                   NULL); left empty on success.
 * @param[in] errlen Size of err (STORE_ERR_LEN is always enough).
 * @return 0, or:
 * <ul><li>-EINVAL - bad options.  <li>-ENOTDIR - o->dir (or a parent) is not a directory.
 *     <li>-EACCES / -EPERM / -EROFS - no permission to read and write the dir or its files.
 *     <li>-EBUSY - the dir is open in another store (this or another process).
 *     <li>STORE_ECORRUPT - data.mdb is damaged or is not a ringmq store.
 *     <li>STORE_EVERSION - written by another LMDB or store format version.
 *     <li>-ENOMEM, other -errno from the filesystem.</ul>
 */
int store_open(const struct store_opts *o, struct store **out, char *err, size_t errlen);

/**
 * @brief Close the store: flush (in every fsync mode), release the dir, free s.
 * @note Thread: any, after every other call on s has returned. NULL is a no-op.
 */
void store_close(struct store *s);

/**
 * @brief Flush committed transactions to disk (fdatasync).
 *
 * STORE_FSYNC_INTERVAL calls this every N ms; a no-op in effect for
 * STORE_FSYNC_ALWAYS. Blocks for the flush.
 * @note Thread: writer.
 * @return 0 or -errno (e.g. -EIO).
 */
int store_sync(struct store *s);

/**
 * @brief Define a new topic, committed when this returns (durable per enum store_fsync).
 * @note Thread: writer.
 * @param[in] cfg  Borrowed; its strings must be NUL-terminated in their arrays.
 * @param[out] id  The new topic's id (never 0, never reused after removal).
 * @return 0, or -EEXIST (name taken), -EINVAL (bad name, pattern count or
 * pattern length), RMQ_ESTOREFULL, -ENOMEM, -EIO.
 */
int store_topic_add(struct store *s, const struct store_topic_cfg *cfg, uint32_t *id);

/**
 * @brief Remove a topic with its messages, dedup ids and consumers.
 *
 * One transaction removes the definition, the consumers and up to 4096 of
 * the messages (with their dedup ids); the topic is gone for every reader
 * once it returns, and its name can be reused at once (under a new id). If
 * more data remains, a durable purge record is left and store_retention_run()
 * deletes the rest in bounded chunks, resuming after a restart if needed
 * (and so does everything if the map is too full for a 4096-message txn).
 * So removing a huge topic never makes one huge transaction.
 * @note Thread: writer.
 * @return 0, RMQ_ENOTFOUND, RMQ_ESTOREFULL, -ENOMEM, -EIO.
 */
int store_topic_rm(struct store *s, uint32_t id);

/**
 * @brief Look a topic up by name.
 * @note Thread: any.
 * @param[out] id   The topic's id (may be NULL).
 * @param[out] cfg  Its definition, copied (may be NULL).
 * @return 0, RMQ_ENOTFOUND, -EINVAL (name not valid), or a store error.
 */
int store_topic_get(struct store *s, const char *name, uint32_t *id, struct store_topic_cfg *cfg);

/**
 * @brief Call fn for every topic, in id order, from one read transaction.
 * @note Thread: any. fn must not call into the store.
 * @return The number of topics visited (fn returning non-zero stops the
 * walk early and that value is returned instead), or a negative code.
 */
ssize_t store_topic_list(struct store *s, store_topic_fn fn, void *arg);

/**
 * @brief Message count, bytes, first/last seq and timestamps of a topic.
 * @note Thread: any.
 * @return 0, RMQ_ENOTFOUND, or a store error.
 */
int store_topic_info(struct store *s, uint32_t id, struct store_topic_info *info);

/**
 * @brief Append n messages in ONE write transaction (group commit).
 *
 * Entries are applied in order. Each gets its own result in a[i].rc: one
 * failing entry (unknown topic, bad arguments, too large) does not fail
 * the others. Seqs are 1, 2, 3, ... per topic with no gaps; only retention
 * removes messages, and only the oldest. A dedup id seen on the same topic
 * within its dedup_window_ns (measured between the two entries' stored
 * timestamps) yields duplicate = true and the original seq, storing
 * nothing, even if the original message has already been removed by
 * retention. max_msgs and max_bytes are enforced in the same transaction,
 * oldest first; max_age_ns is left to store_retention_run().
 *
 * Timestamps are made non-decreasing per topic: an entry with ts_ns below
 * the topic's last timestamp is stored with that last timestamp, so seq
 * order is time order (store_seq_at_time() relies on it).
 *
 * If the map fills, it is doubled (up to map_max less its reserve, see
 * store_opts) and the transaction is retried. At the cap, the longest
 * prefix of the batch that fits is committed and the entries after it fail
 * with RMQ_ESTOREFULL; the store stays usable, and has room again once
 * retention or store_topic_rm() delete.
 * The only case that splits a batch over several commits is MDB_TXN_FULL
 * (a batch dirtying more than ~512 MiB of pages): then the batch is
 * committed in consecutive pieces, still in order.
 *
 * When it returns, every entry with rc 0 is committed (and on disk with
 * STORE_FSYNC_ALWAYS); the broker may then acknowledge and deliver them.
 * @note Thread: writer.
 * @param[in,out] a Entries; inputs borrowed, outputs written.
 * @return 0 if every entry has rc 0, else the rc of the first failing entry
 * (all entries are processed either way), or -EINVAL if a is NULL with n > 0.
 * Entry codes: RMQ_ENOTFOUND (no such topic), -EINVAL (bad data/dedup
 * pointers or lengths), -EMSGSIZE (len > STORE_MSG_MAX or > the topic's
 * max_bytes), RMQ_ESTOREFULL, -ENOMEM, -EIO, STORE_ECORRUPT.
 */
int store_append_batch(struct store *s, struct store_append *a, size_t n);

/**
 * @brief Read messages of a topic in seq order from one short read transaction.
 *
 * Starts at the first stored seq >= from_seq (0: the oldest) and calls fn
 * for each message until max_msgs messages or max_bytes payload bytes
 * (0: no byte limit) have been delivered; the first message is delivered
 * even if it alone exceeds max_bytes, so a reader always progresses. A
 * seq below the topic's first stored seq starts at the first one (fn sees
 * the jump in m->seq). Bytes passed to fn are borrowed: see struct store_msg.
 * @note Thread: any. fn must not call into the store; keep it short (it
 * holds a reader slot and delays map growth).
 * @param[out] next_seq  The seq to pass as from_seq next time: the last
 * delivered + 1, or if none was, max(from_seq, last_seq + 1) (may be NULL).
 * @return The number of messages delivered (>= 0), a negative code from fn,
 * RMQ_ENOTFOUND (no such topic), -EINVAL (max_msgs 0 or fn NULL), or a store error.
 */
ssize_t store_read(struct store *s, uint32_t topic, uint64_t from_seq, size_t max_msgs,
                   size_t max_bytes, store_read_fn fn, void *arg, uint64_t *next_seq);

/**
 * @brief The first stored seq whose timestamp is >= ts_ns.
 *
 * O(log^2 n): a binary search over the topic's seqs (stored seqs are
 * contiguous and timestamps non-decreasing, see store_append_batch()).
 * @note Thread: any.
 * @param[out] seq  That seq; last_seq + 1 (the next one to be assigned) if
 * every stored message is older or the topic is empty.
 * @return 0, RMQ_ENOTFOUND (no such topic), or a store error.
 */
int store_seq_at_time(struct store *s, uint32_t topic, uint64_t ts_ns, uint64_t *seq);

/**
 * @brief The last seq assigned in a topic (0 if none ever was).
 * @note Thread: any.
 * @return 0, RMQ_ENOTFOUND, or a store error.
 */
int store_last_seq(struct store *s, uint32_t topic, uint64_t *seq);

/**
 * @brief One bounded background retention transaction.
 *
 * Deletes at most budget records (0: 4096), oldest first: data of removed
 * topics (store_topic_rm()), messages older than max_age_ns (ts_ns <
 * now_ns - max_age_ns), messages over max_msgs/max_bytes (normally already
 * enforced by appends), and dedup ids whose window has passed (ts_ns <
 * now_ns - dedup_window_ns). Topics are visited round-robin across calls,
 * so a large backlog in one does not starve the others. now_ns must come
 * from the clock the broker uses for store_append.ts_ns.
 * @note Thread: writer.
 * @param[out] deleted  Records deleted (may be NULL); if it equals the
 * budget there may be more to do: call again.
 * @return 0, RMQ_ESTOREFULL (even one deletion does not fit: the map is
 * at map_max with no free page), -ENOMEM, -EIO, STORE_ECORRUPT.
 */
int store_retention_run(struct store *s, uint64_t now_ns, size_t budget, size_t *deleted);

/**
 * @brief Create or replace the durable consumer (c->topic, c->name).
 * @note Thread: writer. c is copied.
 * @return 0, RMQ_ENOTFOUND (no such topic), -EINVAL (bad name), RMQ_ESTOREFULL, -EIO.
 */
int store_consumer_put(struct store *s, const struct store_consumer *c);

/**
 * @brief Read the durable consumer (topic, name) into *c (copied).
 * @note Thread: any.
 * @return 0, RMQ_ENOTFOUND, -EINVAL, or a store error.
 */
int store_consumer_get(struct store *s, uint32_t topic, const char *name, struct store_consumer *c);

/**
 * @brief Delete the durable consumer (topic, name).
 * @note Thread: writer.
 * @return 0, RMQ_ENOTFOUND, -EINVAL, or a store error.
 */
int store_consumer_del(struct store *s, uint32_t topic, const char *name);

/**
 * @brief Call fn for each consumer of topic (0: of every topic), ordered by
 * (topic, name), from one read transaction.
 * @note Thread: any. fn must not call into the store.
 * @return The number visited (or fn's non-zero value, which stops the
 * walk), or a negative code.
 */
ssize_t store_consumer_list(struct store *s, uint32_t topic, store_consumer_fn fn, void *arg);

/**
 * @brief Raise the ack floors of several consumers in ONE transaction.
 *
 * Floors only move forward; an entry below the stored floor leaves it as
 * it is (rc 0). The broker batches acks here instead of one
 * store_consumer_put() per ack.
 * @note Thread: writer.
 * @return 0 if every entry has rc 0, else the first failing entry's rc;
 * a store-level failure (RMQ_ESTOREFULL, -EIO) fails all entries.
 */
int store_consumer_ack_batch(struct store *s, struct store_ack *acks, size_t n);

/**
 * @brief Map size, growth and usage figures, from one read transaction.
 * @note Thread: any.
 * @return 0 or a store error.
 */
int store_env_info(struct store *s, struct store_env_info *info);

#endif
