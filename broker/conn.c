/*
 * conn.c - connection lifecycle, ingress reassembly, the egress queue.
 *
 * Ingress: the multishot recv hands us bytes in a provided buffer. Whole
 * frames are dispatched in place; only a frame's partial tail is copied into
 * c->rbuf (bounded by the server's max frame), and the buffer goes back to
 * the ring in the same loop iteration.
 *
 * Egress: frames are queued as outitems (prefix + shared body reference).
 * One sendmsg is in flight at a time; it carries everything queued, up to
 * IOV_BATCH iovecs or SEND_BATCH_BYTES. On its completion the sent bytes are
 * popped and their references dropped, and the next sendmsg goes out.
 *
 * Close protocol (nothing is freed while the kernel may still touch it):
 *
 *   open --fatal error/slow/EOF/shutdown--> DRAINING --queue empty--+
 *     |                                   (recv cancelled)          |
 *     +--------------------socket error / deadline-------------> CLOSING
 *   CLOSING: cancel all I/O on fd; subscriptions already removed.
 *   inflight == 0: close(fd) is queued, the conn goes on the shard's dead
 *   list and is freed at the end of the loop iteration.
 *
 * Thread: the owning shard only.
 */
#include "conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "codec.h"
#include "dispatch.h"
#include "route.h"
#include "log.h"
#include "trie.h"
#include "xalloc.h"
#include "xshard.h"

#define RBUF_KEEP (64 * 1024)         /* reassembly capacity kept between frames */
#define QUEUE_KEEP 1024               /* out-queue items kept when the queue empties */
#define QUEUE_KEEP_ROUTE 65536        /* the same for a route: it carries every burst */
#define ROUTE_BACKLOG_HI (512u << 10) /* a route's back-pressure mark (bytes pending) */

static void peer_name(int fd, char *out, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
            port = ntohs(a->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
            port = ntohs(a->sin6_port);
        }
    }
    snprintf(out, len, "%s:%u", host, port);
}

/* See conn.h. Called from the accept completion. */
struct conn *conn_new(struct shard *sh, int fd)
{
    struct conn *c = xcalloc(1, sizeof(*c));
    int one = 1;
    c->sh = sh;
    c->fd = fd;
    c->id = atomic_fetch_add(&sh->srv->next_client_id, 1);
    c->deadline_ns = sh->now_ns + (uint64_t)sh->srv->cfg.handshake_ms * 1000000ull;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    peer_name(fd, c->peer, sizeof(c->peer));
    c->next = sh->conns;
    if (sh->conns)
        sh->conns->prev = c;
    sh->conns = c;
    sh->nconns++;
    stat_add(&sh->stats.conns_total, 1);
    stat_add(&sh->stats.conns_now, 1);
    log_debug("[s%u] conn %llu from %s", sh->id, (unsigned long long)c->id, c->peer);
    shard_arm_recv(sh, c);
    return c;
}

/* ---- Ingress ---- */

static bool conn_reading(const struct conn *c)
{
    return !(c->flags & (CONN_F_DRAINING | CONN_F_CLOSING | CONN_F_NOREAD));
}

static void rbuf_reserve(struct conn *c, uint32_t need)
{
    if (c->rcap >= need)
        return;
    uint32_t cap = c->rcap ? c->rcap : 4096;
    while (cap < need)
        cap *= 2;
    c->rbuf = xrealloc(c->rbuf, cap);
    c->rcap = cap;
}

static void rbuf_done(struct conn *c)
{
    c->rlen = 0;
    if (c->rcap > RBUF_KEEP) {
        free(c->rbuf);
        c->rbuf = NULL;
        c->rcap = 0;
    }
}

static void frame_too_big(struct conn *c, uint32_t len)
{
    char text[128];
    snprintf(text, sizeof(text), "frame of %u bytes is over the limit of %u", len,
             c->sh->srv->max_body);
    stat_add(&c->sh->stats.bad_frames, 1);
    log_info("[s%u] conn %llu (%s): %s", c->sh->id, (unsigned long long)c->id, c->peer, text);
    conn_send_error(c, RINGMQ__ERROR_CODE__ERR_FRAME_TOO_BIG, text, 0, true);
}

/* Store the incomplete frame start p[0..n) in rbuf (n may be < 4). */
static void rbuf_stash(struct conn *c, const uint8_t *p, size_t n)
{
    uint32_t need = (uint32_t)n;
    if (n >= CODEC_HDR_LEN) {
        need = CODEC_HDR_LEN + codec_be32(p); /* <= max_body: codec_split checked */
    }
    rbuf_reserve(c, need < CODEC_HDR_LEN ? CODEC_HDR_LEN : need);
    memcpy(c->rbuf, p, n);
    c->rlen = (uint32_t)n;
}

/* Move bytes from *p into rbuf until it holds upto bytes (rbuf has room).
 * Returns true once it does. */
static bool rbuf_fill(struct conn *c, const uint8_t **p, size_t *n, uint32_t upto)
{
    size_t take = upto - c->rlen < *n ? upto - c->rlen : *n;
    if (c->rlen >= upto)
        return true;
    memcpy(c->rbuf + c->rlen, *p, take);
    c->rlen += (uint32_t)take;
    *p += take;
    *n -= take;
    return c->rlen == upto;
}

/* See conn.h. */
void conn_on_data(struct conn *c, const uint8_t *p, size_t n)
{
    struct shard *sh = c->sh;
    uint32_t max_body = sh->srv->max_body;
    struct codec_span body;
    int rc;

    stat_add(&sh->stats.bytes_in, n);
    if (c->rlen) {
        uint32_t blen;
        if (!rbuf_fill(c, &p, &n, CODEC_HDR_LEN))
            return;
        blen = codec_be32(c->rbuf);
        if (blen > max_body) {
            frame_too_big(c, blen);
            return;
        }
        rbuf_reserve(c, CODEC_HDR_LEN + blen);
        if (!rbuf_fill(c, &p, &n, CODEC_HDR_LEN + blen))
            return;
        if (c->flags & CONN_F_ROUTE)
            route_frame(c, c->rbuf + CODEC_HDR_LEN, blen);
        else
            dispatch_frame(c, c->rbuf + CODEC_HDR_LEN, blen);
        rbuf_done(c);
        if (!conn_reading(c))
            return;
    }
    while (n) {
        rc = codec_split(p, n, max_body, &body);
        if (rc < 0) {
            frame_too_big(c, codec_be32(p));
            return;
        }
        if (rc == 0) {
            rbuf_stash(c, p, n);
            return;
        }
        if (c->flags & CONN_F_ROUTE)
            route_frame(c, body.p, body.len);
        else
            dispatch_frame(c, body.p, body.len);
        if (!conn_reading(c))
            return;
        p += CODEC_HDR_LEN + body.len;
        n -= CODEC_HDR_LEN + body.len;
    }
}

/* See conn.h. res: 0 = EOF, < 0 = error, 1 = multishot ended with data. */
void conn_on_recv_end(struct conn *c, int res)
{
    struct shard *sh = c->sh;
    c->flags &= ~CONN_F_RECV;
    if (c->flags & CONN_F_CLOSING)
        return;
    if (res == -ENOBUFS || res > 0) {
        /* Not an error: re-arm once buffers are back (next iteration). */
        if (res == -ENOBUFS)
            stat_add(&sh->stats.enobufs, 1);
        if (conn_reading(c) && !(c->flags & CONN_F_STALLED)) {
            c->flags |= CONN_F_REARM;
            shard_push_dirty(sh, c);
        }
        return;
    }
    if (res == -ECANCELED && (c->flags & (CONN_F_DRAINING | CONN_F_NOREAD | CONN_F_STALLED)))
        return;
    if (res == 0) {
        c->flags |= CONN_F_EOF;
        if (c->rlen)
            log_info("[s%u] conn %llu (%s) closed mid-frame (%u bytes of a frame)", sh->id,
                     (unsigned long long)c->id, c->peer, c->rlen);
        else
            log_debug("[s%u] conn %llu closed by peer", sh->id, (unsigned long long)c->id);
        /* Flush what is queued for it (it may only have shut down its side). */
        conn_drain(c, sh->srv->cfg.shutdown_ms);
        return;
    }
    log_debug("[s%u] conn %llu recv error: %s", sh->id, (unsigned long long)c->id, strerror(-res));
    conn_close(c);
}

/* ---- Egress ---- */

_Static_assert(sizeof(((struct outitem *)0)->prefix) >= CODEC_MSG_PREFIX_MAX, "prefix room");

/* Track whether c counts toward its shard's back-pressure (with
 * hysteresis: in above backlog_hi, out at half of it). */
static uint64_t backlog_hi(const struct conn *c)
{
    /* A route carries everything for a node: pause its publishers sooner,
     * before its queue (and the memory behind it) grows large. */
    return (c->flags & CONN_F_ROUTE) && c->sh->backlog_hi > ROUTE_BACKLOG_HI ? ROUTE_BACKLOG_HI
                                                                             : c->sh->backlog_hi;
}

static void backlog_update(struct conn *c)
{
    struct shard *sh = c->sh;
    bool going = c->flags & (CONN_F_DRAINING | CONN_F_CLOSING | CONN_F_RELEASED);
    uint64_t hi = backlog_hi(c);
    if (!(c->flags & CONN_F_BACKLOG) && !going && c->pending > hi) {
        c->flags |= CONN_F_BACKLOG;
        sh->nbacklog++;
    } else if ((c->flags & CONN_F_BACKLOG) && (going || c->pending <= hi / 2)) {
        /* A conn being closed (e.g. a slow consumer) holds nobody back. */
        c->flags &= ~CONN_F_BACKLOG;
        sh->nbacklog--;
    } else {
        return;
    }
    atomic_store_explicit(&sh->pressure, sh->nbacklog, memory_order_relaxed);
}

static inline uint32_t item_len(const struct outitem *it)
{
    return it->plen + (it->body ? it->body->len : 0);
}

/*
 * A connection is a slow consumer when it is over max_pending and its
 * output has not moved for the slow-consumer grace (--slow-grace-ms): its
 * socket is full, the peer is not reading. Or when it passes the hard cap
 * (8 x max_pending, at least 64 MiB) at any moment, reading or not, which
 * bounds its memory. A consumer that reads, however slowly, is not cut off
 * before the hard cap: back-pressure (conn_stall) slows its publishers
 * down instead.
 */
bool conn_is_slow(const struct conn *c, uint64_t more)
{
    const struct config *cfg = &c->sh->srv->cfg;
    uint64_t max = cfg->max_pending;
    uint64_t hard = max * 8 > (64ull << 20) ? max * 8 : (64ull << 20);
    if (c->pending + more <= max)
        return false;
    if (c->pending + more > hard)
        return true;
    return c->sh->now_ns - c->progress_ns > (uint64_t)cfg->slow_grace_ms * 1000000ull;
}

/* See conn.h. */
bool conn_enqueue(struct conn *c, const uint8_t *prefix, size_t plen, struct msgbuf *body,
                  bool force)
{
    struct shard *sh = c->sh;
    uint64_t len = plen + (body ? body->len : 0);
    struct outitem *it;

    if (c->flags & CONN_F_CLOSING)
        return false;
    if (!force && conn_is_slow(c, len)) {
        shard_push_slow(sh, c);
        return false;
    }
    if (c->qtail - c->qhead == c->qcap) {
        uint32_t ncap = c->qcap ? c->qcap * 2 : 16;
        struct outitem *nq = xmalloc(sizeof(*nq) * ncap);
        for (uint32_t i = 0; i < c->qtail - c->qhead; i++)
            nq[i] = c->q[(c->qhead + i) & (c->qcap - 1)];
        free(c->q);
        c->qtail -= c->qhead;
        c->qhead = 0;
        c->q = nq;
        c->qcap = ncap;
    }
    it = &c->q[c->qtail++ & (c->qcap - 1)];
    if (c->qcopy) { /* nothing may be appended behind this item */
        c->qcopy = NULL;
        c->qcopy_next = 0; /* small and large frames mixed: small copy buffers */
    }
    it->body = body ? msgbuf_ref(body) : NULL;
    it->off = 0;
    it->plen = (uint8_t)plen;
    if (plen)
        memcpy(it->prefix, prefix, plen);
    if (c->pending <= sh->srv->cfg.max_pending)
        c->progress_ns = sh->now_ns; /* under the limit until now */
    c->pending += len;
    if (c->pending > backlog_hi(c))
        backlog_update(c);
    shard_push_dirty(sh, c);
    return true;
}

/* See conn.h. */
bool conn_enqueue_copy(struct conn *c, const uint8_t *prefix, size_t plen, const uint8_t *data,
                       size_t dlen, bool force)
{
    struct shard *sh = c->sh;
    uint64_t len = plen + dlen;
    struct msgbuf *b = c->qcopy;

    if (c->flags & CONN_F_CLOSING)
        return false;
    if (!force && conn_is_slow(c, len)) {
        shard_push_slow(sh, c);
        return false;
    }
    if (!b || msgbuf_room(b) - b->len < len) {
        /* A new buffer as the last item. The kernel may be reading the
         * start of the old one (a sendmsg in flight): bytes are only ever
         * added behind what a sendmsg was given, never changed. Its size
         * doubles while buffers fill up (a run of small frames) and starts
         * small after a referenced item closed one, so memory stays near
         * what pending counts when small and large frames alternate. */
        uint32_t want = c->qcopy_next ? c->qcopy_next : CONN_COPY_FIRST;
        if (b)
            want = msgbuf_room(b) >= CONN_COPY_BUF / 2 ? CONN_COPY_BUF : msgbuf_room(b) * 2;
        if (want < len)
            want = (uint32_t)len;
        c->qcopy_next = want;
        b = msgbuf_new(&sh->pool, want);
        b->len = 0;
        conn_enqueue(c, NULL, 0, b, true);
        xshard_unref(sh, b); /* the queue holds it */
        c->qcopy = b;
    }
    memcpy(b->data + b->len, prefix, plen);
    memcpy(b->data + b->len + plen, data, dlen);
    b->len += (uint32_t)len;
    if (c->pending <= sh->srv->cfg.max_pending)
        c->progress_ns = sh->now_ns;
    c->pending += len;
    if (c->pending > backlog_hi(c))
        backlog_update(c);
    shard_push_dirty(sh, c);
    return true;
}

/* See conn.h. */
struct iovblk *blk_get(struct shard *sh)
{
    struct iovblk *b = sh->free_blks;
    if (b)
        sh->free_blks = b->next;
    else
        b = xmalloc(sizeof(*b));
    b->nzc = 0;
    return b;
}

/* See conn.h. */
void blk_put(struct shard *sh, struct iovblk *b)
{
    b->next = sh->free_blks;
    sh->free_blks = b;
}

/* See conn.h. */
void conn_flush(struct conn *c)
{
    struct shard *sh = c->sh;
    struct io_uring_sqe *sqe;
    struct iovblk *b;
    unsigned n = 0, items = 0;
    size_t bytes = 0;
    uint32_t zc_min = sh->srv->cfg.zerocopy_min;
    bool zc = false;

    if (!zc_min || (c->flags & CONN_F_NOZC))
        zc_min = UINT32_MAX;

    if ((c->flags & (CONN_F_SENDING | CONN_F_CLOSING)) || c->qhead == c->qtail)
        return;
    b = blk_get(sh);
    /* items: pre[] and zc[] hold IOV_BATCH / 2 (a copy-buffer item takes
     * one iovec, so n alone does not bound them). */
    for (uint32_t i = c->qhead; i != c->qtail && n + 2 <= IOV_BATCH && items < IOV_BATCH / 2; i++) {
        struct outitem *it = &c->q[i & (c->qcap - 1)];
        uint32_t off = it->off;
        if (bytes >= SEND_BATCH_BYTES)
            break;
        items++;
        if (it->body && it->body->len >= zc_min)
            zc = true;
        if (off < it->plen) {
            memcpy(b->pre[items - 1], it->prefix + off, it->plen - off);
            b->iov[n].iov_base = b->pre[items - 1];
            b->iov[n++].iov_len = it->plen - off;
            bytes += it->plen - off;
            off = it->plen;
        }
        if (it->body && off - it->plen < it->body->len) {
            b->iov[n].iov_base = it->body->data + (off - it->plen);
            b->iov[n++].iov_len = it->body->len - (off - it->plen);
            bytes += it->body->len - (off - it->plen);
        }
    }
    memset(&b->mh, 0, sizeof(b->mh));
    b->mh.msg_iov = b->iov;
    b->mh.msg_iovlen = n;
    c->blk = b;
    c->sendn = items;
    sqe = shard_sqe(sh);
    if (zc) {
        /* The kernel reads the bodies until the NOTIF, even after the
         * first CQE and even if the conn closes: the block holds its own
         * reference to each of them until then. */
        b->conn = c;
        b->nzc = 0;
        for (uint32_t i = 0; i < items; i++) {
            struct outitem *it = &c->q[(c->qhead + i) & (c->qcap - 1)];
            if (it->body)
                b->zc[b->nzc++] = msgbuf_ref(it->body);
        }
        io_uring_prep_sendmsg_zc(sqe, c->fd, &b->mh, MSG_NOSIGNAL | MSG_WAITALL);
        sqe->ioprio |= RMQ_SEND_ZC_REPORT_USAGE;
        io_uring_sqe_set_data64(sqe, ud_make(b, UD_SENDZC));
        stat_add(&sh->stats.zc_sends, 1);
    } else {
        io_uring_prep_sendmsg(sqe, c->fd, &b->mh, MSG_NOSIGNAL | MSG_WAITALL);
        io_uring_sqe_set_data64(sqe, ud_make(c, UD_SEND));
    }
    c->flags |= CONN_F_SENDING;
    c->inflight++;
    stat_add(&sh->stats.sends, 1);
    stat_add(&sh->stats.send_iovs, n);
}

static void queue_pop_sent(struct conn *c, size_t sent)
{
    struct shard *sh = c->sh;
    while (sent && c->qhead != c->qtail) {
        struct outitem *it = &c->q[c->qhead & (c->qcap - 1)];
        uint32_t left = item_len(it) - it->off;
        if (sent < left) {
            it->off += (uint32_t)sent;
            c->pending -= sent;
            return;
        }
        sent -= left;
        c->pending -= left;
        if (it->body == c->qcopy)
            c->qcopy = NULL; /* all sent: it goes back to the pool */
        if (it->body)
            xshard_unref(sh, it->body);
        c->qhead++;
    }
    if (c->qhead == c->qtail &&
        c->qcap > ((c->flags & CONN_F_ROUTE) ? QUEUE_KEEP_ROUTE : QUEUE_KEEP)) {
        /* A burst is over: give its queue memory back. */
        free(c->q);
        c->q = NULL;
        c->qcap = c->qhead = c->qtail = 0;
    }
}

/* Drop queued items. While a sendmsg is in flight, the items it covers
 * (the first c->sendn) stay: the kernel may still read them. */
static void queue_clear(struct conn *c)
{
    struct shard *sh = c->sh;
    uint32_t keep = (c->flags & CONN_F_SENDING) ? c->qhead + c->sendn : c->qhead;
    while (c->qtail != keep) {
        struct outitem *it = &c->q[(c->qtail - 1) & (c->qcap - 1)];
        c->pending -= item_len(it) - it->off;
        if (it->body == c->qcopy)
            c->qcopy = NULL;
        if (it->body)
            xshard_unref(sh, it->body);
        c->qtail--;
    }
}

/* See conn.h. */
void conn_on_send(struct conn *c, int res, bool keep_blk)
{
    struct shard *sh = c->sh;
    c->flags &= ~CONN_F_SENDING;
    if (!keep_blk)
        blk_put(sh, c->blk);
    c->blk = NULL;
    if (res < 0) {
        if (!(c->flags & CONN_F_CLOSING))
            log_debug("[s%u] conn %llu send error: %s", sh->id, (unsigned long long)c->id,
                      strerror(-res));
        conn_close(c);
        return;
    }
    stat_add(&sh->stats.bytes_out, (uint64_t)res);
    queue_pop_sent(c, (size_t)res);
    if (res > 0)
        c->progress_ns = sh->now_ns;
    if (c->flags & CONN_F_BACKLOG)
        backlog_update(c);
    if (c->flags & CONN_F_CLOSING)
        return;
    if (c->qhead != c->qtail) {
        conn_flush(c);
        return;
    }
    if (c->flags & CONN_F_DRAINING)
        conn_close(c);
}

/* See conn.h. */
void conn_zc_done(struct iovblk *b, int notif_res, bool notif)
{
    struct conn *c = b->conn;
    struct shard *sh = c->sh;
    for (uint32_t i = 0; i < b->nzc; i++)
        xshard_unref(sh, b->zc[i]);
    b->nzc = 0;
    if (notif && (notif_res & RMQ_NOTIF_USAGE_ZC_COPIED)) {
        stat_add(&sh->stats.zc_copied, 1);
        if (++c->zc_copied == CONN_ZC_COPIED_MAX && !(c->flags & CONN_F_NOZC)) {
            c->flags |= CONN_F_NOZC;
            log_debug("[s%u] conn %llu: the kernel copied %u zero-copy sends (loopback?); "
                      "plain sends from now on",
                      sh->id, (unsigned long long)c->id, c->zc_copied);
        }
    }
    blk_put(sh, b);
}

/* See conn.h. */
void conn_send_error(struct conn *c, Ringmq__ErrorCode code, const char *text, uint64_t sid,
                     bool fatal)
{
    uint8_t buf[512];
    ssize_t n = codec_error_write(buf, sizeof(buf), code, text, sid, fatal);
    if (n > 0 && !(c->flags & CONN_F_CLOSING)) {
        struct msgbuf *m = msgbuf_new(&c->sh->pool, (uint32_t)n);
        memcpy(m->data, buf, (size_t)n);
        conn_enqueue(c, NULL, 0, m, true);
        xshard_unref(c->sh, m);
    }
    if (fatal)
        conn_drain(c, c->sh->srv->cfg.shutdown_ms);
}

/* See conn.h. */
void conn_send_pong(struct conn *c, uint64_t token)
{
    uint8_t buf[32];
    ssize_t n = codec_ping_write(buf, sizeof(buf), CODEC_K_PONG, token);
    if (n > 0) {
        struct msgbuf *m = msgbuf_new(&c->sh->pool, (uint32_t)n);
        memcpy(m->data, buf, (size_t)n);
        conn_enqueue(c, NULL, 0, m, true);
        xshard_unref(c->sh, m);
    }
}

/* See conn.h. */
void conn_send_frame(struct conn *c, const Ringmq__Frame *f)
{
    size_t n = codec_frame_size(f);
    struct msgbuf *m = msgbuf_new(&c->sh->pool, (uint32_t)n);
    codec_frame_write(f, m->data, n);
    conn_enqueue(c, NULL, 0, m, true);
    xshard_unref(c->sh, m);
}

/* ---- Subscriptions and teardown ---- */

static void conn_subs_clear(struct conn *c)
{
    for (uint32_t i = 0; i < c->subcap; i++) {
        struct sub *s = c->subs[i];
        if (s && s != DISPATCH_SUB_TOMB) {
            dispatch_sub_unindex(c->sh, s);
            free(s);
        }
    }
    free(c->subs);
    c->subs = NULL;
    c->subcap = c->nsubs = c->subused = 0;
}

/* See conn.h. */
void conn_slow_close(struct conn *c)
{
    struct shard *sh = c->sh;
    char text[128];
    c->flags &= ~CONN_F_SLOW;
    if (c->flags & (CONN_F_CLOSING | CONN_F_DRAINING))
        return;
    stat_add(&sh->stats.slow_consumers, 1);
    snprintf(text, sizeof(text), "slow consumer: more than %llu bytes pending",
             (unsigned long long)sh->srv->cfg.max_pending);
    log_warn("[s%u] conn %llu (%s, %s): %s; disconnecting", sh->id, (unsigned long long)c->id,
             c->peer, c->name[0] ? c->name : "-", text);
    queue_clear(c);
    conn_send_error(c, RINGMQ__ERROR_CODE__ERR_SLOW_CONSUMER, text, 0, true);
}

/* See conn.h. */
void conn_stall(struct conn *c)
{
    struct shard *sh = c->sh;
    struct io_uring_sqe *sqe;
    if (c->flags & (CONN_F_STALLED | CONN_F_DRAINING | CONN_F_CLOSING | CONN_F_NOREAD))
        return;
    c->flags |= CONN_F_STALLED;
    c->flags &= ~CONN_F_REARM;
    c->stall_until_ns = sh->now_ns + CONN_STALL_NS;
    shard_push_stalled(sh, c);
    stat_add(&sh->stats.stalls, 1);
    if (c->flags & CONN_F_RECV) {
        sqe = shard_sqe(sh);
        io_uring_prep_cancel64(sqe, ud_make(c, UD_RECV), 0);
        io_uring_sqe_set_data64(sqe, UD_IGNORE);
    }
}

/* See conn.h. */
void conn_stop_reading(struct conn *c)
{
    struct io_uring_sqe *sqe;
    c->flags |= CONN_F_NOREAD;
    c->flags &= ~CONN_F_REARM;
    if (c->flags & CONN_F_RECV) {
        sqe = shard_sqe(c->sh);
        io_uring_prep_cancel64(sqe, ud_make(c, UD_RECV), 0);
        io_uring_sqe_set_data64(sqe, UD_IGNORE);
    }
}

/* See conn.h. */
void conn_drain(struct conn *c, unsigned timeout_ms)
{
    struct shard *sh = c->sh;
    struct io_uring_sqe *sqe;
    if (c->flags & (CONN_F_DRAINING | CONN_F_CLOSING))
        return;
    c->flags |= CONN_F_DRAINING;
    c->flags &= ~CONN_F_REARM;
    backlog_update(c);
    c->deadline_ns = sh->now_ns + (uint64_t)timeout_ms * 1000000ull;
    conn_subs_clear(c);
    if ((c->flags & CONN_F_RECV) && !(c->flags & CONN_F_NOREAD)) {
        sqe = shard_sqe(sh);
        io_uring_prep_cancel64(sqe, ud_make(c, UD_RECV), 0);
        io_uring_sqe_set_data64(sqe, UD_IGNORE);
    }
    if (c->qhead == c->qtail && !(c->flags & CONN_F_SENDING))
        conn_close(c);
}

/* See conn.h. */
void conn_close(struct conn *c)
{
    struct shard *sh = c->sh;
    struct io_uring_sqe *sqe;
    if (c->flags & CONN_F_CLOSING)
        return;
    c->flags |= CONN_F_CLOSING;
    backlog_update(c);
    conn_subs_clear(c);
    if (c->inflight) {
        sqe = shard_sqe(sh);
        io_uring_prep_cancel_fd(sqe, c->fd, IORING_ASYNC_CANCEL_ALL);
        io_uring_sqe_set_data64(sqe, UD_IGNORE);
    }
    conn_maybe_release(c);
}

/* See conn.h. */
void conn_maybe_release(struct conn *c)
{
    struct shard *sh = c->sh;
    struct io_uring_sqe *sqe;
    if ((c->flags & (CONN_F_CLOSING | CONN_F_RELEASED)) != CONN_F_CLOSING || c->inflight)
        return;
    c->flags |= CONN_F_RELEASED;
    queue_clear(c);
    backlog_update(c);
    xshard_conn_gone(sh, c);
    if (c->flags & CONN_F_STALLED) {
        for (uint32_t i = 0; i < sh->nstalled; i++)
            if (sh->stalled[i] == c)
                sh->stalled[i] = sh->stalled[--sh->nstalled];
    }
    sqe = shard_sqe(sh);
    io_uring_prep_close(sqe, c->fd);
    io_uring_sqe_set_data64(sqe, UD_IGNORE);
    c->fd = -1;
    if (c->prev)
        c->prev->next = c->next;
    else
        sh->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    sh->nconns--;
    stat_add(&sh->stats.conns_now, (uint64_t)-1);
    shard_push_dead(sh, c);
}

/* See conn.h. */
void conn_free(struct conn *c)
{
    free(c->rbuf);
    free(c->q);
    free(c);
}
