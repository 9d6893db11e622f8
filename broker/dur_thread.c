/*
 * dur_thread.c - the storage thread: its loop, group commit of appends,
 * the doorbells to and from the shards, fsync and retention timers.
 *
 * One loop iteration takes everything the shards have published (one
 * exchange), handles it in arrival order with consecutive appends gathered
 * into ONE store_append_batch() (one LMDB write transaction, one fdatasync
 * with --fsync always), sends the results back, and runs the timers. While
 * a commit runs, new appends pile up in the inbox and make the next batch:
 * that is the group commit, with no timer and no added latency when idle.
 *
 * Thread: the storage thread, except dur_start/dur_stop (main thread).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dur_int.h"
#include "log.h"
#include "shard.h"
#include "xalloc.h"

#define RETENTION_NS (1000ull * 1000000)
#define UD_SYNC 1 /* user_data of the interval flush */
#define CONS_TICK_NS (20ull * 1000000)
#define IDLE_WAIT_NS (100ull * 1000000)

/* See dur_int.h. */
uint64_t dur_realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* See dur_int.h. */
void dur_reply(struct dur *d, struct dop *op)
{
    mpsc_chain_add(&d->out[op->shard], &op->node);
    d->out_dirty[op->shard] = true;
}

/* Publish each shard's chain; ring the shards that sleep. */
static void flush_out(struct dur *d)
{
    struct server *srv = d->srv;
    bool rang = false;
    for (unsigned i = 0; i < srv->nshards; i++) {
        struct shard *sh = &srv->shards[i];
        if (!d->out_dirty[i])
            continue;
        d->out_dirty[i] = false;
        mpsc_push_chain(&sh->dur_in, &d->out[i]);
        /* Pairs with the fence in the shard's sleep check (shard.c enter). */
        atomic_thread_fence(memory_order_seq_cst);
        if (atomic_load_explicit(&sh->sleeping, memory_order_relaxed) &&
            atomic_exchange(&sh->sleeping, 0)) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(&d->ring);
            if (!sqe) {
                io_uring_submit(&d->ring);
                sqe = io_uring_get_sqe(&d->ring);
            }
            io_uring_prep_msg_ring(sqe, sh->ring_fd, 0, UD_WAKE, 0);
            sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
            io_uring_sqe_set_data64(sqe, 0);
            rang = true;
        }
    }
    if (rang)
        io_uring_submit(&d->ring);
}

/* Commit the gathered appends in one transaction and answer them. */
static void commit_batch(struct dur *d)
{
    uint32_t touched[8], nt = 0;
    bool many = false;
    int rc;
    if (!d->napps)
        return;
    rc = store_append_batch(d->st, d->apps, d->napps);
    if (rc && rc != RMQ_ENOTFOUND && rc != -EMSGSIZE)
        log_warn("storage: append batch of %u: %s", d->napps, rmq_err_str(rc));
    stat_add(&d->stats.batches, 1);
    if (d->srv->cfg.fsync_mode == STORE_FSYNC_INTERVAL)
        d->unsynced = true;
    for (uint32_t i = 0; i < d->napps; i++) {
        struct store_append *a = &d->apps[i];
        struct dop_append *op = d->appops[i];
        op->h.rc = a->rc;
        op->seq = a->seq;
        op->duplicate = a->duplicate;
        op->ts_ns = a->ts_ns;
        if (a->rc)
            stat_add(&d->stats.store_errors, 1);
        else if (a->duplicate)
            stat_add(&d->stats.duplicates, 1);
        else {
            stat_add(&d->stats.stored, 1);
            bool seen = false;
            for (uint32_t k = 0; k < nt; k++)
                seen |= touched[k] == a->topic;
            if (!seen && nt < 8)
                touched[nt++] = a->topic;
            else if (!seen)
                many = true;
        }
        dur_reply(d, &op->h);
    }
    d->napps = 0;
    /* Acks first, then the consumers' deliveries of the new messages. */
    if (many)
        dur_consumers_pump(d, 0);
    else
        for (uint32_t k = 0; k < nt; k++)
            dur_consumers_pump(d, touched[k]);
}

static void gather_append(struct dur *d, struct dop_append *op)
{
    struct store_append *a;
    if (d->napps == d->appcap) {
        d->appcap = d->appcap ? d->appcap * 2 : 256;
        d->apps = xrealloc(d->apps, d->appcap * sizeof(*d->apps));
        d->appops = xrealloc(d->appops, d->appcap * sizeof(*d->appops));
    }
    a = &d->apps[d->napps];
    memset(a, 0, sizeof(*a));
    a->topic = op->topic;
    a->ts_ns = op->ts_ns;
    a->data = op->data;
    a->len = op->len;
    if (op->dedup_len) {
        a->dedup_id = op->data + op->dedup_off;
        a->dedup_len = op->dedup_len;
    }
    d->appops[d->napps++] = op;
}

static void handle(struct dur *d, struct dop *op)
{
    if (op->type == DOP_APPEND) {
        gather_append(d, (struct dop_append *)op);
        return;
    }
    commit_batch(d); /* keep arrival order around everything else */
    switch ((enum dop_type)op->type) {
    case DOP_ADMIN:
        dur_admin(d, (struct dop_admin *)op);
        break;
    case DOP_ACK:
        dur_ack(d, (struct dop_ack *)op);
        free(op);
        break;
    case DOP_BIND:
        dur_bind(d, (struct dop_bind *)op);
        break;
    case DOP_UNBIND:
        dur_unbind(d, (struct dop_bind *)op);
        break;
    case DOP_TOPICS:
        dur_topics_back(d, (struct dop_topics *)op);
        break;
    default:
        log_error("storage: unexpected op %u from shard %u", op->type, op->shard);
        free(op);
        break;
    }
}

/* Completions on our ring: the interval flush (doorbell CQEs carry 0). */
static void reap(struct dur *d)
{
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;
    io_uring_for_each_cqe(&d->ring, head, cqe)
    {
        if (cqe->user_data == UD_SYNC) {
            d->sync_inflight = false;
            if (cqe->res < 0)
                log_error("storage: fdatasync of the data file: %s", rmq_err_str(cqe->res));
        }
        n++;
    }
    io_uring_cq_advance(&d->ring, n);
}

/*
 * --fsync interval: flush with an asynchronous fdatasync (IORING_OP_FSYNC)
 * of data.mdb, so commits go on while the disk flushes. fdatasync acts on
 * the file, not the descriptor: what LMDB wrote before it started (data and
 * meta pages, MDB_NOSYNC) is on disk when it completes, as with
 * store_sync(). One flush at a time.
 */
static void interval_flush(struct dur *d)
{
    uint64_t every = (uint64_t)d->srv->cfg.fsync_interval_ms * 1000000ull;
    struct io_uring_sqe *sqe;
    if (!d->unsynced || d->sync_inflight || d->now_ns - d->last_sync_ns < every)
        return;
    d->unsynced = false;
    d->last_sync_ns = d->now_ns;
    if (d->sync_fd < 0) {
        int rc = store_sync(d->st);
        if (rc)
            log_error("storage: fsync: %s", rmq_err_str(rc));
        return;
    }
    sqe = io_uring_get_sqe(&d->ring);
    if (!sqe) {
        io_uring_submit(&d->ring);
        sqe = io_uring_get_sqe(&d->ring);
    }
    io_uring_prep_fsync(sqe, d->sync_fd, IORING_FSYNC_DATASYNC);
    io_uring_sqe_set_data64(sqe, UD_SYNC);
    d->sync_inflight = true;
    io_uring_submit(&d->ring);
}

static void timers(struct dur *d)
{
    reap(d);
    interval_flush(d);
    if (d->now_ns - d->last_cons_ns >= CONS_TICK_NS) {
        d->last_cons_ns = d->now_ns;
        dur_consumers_tick(d);
    }
    if (d->now_ns - d->last_retention_ns >= RETENTION_NS) {
        size_t deleted = 4096;
        int rc = 0;
        d->last_retention_ns = d->now_ns;
        /* Bounded: at most 16 transactions of 4096 deletions per second. */
        for (int i = 0; i < 16 && deleted == 4096 && rc == 0; i++)
            rc = store_retention_run(d->st, dur_realtime_ns(), 4096, &deleted);
        if (rc)
            log_warn("storage: retention: %s", rmq_err_str(rc));
    }
}

static uint64_t wait_ns(struct dur *d)
{
    uint64_t w = IDLE_WAIT_NS;
    if (d->unsynced && !d->sync_inflight) {
        uint64_t due = d->last_sync_ns + (uint64_t)d->srv->cfg.fsync_interval_ms * 1000000ull;
        w = due > d->now_ns ? due - d->now_ns : 0;
    }
    if (d->consumers && w > CONS_TICK_NS)
        w = CONS_TICK_NS;
    return w;
}

static void sleep_wait(struct dur *d)
{
    struct __kernel_timespec ts;
    struct io_uring_cqe *cqe;
    uint64_t w = wait_ns(d);
    atomic_store(&d->sleeping, 1);
    /* Pairs with the fence in dur_flush: the shard sees sleeping = 1 and
     * rings, or we see its ops here. */
    atomic_thread_fence(memory_order_seq_cst);
    if (!mpsc_nonempty(&d->in) && !atomic_load(&d->stop) && w > 0) {
        ts.tv_sec = (long long)(w / 1000000000ull);
        ts.tv_nsec = (long long)(w % 1000000000ull);
        io_uring_submit_and_wait_timeout(&d->ring, &cqe, 1, &ts, NULL);
    }
    atomic_store(&d->sleeping, 0);
    reap(d);
}

static void *dur_main(void *arg)
{
    struct dur *d = arg;
    for (;;) {
        struct mpsc_node *l = mpsc_take_all(&d->in);
        bool stop = atomic_load(&d->stop);
        d->now_ns = now_ns();
        while (l) {
            struct mpsc_node *nx = l->next;
            handle(d, (struct dop *)l);
            l = nx;
        }
        commit_batch(d);
        dur_consumers_persist(d);
        timers(d);
        flush_out(d);
        if (stop && !mpsc_nonempty(&d->in))
            break;
        if (!mpsc_nonempty(&d->in))
            sleep_wait(d);
    }
    return NULL;
}

/* See dur.h. */
int dur_start(struct server *srv)
{
    struct config *cfg = &srv->cfg;
    struct store_opts o = {0};
    char err[STORE_ERR_LEN];
    struct dur *d;
    int rc;

    srv->dur = NULL;
    srv->store = NULL;
    if (!cfg->storage)
        return 0;
    d = xcalloc(1, sizeof(*d));
    d->srv = srv;
    o.dir = cfg->data_dir;
    o.map_size = cfg->store_map_size;
    o.map_max = cfg->store_max;
    o.fsync = (enum store_fsync)cfg->fsync_mode;
    o.max_readers = 126 + srv->nshards;
    rc = store_open(&o, &d->st, err, sizeof(err));
    if (rc) {
        log_error("storage: cannot open the data dir %s: %s", cfg->data_dir, err);
        free(d);
        return rc;
    }
    rc = io_uring_queue_init(256, &d->ring, 0);
    if (rc < 0) {
        log_error("storage: io_uring_queue_init: %s", rmq_err_str(rc));
        store_close(d->st);
        free(d);
        return rc;
    }
    d->sync_fd = -1;
    if (cfg->fsync_mode == STORE_FSYNC_INTERVAL) {
        char path[sizeof(cfg->data_dir) + 16];
        snprintf(path, sizeof(path), "%s/data.mdb", cfg->data_dir);
        d->sync_fd = open(path, O_RDONLY | O_CLOEXEC);
        if (d->sync_fd < 0)
            log_warn("storage: %s: %s; flushing synchronously", path, strerror(errno));
    }
    d->out = xcalloc(srv->nshards, sizeof(*d->out));
    d->out_dirty = xcalloc(srv->nshards, sizeof(*d->out_dirty));
    d->tab = dur_table_build(d);
    d->now_ns = d->last_sync_ns = d->last_retention_ns = d->last_cons_ns = now_ns();
    rc = dur_consumers_load(d);
    if (rc == 0 && (rc = -pthread_create(&d->thread, NULL, dur_main, d)) != 0)
        log_error("storage: cannot start the storage thread: %s", rmq_err_str(rc));
    if (rc) {
        dur_consumers_free(d);
        topic_table_unref(d->tab);
        if (d->sync_fd >= 0)
            close(d->sync_fd);
        io_uring_queue_exit(&d->ring);
        store_close(d->st);
        free(d->out);
        free(d->out_dirty);
        free(d);
        return rc;
    }
    srv->dur = d;
    srv->store = d->st;
    log_info("storage: %s, fsync %s, %u topic(s)", cfg->data_dir,
             cfg->fsync_mode == 0   ? "always"
             : cfg->fsync_mode == 1 ? "interval"
                                    : "never",
             d->tab->n);
    return 0;
}

/* An op nobody will handle any more (shutdown). */
static void op_free(struct dop *op)
{
    if (op->type == DOP_TOPICS && ((struct dop_topics *)op)->tab)
        topic_table_unref(((struct dop_topics *)op)->tab);
    if (op->type == DOP_ADMIN)
        free(((struct dop_admin *)op)->out);
    if (op->type == DOP_UNBIND)
        free(((struct dop_bind *)op)->b); /* its shard would have freed it */
    free(op);
}

/* Ring the storage thread from the main thread with a MSG_RING of our
 * own (its ring has one submitter, itself); else it notices the stop
 * within IDLE_WAIT_NS. */
static void wake(struct dur *d)
{
    struct io_uring r;
    struct io_uring_sqe *sqe;
    struct io_uring_cqe *cqe;
    if (io_uring_queue_init(2, &r, 0) < 0)
        return;
    sqe = io_uring_get_sqe(&r);
    io_uring_prep_msg_ring(sqe, d->ring.ring_fd, 0, 0, 0);
    if (io_uring_submit(&r) == 1)
        io_uring_wait_cqe(&r, &cqe);
    io_uring_queue_exit(&r);
}

/* See dur.h. Runs after every shard thread has been joined. */
void dur_stop(struct server *srv)
{
    struct dur *d = srv->dur;
    struct mpsc_node *l;
    if (!d)
        return;
    atomic_store(&d->stop, true);
    wake(d);
    pthread_join(d->thread, NULL);
    for (unsigned i = 0; i < srv->nshards; i++) {
        mpsc_push_chain(&srv->shards[i].dur_in, &d->out[i]);
        for (l = mpsc_take_all(&srv->shards[i].dur_in); l;) {
            struct mpsc_node *nx = l->next;
            op_free((struct dop *)l);
            l = nx;
        }
    }
    for (l = mpsc_take_all(&d->in); l;) {
        struct mpsc_node *nx = l->next;
        op_free((struct dop *)l);
        l = nx;
    }
    for (uint32_t i = 0; i < d->nwaits; i++)
        op_free(&d->waits[i].op->h);
    dur_consumers_free(d);
    topic_table_unref(d->tab);
    while (d->sync_inflight) { /* the flush, before its fd goes */
        struct io_uring_cqe *cqe;
        if (io_uring_wait_cqe(&d->ring, &cqe) < 0)
            break;
        reap(d);
    }
    io_uring_queue_exit(&d->ring);
    if (d->sync_fd >= 0)
        close(d->sync_fd);
    store_close(d->st); /* flushes, in every fsync mode */
    free(d->waits);
    free(d->apps);
    free(d->appops);
    free(d->out);
    free(d->out_dirty);
    free(d);
    srv->dur = NULL;
    srv->store = NULL;
}

/* See dur.h. */
struct topic_table *dur_table_ref(struct server *srv)
{
    struct topic_table *t = srv->dur->tab;
    atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
    return t;
}
