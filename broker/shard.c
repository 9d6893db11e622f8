/*
 * shard.c - the shard event loop: ring set-up, the provided-buffer ring,
 * multishot accept and recv, completion dispatch, deferred work, timers and
 * shutdown.
 *
 * One loop iteration:
 *
 *   1. flush: re-arm recvs that ended, submit one sendmsg per dirty conn
 *   2. publish the provided buffers returned during the last batch
 *   3. one io_uring_enter: submit everything and wait (1 CQE or 100 ms)
 *   4. handle every ready CQE (handlers only queue work, no syscalls)
 *   5. check for stop; run the 100 ms tick (handshake and drain deadlines)
 *   Conns released during 4-5 are freed after the next flush, since the
 *   dirty list may still name them.
 *
 * The ring is set up with SINGLE_ISSUER | DEFER_TASKRUN on the shard's own
 * thread; nothing else submits to it. Peer shards wake it with a MSG_RING
 * doorbell (UD_WAKE, see xshard.c); the main thread only sets server.stop,
 * which the loop reads every iteration (it waits at most 100 ms).
 *
 * Thread: the shard's own thread, except shard_init (main thread, before the
 * thread starts).
 */
#include "shard.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "dispatch.h"
#include "dur.h"
#include "replay.h"
#include "rproxy.h"
#include "route.h"
#include "log.h"
#include "trie.h"
#include "xalloc.h"
#include "xshard.h"

#define SQ_ENTRIES 1024
#define CQ_ENTRIES 16384
#define BGID 0
#define TICK_NS (100 * 1000000ull)

/* See shard.h. */
uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* See shard.h. */
void shard_init(struct shard *sh, struct server *srv, unsigned id, int listen_fd)
{
    memset(sh, 0, sizeof(*sh));
    sh->srv = srv;
    sh->id = id;
    sh->listen_fd = listen_fd;
    sh->nbufs = srv->cfg.bufs;
    sh->buf_size = srv->cfg.buf_size;
    sh->br_mask = io_uring_buf_ring_mask(sh->nbufs);
    msgpool_init(&sh->pool, (uint16_t)id);
    strmap_init(&sh->pxtab);
    sh->backlog_hi =
        srv->cfg.max_pending / 2 < (8ull << 20) ? srv->cfg.max_pending / 2 : (8ull << 20);
}

/* See shard.h. */
struct io_uring_sqe *shard_sqe(struct shard *sh)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&sh->ring);
    while (!sqe) {
        io_uring_submit(&sh->ring);
        sqe = io_uring_get_sqe(&sh->ring);
    }
    return sqe;
}

/* ---- Deferred-work lists ---- */

static void list_push(struct conn ***arr, uint32_t *n, uint32_t *cap, struct conn *c)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        *arr = xrealloc(*arr, sizeof(**arr) * *cap);
    }
    (*arr)[(*n)++] = c;
}

/* See shard.h. */
void shard_push_dirty(struct shard *sh, struct conn *c)
{
    if (c->flags & CONN_F_DIRTY)
        return;
    c->flags |= CONN_F_DIRTY;
    list_push(&sh->dirty, &sh->ndirty, &sh->dirtycap, c);
}

/* See shard.h. */
void shard_push_slow(struct shard *sh, struct conn *c)
{
    if (c->flags & CONN_F_SLOW)
        return;
    c->flags |= CONN_F_SLOW;
    list_push(&sh->slow, &sh->nslow, &sh->slowcap, c);
}

/* See shard.h. */
void shard_push_stalled(struct shard *sh, struct conn *c)
{
    list_push(&sh->stalled, &sh->nstalled, &sh->stalledcap, c);
}

/* Is any shard's delivery backlogged (or our stage to it backed up)? */
static bool any_pressure(struct shard *sh)
{
    struct server *srv = sh->srv;
    for (unsigned d = 0; d < srv->nshards; d++) {
        if (atomic_load_explicit(&srv->shards[d].pressure, memory_order_relaxed))
            return true;
        if (d != sh->id && sh->stage[d].n - sh->stage[d].head > XRING_CAP / 2)
            return true;
    }
    return sh->dur_inflight > DUR_INFLIGHT_MAX / 2;
}

/* Let stalled publishers read again once the back-pressure is gone, or at
 * the latest after CONN_STALL_NS (and once their cancelled recv has
 * completed). */
static void resume_stalled(struct shard *sh)
{
    uint32_t j = 0;
    bool pressed = any_pressure(sh);
    for (uint32_t i = 0; i < sh->nstalled; i++) {
        struct conn *c = sh->stalled[i];
        if (c->flags & (CONN_F_CLOSING | CONN_F_DRAINING | CONN_F_NOREAD)) {
            c->flags &= ~CONN_F_STALLED;
            continue;
        }
        if ((pressed && sh->now_ns < c->stall_until_ns) || (c->flags & CONN_F_RECV)) {
            sh->stalled[j++] = c;
            continue;
        }
        c->flags &= ~CONN_F_STALLED;
        c->flags |= CONN_F_REARM;
        shard_push_dirty(sh, c);
    }
    sh->nstalled = j;
}

/* See shard.h. */
void shard_push_dead(struct shard *sh, struct conn *c)
{
    list_push(&sh->dead, &sh->ndead, &sh->deadcap, c);
}

/* See shard.h. */
void shard_push_unsub(struct shard *sh, struct sub *s)
{
    if (sh->nunsub == sh->unsubcap) {
        sh->unsubcap = sh->unsubcap ? sh->unsubcap * 2 : 64;
        sh->unsub = xrealloc(sh->unsub, sizeof(*sh->unsub) * sh->unsubcap);
    }
    sh->unsub[sh->nunsub++] = s;
}

/* ---- Provided buffers ---- */

static int bufring_setup(struct shard *sh)
{
    struct io_uring_buf_reg reg = {0};
    size_t ring_sz = sh->nbufs * sizeof(struct io_uring_buf);
    int rc;

    sh->br = mmap(NULL, ring_sz, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (sh->br == MAP_FAILED) {
        sh->br = NULL;
        return -errno;
    }
    sh->bufs = xmalloc((size_t)sh->nbufs * sh->buf_size);
    reg.ring_addr = (uint64_t)(uintptr_t)sh->br;
    reg.ring_entries = sh->nbufs;
    reg.bgid = BGID;
    rc = io_uring_register_buf_ring(&sh->ring, &reg, 0);
    if (rc)
        return rc;
    io_uring_buf_ring_init(sh->br);
    for (unsigned i = 0; i < sh->nbufs; i++)
        io_uring_buf_ring_add(sh->br, sh->bufs + (size_t)i * sh->buf_size, sh->buf_size,
                              (unsigned short)i, sh->br_mask, (int)i);
    io_uring_buf_ring_advance(sh->br, (int)sh->nbufs);
    return 0;
}

/* See shard.h. */
void shard_buf_return(struct shard *sh, unsigned bid)
{
    io_uring_buf_ring_add(sh->br, sh->bufs + (size_t)bid * sh->buf_size, sh->buf_size,
                          (unsigned short)bid, sh->br_mask, (int)sh->br_pending);
    sh->br_pending++;
}

/* ---- Accept and recv ---- */

static void arm_accept(struct shard *sh)
{
    struct io_uring_sqe *sqe = shard_sqe(sh);
    io_uring_prep_multishot_accept(sqe, sh->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, ud_make(sh, UD_ACCEPT));
    sh->accept_armed = true;
}

/* See shard.h. */
void shard_arm_recv(struct shard *sh, struct conn *c)
{
    struct io_uring_sqe *sqe = shard_sqe(sh);
    io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BGID;
    io_uring_sqe_set_data64(sqe, ud_make(c, UD_RECV));
    c->flags |= CONN_F_RECV;
    c->flags &= ~CONN_F_REARM;
    c->inflight++;
}

static void on_accept(struct shard *sh, struct io_uring_cqe *cqe)
{
    if (!(cqe->flags & IORING_CQE_F_MORE))
        sh->accept_armed = false; /* re-armed by the tick, after a pause */
    if (cqe->res < 0) {
        if (cqe->res != -ECANCELED)
            log_warn("[s%u] accept: %s", sh->id, strerror(-cqe->res));
        return;
    }
    if (sh->stopping) {
        close(cqe->res);
        return;
    }
    if (sh->nconns * sh->srv->nshards >= sh->srv->cfg.max_conns) {
        log_warn("[s%u] connection limit (%u) reached; refusing a client", sh->id,
                 sh->srv->cfg.max_conns);
        close(cqe->res);
        return;
    }
    conn_new(sh, cqe->res);
}

static void on_recv(struct shard *sh, struct conn *c, struct io_uring_cqe *cqe)
{
    bool more = cqe->flags & IORING_CQE_F_MORE;
    if (cqe->flags & IORING_CQE_F_BUFFER) {
        unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
        if (cqe->res > 0 && !(c->flags & (CONN_F_DRAINING | CONN_F_CLOSING | CONN_F_NOREAD))) {
            conn_on_data(c, sh->bufs + (size_t)bid * sh->buf_size, (size_t)cqe->res);
            if (sh->pub_pressure) {
                sh->pub_pressure = false;
                conn_stall(c);
            }
        }
        shard_buf_return(sh, bid);
    }
    if (!more) {
        c->inflight--;
        conn_on_recv_end(c, cqe->res);
    }
    conn_maybe_release(c);
}

/* ---- Loop ---- */

static void handle_cqe(struct shard *sh, struct io_uring_cqe *cqe)
{
    uint64_t ud = io_uring_cqe_get_data64(cqe);
    void *p = (void *)(uintptr_t)(ud & ~UD_TAG_MASK);
    struct conn *c = p;

    switch ((enum ud_tag)(ud & UD_TAG_MASK)) {
    case UD_ACCEPT:
        if (p == (void *)sh)
            on_accept(sh, cqe);
        else
            route_on_accept(sh, cqe);
        break;
    case UD_CONNECT:
        route_on_connect(sh, p, cqe);
        break;
    case UD_RECV:
        on_recv(sh, c, cqe);
        dispatch_after_route(sh);
        break;
    case UD_SEND:
        c->inflight--;
        conn_on_send(c, cqe->res, false);
        conn_maybe_release(c);
        break;
    case UD_SENDZC: {
        /* Two CQEs: the send's (F_MORE set when a NOTIF follows), then the
         * NOTIF, which alone says the kernel is done with the buffers. */
        struct iovblk *b = p;
        c = b->conn;
        if (cqe->flags & IORING_CQE_F_NOTIF) {
            conn_zc_done(b, cqe->res, true);
            c->inflight--;
        } else {
            bool more = cqe->flags & IORING_CQE_F_MORE;
            conn_on_send(c, cqe->res, true); /* b is freed by conn_zc_done */
            if (!more) {
                c->inflight--;
                conn_zc_done(b, 0, false);
            }
        }
        conn_maybe_release(c);
        break;
    }
    case UD_WAKE:
    case UD_IGNORE:
    default:
        break;
    }
}

static void flush_dirty(struct shard *sh)
{
    /* conn_flush may not add to the list, but keep the loop index-safe. */
    for (uint32_t i = 0; i < sh->ndirty; i++) {
        struct conn *c = sh->dirty[i];
        c->flags &= ~CONN_F_DIRTY;
        if (c->flags & CONN_F_CLOSING)
            continue;
        if ((c->flags & CONN_F_REARM) && !(c->flags & (CONN_F_RECV | CONN_F_DRAINING)))
            shard_arm_recv(sh, c);
        conn_flush(c);
    }
    sh->ndirty = 0;
}

static void free_dead(struct shard *sh)
{
    for (uint32_t i = 0; i < sh->ndead; i++) {
        if (sh->dead[i]->flags & CONN_F_ROUTE)
            route_conn_gone(sh, sh->dead[i]);
        conn_free(sh->dead[i]);
    }
    sh->ndead = 0;
}

/*
 * Shutdown runs in phases so that nothing a publisher saw acknowledged is
 * lost, even when it still has to cross shards:
 *   STOP_READ:    stop accepting, cancel every recv; subscriptions stay.
 *   STOP_FLUSHED: everything routed so far is in the peers' rings (the
 *                 stage is empty); counted in server.quiesced.
 *   STOP_DRAIN:   every shard is flushed; after one more drain of our
 *                 inbound rings nothing more can arrive, so every
 *                 connection drains (sends what is queued) and closes.
 * The shutdown deadline cuts any phase short.
 */
static void begin_stop(struct shard *sh)
{
    struct io_uring_sqe *sqe;
    sh->stopping = STOP_READ;
    sh->stop_deadline_ns = sh->now_ns + (uint64_t)sh->srv->cfg.shutdown_ms * 1000000ull;
    if (sh->accept_armed) {
        sqe = shard_sqe(sh);
        io_uring_prep_cancel64(sqe, ud_make(sh, UD_ACCEPT), 0);
        io_uring_sqe_set_data64(sqe, UD_IGNORE);
    }
    for (struct conn *c = sh->conns; c; c = c->next)
        conn_stop_reading(c);
    if (sh->id == 0 && sh->srv->cluster)
        route_stop(sh);
}

/* Advance the shutdown phases; called once per loop iteration after the
 * stage was flushed. */
static void stop_step(struct shard *sh)
{
    struct server *srv = sh->srv;
    bool staged = false;
    for (unsigned d = 0; d < srv->nshards; d++)
        staged |= sh->stage[d].n != sh->stage[d].head;
    switch (sh->stopping) {
    case STOP_READ:
        if (!staged) {
            atomic_fetch_add(&srv->quiesced, 1);
            sh->stopping = STOP_FLUSHED;
        }
        break;
    case STOP_FLUSHED:
        if (atomic_load(&srv->quiesced) == srv->nshards)
            sh->stopping = STOP_LAST_DRAIN;
        break;
    case STOP_LAST_DRAIN:
        /* The drain at the top of this iteration ran after every peer had
         * flushed: our rings hold nothing more for our subscribers. */
        sh->stopping = STOP_DRAIN;
        for (struct conn *c = sh->conns, *next; c; c = next) {
            next = c->next;
            conn_drain(c, srv->cfg.shutdown_ms);
        }
        break;
    default:
        break;
    }
}

static void tick(struct shard *sh)
{
    if (!sh->accept_armed && !sh->stopping)
        arm_accept(sh);
    if (sh->id == 0)
        route_tick(sh);
    for (struct conn *c = sh->conns, *next; c; c = next) {
        next = c->next;
        if (!(c->flags & (CONN_F_DRAINING | CONN_F_CLOSING)) && conn_is_slow(c, 0)) {
            conn_slow_close(c);
            continue;
        }
        if (!c->deadline_ns || sh->now_ns < c->deadline_ns || (c->flags & CONN_F_CLOSING))
            continue;
        if (c->flags & CONN_F_DRAINING) {
            log_info("[s%u] conn %llu (%s): could not flush %llu bytes in time; closing", sh->id,
                     (unsigned long long)c->id, c->peer, (unsigned long long)c->pending);
        } else {
            log_info("[s%u] conn %llu (%s): no CONNECT within %u ms; closing", sh->id,
                     (unsigned long long)c->id, c->peer, sh->srv->cfg.handshake_ms);
        }
        conn_close(c);
    }
}

static int ring_setup(struct shard *sh)
{
    struct io_uring_params p = {0};
    int rc;
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL |
              IORING_SETUP_COOP_TASKRUN | IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
    p.cq_entries = CQ_ENTRIES;
    rc = io_uring_queue_init_params(SQ_ENTRIES, &sh->ring, &p);
    if (rc == -EINVAL) {
        log_warn("[s%u] io_uring: DEFER_TASKRUN not supported; using a plain ring", sh->id);
        memset(&p, 0, sizeof(p));
        p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
        p.cq_entries = CQ_ENTRIES;
        rc = io_uring_queue_init_params(SQ_ENTRIES, &sh->ring, &p);
    }
    if (rc) {
        log_error("[s%u] io_uring_queue_init: %s", sh->id, strerror(-rc));
        return rc;
    }
    io_uring_register_ring_fd(&sh->ring);
    rc = bufring_setup(sh);
    if (rc) {
        log_error("[s%u] provided-buffer ring: %s", sh->id, strerror(-rc));
        return rc;
    }
    return 0;
}

static void shard_fini(struct shard *sh)
{
    /* Exiting the ring cancels all I/O, so what is left over after the
     * shutdown deadline can be freed afterwards. */
    io_uring_queue_exit(&sh->ring);
    free_dead(sh);
    while (sh->conns) {
        struct conn *c = sh->conns;
        sh->conns = c->next;
        if (c->fd >= 0)
            close(c->fd);
        if (c->blk) {
            for (uint32_t i = 0; i < c->blk->nzc; i++)
                xshard_unref(sh, c->blk->zc[i]);
            free(c->blk);
        }
        for (uint32_t i = c->qhead; i != c->qtail; i++) {
            struct outitem *it = &c->q[i & (c->qcap - 1)];
            if (it->body)
                xshard_unref(sh, it->body);
        }
        conn_free(c);
    }
    if (sh->br)
        munmap(sh->br, sh->nbufs * sizeof(struct io_uring_buf));
    free(sh->bufs);
    trie_free(sh->trie);
    while (sh->free_blks) {
        struct iovblk *b = sh->free_blks;
        sh->free_blks = b->next;
        free(b);
    }
    msgpool_fini(&sh->pool);
    rproxy_fini(sh);
    free(sh->dirty);
    free(sh->slow);
    free(sh->unsub);
    free(sh->dead);
    free(sh->stalled);
    if (sh->listen_fd >= 0)
        close(sh->listen_fd);
}

/* Block in io_uring_enter unless a peer has queued work for us. */
static void enter(struct shard *sh)
{
    struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = (long long)TICK_NS};
    struct io_uring_cqe *cqe;
    if ((sh->stopping && sh->stopping < STOP_DRAIN) || sh->nstalled)
        ts.tv_nsec = 1000000; /* shutdown phases / stalled publishers: 1 ms steps */
    if (replay_busy(sh)) {
        io_uring_submit_and_get_events(&sh->ring);
        return;
    }
    if (sh->srv->nshards > 1 || sh->srv->dur) {
        atomic_store(&sh->sleeping, 1);
        /* Pairs with the fence in xshard_flush and the storage thread's
         * flush_out: either the producer sees sleeping = 1 and rings, or we
         * see its entries here. */
        atomic_thread_fence(memory_order_seq_cst);
        if (xshard_pending(sh) || dur_pending(sh)) {
            atomic_store(&sh->sleeping, 0);
            io_uring_submit_and_get_events(&sh->ring);
            return;
        }
    }
    io_uring_submit_and_wait_timeout(&sh->ring, &cqe, 1, &ts, NULL);
    if (sh->srv->nshards > 1 || sh->srv->dur)
        atomic_store(&sh->sleeping, 0);
}

/* See shard.h. */
void *shard_run(void *arg)
{
    struct shard *sh = arg;
    struct server *srv = sh->srv;
    uint64_t next_tick;
    bool ok;

    if (sh->cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(sh->cpu, &set);
        if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set))
            log_warn("[s%u] could not pin to CPU %d", sh->id, sh->cpu);
    }
    sh->trie = trie_new();
    ok = sh->trie && ring_setup(sh) == 0;
    if (ok) {
        xshard_init(sh);
        topic_shard_init(sh);
    }
    /* Every ring exists before anyone sends a doorbell to it. */
    pthread_barrier_wait(&srv->barrier);
    if (!ok) {
        sh->exit_code = 1;
        atomic_store(&srv->stop, true);
        pthread_barrier_wait(&srv->barrier);
        xshard_fini(sh);
        shard_fini(sh);
        return NULL;
    }

    sh->now_ns = now_ns();
    next_tick = sh->now_ns + TICK_NS;
    arm_accept(sh);
    if (sh->id == 0 && srv->cluster)
        route_start(sh);

    for (;;) {
        struct io_uring_cqe *cqe;
        unsigned head, n = 0;

        xshard_drain(sh, 4096);
        dur_drain(sh);
        replay_run(sh);
        if (sh->npx_paused)
            rproxy_run(sh);
        if (sh->nstalled)
            resume_stalled(sh);
        flush_dirty(sh);
        xshard_flush(sh);
        dur_flush(sh);
        if (sh->br_pending) {
            io_uring_buf_ring_advance(sh->br, (int)sh->br_pending);
            sh->br_pending = 0;
        }
        free_dead(sh); /* after flush_dirty: the dirty list may name them */
        if (sh->stopping) {
            stop_step(sh);
            if (sh->now_ns >= sh->stop_deadline_ns)
                break;
            /* Done when every conn is gone and the cancelled accept has
             * completed: until then the kernel holds the listening socket,
             * and a restart on the same port would find it in use. */
            if (sh->stopping == STOP_DRAIN && !sh->conns && !sh->accept_armed && !sh->dur_inflight)
                break;
        }
        enter(sh);
        sh->now_ns = now_ns();
        io_uring_for_each_cqe(&sh->ring, head, cqe)
        {
            handle_cqe(sh, cqe);
            n++;
        }
        io_uring_cq_advance(&sh->ring, n);
        if (!sh->stopping && atomic_load_explicit(&srv->stop, memory_order_relaxed))
            begin_stop(sh);
        if (sh->now_ns >= next_tick) {
            tick(sh);
            next_tick = sh->now_ns + TICK_NS;
        }
    }
    if (sh->conns)
        log_warn("[s%u] shutdown deadline passed with %llu connections still flushing", sh->id,
                 (unsigned long long)sh->nconns);
    /* Peers may still hand us entries until they have all left their loops. */
    xshard_flush(sh);
    dur_flush(sh);
    io_uring_submit(&sh->ring);
    pthread_barrier_wait(&srv->barrier);
    xshard_fini(sh);
    topic_shard_fini(sh);
    shard_fini(sh);
    return NULL;
}
